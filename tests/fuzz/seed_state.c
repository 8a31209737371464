/* seed_state — writes real saved states of the fuzz fixtures as corpus seeds:
 *
 *   seed_state state DIR   optimizer and scheduler states of state_fixtures.h
 *                          (DIR/seed_optim_<k>_<f32|f64>, DIR/seed_sched_<k>)
 *   seed_state train DIR   checkpoint blobs of the jobs of train_fixtures.h (DIR/seed_train_<k>)
 *
 * Each state is taken after a few steps, so step counters and buffers are not all zero. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "tests/fuzz/state_fixtures.h"
#include "tests/fuzz/train_fixtures.h"

static int write_file(const char *dir, const char *name, const void *buf, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "seed_state: cannot write %s\n", path);
        return -EIO;
    }
    return 0;
}

static int train_seeds(const char *dir)
{
    char name[64];
    for (int k = 0; k < (int)FX_NTRAIN; k++) {
        job_spec spec;
        train *t;
        an_err err;
        if (fx_train(k, &spec, &t) != 0)
            return 1;
        train_report rep;
        for (int s = 0; s < 3; s++)
            if (train_step(t, &rep, &err) != 0) {
                fprintf(stderr, "seed_state: job %d: %s\n", k, err.message);
                return 1;
            }
        void *blob;
        size_t len;
        int rc = train_save(t, &blob, &len, &err);
        snprintf(name, sizeof name, "seed_train_%d", k);
        if (!rc)
            rc = write_file(dir, name, blob, len);
        free(blob);
        train_free(t);
        job_spec_free(&spec);
        if (rc)
            return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "state") && strcmp(argv[1], "train"))) {
        fprintf(stderr, "usage: seed_state state|train DIR\n");
        return 2;
    }
    if (!strcmp(argv[1], "train"))
        return train_seeds(argv[2]);
    argv++;
    int rc = 0;
    char name[64];
    for (int k = 0; k < (int)FX_NOPTIM && !rc; k++) {
        for (int dtype = OPTIM_F32; dtype <= OPTIM_F64 && !rc; dtype++) {
            optim o;
            if (fx_optim(&o, k, dtype) != 0) {
                fprintf(stderr, "seed_state: optimizer %d does not build\n", k);
                return 1;
            }
            double params[FX_N] = {0}, grads[FX_N];
            for (int s = 0; s < 3; s++) {
                fx_grads(grads, dtype, s);
                optim_step(&o, params, grads);
            }
            size_t len = optim_state_size(&o);
            unsigned char *buf = malloc(len);
            if (!buf || optim_save(&o, buf, len) != 0)
                rc = -ENOMEM;
            snprintf(name, sizeof name, "seed_optim_%d_%s", k, dtype == OPTIM_F32 ? "f32" : "f64");
            if (!rc)
                rc = write_file(argv[1], name, buf, len);
            free(buf);
            optim_free(&o);
        }
    }
    for (int k = 0; k < (int)FX_NSCHED && !rc; k++) {
        sched *s;
        if (fx_sched(&s, k) != 0) {
            fprintf(stderr, "seed_state: scheduler %d does not build\n", k);
            return 1;
        }
        for (int i = 0; i < 7; i++)
            sched_step(s, i % 2 ? NAN : 1.0);
        size_t len = sched_state_size(s);
        unsigned char *buf = malloc(len ? len : 1);
        if (!buf || sched_save(s, buf, len) != 0)
            rc = -ENOMEM;
        snprintf(name, sizeof name, "seed_sched_%d", k);
        if (!rc)
            rc = write_file(argv[1], name, buf, len);
        free(buf);
        sched_free(s);
    }
    return rc ? 1 : 0;
}
