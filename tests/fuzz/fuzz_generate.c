/* fuzz_generate — a generation request (core/generate.h) on arbitrary bytes: the body of
 * POST /v1/jobs/{id}/generate against a tiny gpt with the vocabulary of a short text.
 *
 * The input is a JSON body (capped so that max_tokens stays small). Parsing must fail with a
 * message naming a field, or give parameters within their ranges; a prompt the vocabulary
 * cannot encode must fail naming "prompt"; every generated token must be one of the
 * vocabulary's characters, and exactly max_tokens of them come. */
#include "tests/fuzz/fuzz.h"

#include <string.h>

#include <cjson/cJSON.h>

#include "core/generate.h"
#include "core/gpt.h"
#include "core/text.h"

static const char TEXT[] = "to be or not to be: that is the question";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *body = cJSON_ParseWithLength((const char *)data, size);
    if (!body)
        return 0;
    gen_params p;
    an_err err;
    if (gen_parse(body, &p, &err)) {
        FUZZ_CHECK(err.message[0] != 0);
        cJSON_Delete(body);
        return 0;
    }
    FUZZ_CHECK(p.max_tokens >= 1 && p.max_tokens <= GEN_MAX_TOKENS);
    FUZZ_CHECK(p.temperature >= 0 && p.temperature <= 100 && p.top_k >= 0 && p.prompt);
    if (p.max_tokens > 16)
        p.max_tokens = 16; /* the property does not depend on the length */
    text_vocab v;
    int32_t *tok;
    size_t n;
    FUZZ_CHECK(text_tokenize(TEXT, sizeof TEXT - 1, TEXT_CHAR, 2, "text", &v, &tok, &n, &err) == 0);
    free(tok);
    gpt_shape s = {.vocab_size = v.size, .block_size = 4, .n_layer = 1, .n_head = 1,
                   .n_embd = 4, .bias = 1, .gelu = 0};
    gpt *g;
    FUZZ_CHECK(gpt_create(&g, &s, 1, 1, &err) == 0);
    gen_state st;
    int rc = gen_state_init(&st, g, &v, &p, &err);
    if (rc) {
        FUZZ_CHECK(strcmp(err.field, "prompt") == 0 || strcmp(err.field, "top_k") == 0);
    } else {
        char c[5];
        int k, made = 0;
        while ((k = gen_next(&st, c)) > 0) {
            FUZZ_CHECK(k == 1 && strchr(TEXT, c[0]) != NULL);
            made++;
        }
        FUZZ_CHECK(k == 0 && made == p.max_tokens);
        gen_state_free(&st);
    }
    gpt_free(g);
    text_vocab_free(&v);
    cJSON_Delete(body);
    return 0;
}
