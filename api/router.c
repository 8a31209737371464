/* router — matching a method and a path against the route table. */
#include "api/router.h"

#include <errno.h>
#include <string.h>

int router_pattern_match(const char *pattern, const char *path,
                         char params[][ROUTE_PARAM_LEN], int *nparams)
{
    const char *p = pattern, *s = path;
    int np = 0;
    while (*p && *s) {
        if (*p == '{') {
            const char *close = strchr(p, '}');
            if (!close)
                return 0;
            size_t len = strcspn(s, "/");
            if (len == 0 || len >= ROUTE_PARAM_LEN || np >= ROUTE_MAX_PARAMS)
                return 0;
            memcpy(params[np], s, len);
            params[np][len] = '\0';
            np++;
            s += len;
            p = close + 1;
            continue;
        }
        if (*p != *s)
            return 0;
        p++;
        s++;
    }
    if (*p || *s)
        return 0;
    *nparams = np;
    return 1;
}

int router_match(const route *table, size_t n, const char *method, const char *path,
                 route_match *m)
{
    memset(m, 0, sizeof *m);
    const char *want = strcmp(method, "HEAD") == 0 ? "GET" : method;
    size_t alen = 0;
    for (size_t i = 0; i < n; i++) {
        char params[ROUTE_MAX_PARAMS][ROUTE_PARAM_LEN];
        int np = 0;
        if (!router_pattern_match(table[i].pattern, path, params, &np))
            continue;
        m->path_known = 1;
        if (strcmp(table[i].method, want) == 0 && !m->route) {
            m->route = &table[i];
            m->nparams = np;
            memcpy(m->params, params, sizeof params);
        }
        /* Build Allow without duplicates. */
        const char *meth = table[i].method;
        if (!strstr(m->allow, meth)) {
            size_t ml = strlen(meth);
            if (alen + ml + 2 < sizeof m->allow) {
                if (alen) {
                    memcpy(m->allow + alen, ", ", 2);
                    alen += 2;
                }
                memcpy(m->allow + alen, meth, ml);
                alen += ml;
                m->allow[alen] = '\0';
            }
        }
    }
    if (m->route)
        return 0;
    return m->path_known ? -EPERM : -ENOENT;
}
