/* store_fixture.h — a fresh database in its own temporary directory for each store test. */
#ifndef ANNEALD_TEST_STORE_FIXTURE_H
#define ANNEALD_TEST_STORE_FIXTURE_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"

typedef struct fixture {
    char dir[64];     /* mkdtemp directory */
    char path[96];    /* dir/test.db */
    store_t s;        /* open connection */
} fixture;

static int fixture_setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/anneald-store-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/test.db", f->dir);
    an_err e;
    if (store_open(&f->s, f->path, &e) != 0) {
        fprintf(stderr, "store_open: %s\n", e.message);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int fixture_teardown(void **state)
{
    fixture *f = *state;
    store_close(&f->s);
    DIR *d = opendir(f->dir);
    if (d) {
        struct dirent *de;
        char p[400];
        while ((de = readdir(d)) != NULL) {
            if (de->d_name[0] == '.')
                continue;
            snprintf(p, sizeof p, "%s/%s", f->dir, de->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Creates a queued job with a small spec; returns its id in `id`. */
static inline int make_job(store_t *s, const char *name, const char *dataset, char id[STORE_ID_LEN])
{
    store_job_new in = {
        .name = name,
        .spec_json = "{\"model\":{\"type\":\"mlp\"},\"steps\":100}",
        .warnings_json = "[\"w1\"]",
        .total_steps = 100,
        .dataset_ref = dataset,
    };
    return store_job_create(s, &in, id, NULL);
}

#endif
