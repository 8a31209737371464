/* schedules — POST /v1/schedules/preview: a schedule's learning rates without training.
 * Up to 10,000,000 steps make a large answer, so it is computed on the libuv thread pool. */
#include <stdlib.h>

#include "api/http.h"
#include "api/routes.h"
#include "core/sched.h"

static void preview_work(http_req *r, struct store_t *s)
{
    (void)s;
    cJSON *body = r->ctx;
    cJSON *out = NULL;
    an_err e;
    an_err_clear(&e);
    if (sched_preview(body, 0, &out, &e) != 0) {
        http_set_pending_error(r, 400, "invalid_argument", e.field, "%s", e.message);
        return;
    }
    http_set_pending_json(r, 200, out);
}

static void body_free(void *p)
{
    cJSON_Delete(p);
}

void api_schedules_preview(http_req *r)
{
    cJSON *body = http_body_json(r);
    if (!body)
        return;
    if (!cJSON_IsObject(body)) {
        http_error(r, 400, "invalid_argument", NULL,
                   "a JSON object {\"ds_config\": {…}, \"steps\": N} was expected");
        cJSON_Delete(body);
        return;
    }
    r->ctx = body;
    r->ctx_free = body_free;
    http_defer(r, preview_work);
}
