/* metrics_row — a step's row of the offline commands' metrics table. */
#include "core/metrics_row.h"

#include <math.h>
#include <stdio.h>

#include "core/jsonnum.h"

/* Appends text at *n; *n grows as one snprintf of the whole row would. */
static void put(char *buf, size_t size, int *n, const char *text)
{
    size_t at = (size_t)*n;
    int k = snprintf(at < size ? buf + at : NULL, at < size ? size - at : 0, "%s", text);
    *n += k > 0 ? k : 0;
}

/* ",V" in V's shortest exact form; with `opt`, a NaN is a column with no value here: ",". */
static void num(char *buf, size_t size, int *n, double v, int opt)
{
    char nb[48] = ",";
    if (!(opt && isnan(v)))
        json_number_text(nb + 1, sizeof nb - 1, v, 0);
    put(buf, size, n, nb);
}

int metrics_row(const job_spec *s, const train_report *r, const double *time, char *buf,
                size_t size)
{
    char step[24];
    snprintf(step, sizeof step, "%lld", (long long)r->step);
    int n = 0;
    put(buf, size, &n, step);
    /* A loss or gradient norm that is not there (a diverged finder step, an fp16 step
     * skipped on overflow) is an empty column, as in the daemon's CSV. */
    num(buf, size, &n, r->loss, 1);
    for (int g = 0; g < r->ngroups; g++)
        num(buf, size, &n, r->lr[g], 0);
    num(buf, size, &n, r->grad_norm, 1);
    if (time)
        num(buf, size, &n, *time, 0);
    if (s->val_fraction > 0 || s->val_split_test) {
        num(buf, size, &n, r->has_val ? r->val_loss : NAN, 1);
        num(buf, size, &n, r->has_val ? r->val_acc : NAN, 1);
    }
    if (s->fp16) {
        num(buf, size, &n, r->loss_scale, 1);
        put(buf, size, &n, r->skipped ? ",1" : ",0");
    }
    put(buf, size, &n, "\n");
    return n;
}
