/* openapi — GET /v1/openapi.json: the API described as OpenAPI 3.1 (api/openapi.json, built
 * into the binary). The e2e suite validates every request and answer it makes against the
 * same file (tests/e2e/openapi.mjs), so the document stays true. */
#include "api/http.h"
#include "api/routes.h"
#include "core/assets.h"

void api_openapi(http_req *r)
{
    size_t len = 0;
    const unsigned char *a = assets_get("api/openapi.json", &len);
    if (!a) {
        http_error(r, 404, "not_found", NULL, "this build has no API description");
        return;
    }
    http_reply_data(r, 200, "application/json; charset=utf-8", a, len);
}
