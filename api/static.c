/* static — the dashboard's files: built into the binary (core/assets.h, "web/NAME"), or read
 * from --web-root DIR while developing. GET / is web/index.html. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "api/routes.h"
#include "core/assets.h"
#include "api/api.h"
#include "util/util.h"

static const char *mime_of(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot)
        return "application/octet-stream";
    if (!strcmp(dot, ".html"))
        return "text/html; charset=utf-8";
    if (!strcmp(dot, ".js") || !strcmp(dot, ".mjs"))
        return "text/javascript; charset=utf-8";
    if (!strcmp(dot, ".css"))
        return "text/css; charset=utf-8";
    if (!strcmp(dot, ".svg"))
        return "image/svg+xml";
    if (!strcmp(dot, ".png"))
        return "image/png";
    if (!strcmp(dot, ".ico"))
        return "image/x-icon";
    if (!strcmp(dot, ".json"))
        return "application/json; charset=utf-8";
    if (!strcmp(dot, ".csv"))
        return "text/csv; charset=utf-8";
    return "application/octet-stream";
}

/* A file of --web-root, on a request thread. */
static void web_root_work(http_req *r, struct store_t *st)
{
    (void)st;
    const char *file = r->m.nparams > 0 ? r->m.params[0] : "index.html";
    const char *root = r->api->sv->opts->web_root;
    char path[OPT_PATH_MAX + 160];
    snprintf(path, sizeof path, "%s/%s", root, file);
    /* A symlink in the folder may not lead out of it: the dashboard's files need no token,
     * so anything they reach would be open to every caller. */
    char real[PATH_MAX], top[PATH_MAX];
    int inside = 0;
    if (realpath(root, top) && realpath(path, real)) {
        size_t tl = strcmp(top, "/") == 0 ? 0 : strlen(top); /* "/" holds every path */
        inside = strncmp(real, top, tl) == 0 && real[tl] == '/';
    }
    char *buf = NULL;
    size_t len = 0;
    if (!inside || util_read_file(real, &buf, &len) != 0) {
        http_set_pending_error(r, 404, "not_found", NULL, "no such file: %.128s", file);
        return;
    }
    http_set_pending_owned(r, 200, mime_of(file), buf, len);
}

void api_static(http_req *r)
{
    const char *file = r->m.nparams > 0 ? r->m.params[0] : "index.html";
    /* One path segment, no hidden files: nothing outside the web folder can be named. */
    if (file[0] == '.' || strchr(file, '/') || strchr(file, '\\')) {
        http_error(r, 404, "not_found", NULL, "no such file: %.128s", file);
        return;
    }
    if (r->api->sv->opts->web_root[0]) { /* read on a request thread: the loop never waits */
        http_defer(r, web_root_work);
        return;
    }
    char name[192];
    snprintf(name, sizeof name, "web/%s", file);
    size_t len = 0;
    const unsigned char *a = assets_get(name, &len);
    if (!a) {
        http_error(r, 404, "not_found", NULL, "no such path: %.128s", r->path);
        return;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)a, MHD_RESPMEM_PERSISTENT);
    if (resp) {
        MHD_add_response_header(resp, "Content-Type", mime_of(file));
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
    }
    http_queue(r, 200, resp);
}
