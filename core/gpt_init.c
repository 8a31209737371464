/* gpt_init — explicit initial tensors for the gpt model (`model.init`, as for other models):
 * {"transformer.wte.weight": [[…], …], "transformer.ln_f.weight": […], …}. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cfgval.h"
#include "core/gpt.h"

/* n finite float-range numbers of a JSON array into out. */
static int read_row(const cJSON *a, float *out, int n, const char *path, an_err *err)
{
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n)
        return an_fail(err, path, "expected an array of %d numbers", n);
    int i = 0;
    for (const cJSON *e = a->child; e; e = e->next, i++) {
        if (!cfg_is_float32(e)) {
            char p[300];
            return an_fail(err, an_path_index(p, sizeof p, path, i),
                           "expected a finite number within float range");
        }
        out[i] = (float)e->valuedouble;
    }
    return 0;
}

int gpt_set_init(gpt *g, const cJSON *init, an_err *err)
{
    if (!cJSON_IsObject(init))
        return an_fail(err, "model.init", "expected an object of tensor name -> nested arrays");
    /* Everything is read into a copy first so that a failure changes nothing. */
    float *tmp = malloc(g->nparams * sizeof *tmp);
    if (!tmp)
        return an_failc(err, -ENOMEM, "model.init", "out of memory");
    memcpy(tmp, g->params, g->nparams * sizeof *tmp);
    int rc = 0;
    for (const cJSON *e = init->child; e && !rc; e = e->next) {
        char path[300];
        snprintf(path, sizeof path, "model.init.%s", e->string ? e->string : "");
        const gpt_tensor *t = e->string ? gpt_find(g, e->string) : NULL;
        if (!t) {
            rc = an_fail(err, path, "unknown tensor '%s'; a gpt has transformer.wte.weight, "
                         "transformer.wpe.weight, transformer.h.{0..%d}.(ln_1|attn.c_attn|"
                         "attn.c_proj|ln_2|mlp.c_fc|mlp.c_proj).weight%s and "
                         "transformer.ln_f.weight%s", e->string ? e->string : "",
                         g->s.n_layer - 1, g->s.bias ? "|bias" : "",
                         g->s.bias ? "|bias" : "");
            break;
        }
        if (t->ndim == 1) {
            rc = read_row(e, tmp + t->off, t->shape[0], path, err);
            continue;
        }
        if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != t->shape[0]) {
            rc = an_fail(err, path, "expected %d rows of %d numbers (shape [%d, %d])",
                         t->shape[0], t->shape[1], t->shape[0], t->shape[1]);
            break;
        }
        int r = 0;
        for (const cJSON *row = e->child; row && !rc; row = row->next, r++) {
            char rp[300];
            an_path_index(rp, sizeof rp, path, r);
            rc = read_row(row, tmp + t->off + (size_t)r * t->shape[1], t->shape[1], rp, err);
        }
    }
    if (!rc)
        memcpy(g->params, tmp, g->nparams * sizeof *tmp);
    free(tmp);
    return rc;
}
