/* fuzz_text — the text tokenizers and vocabulary (core/text.h) on arbitrary bytes.
 *
 * The first byte picks the tokenizer (bit 0) and a block size (bits 1..4); the rest is the
 * text of a `text` data set or an uploaded text/plain file. Tokenizing must give tokens inside
 * the vocabulary (a sorted one, for char) whose decoding is the input again, or an error with
 * a message; the vocabulary must survive its JSON form; the input re-encoded as a prompt must
 * give the same tokens. */
#include "tests/fuzz/fuzz.h"

#include <string.h>

#include "core/text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int tokenizer = data[0] & 1 ? TEXT_BYTE : TEXT_CHAR;
    int T = 1 + ((data[0] >> 1) & 15);
    const char *s = (const char *)data + 1;
    size_t len = size - 1;
    text_vocab v;
    int32_t *tok;
    size_t n;
    an_err err;
    if (text_tokenize(s, len, tokenizer, (size_t)T + 1, "data.text", &v, &tok, &n, &err)) {
        FUZZ_CHECK(err.message[0] != 0 && tok == NULL);
        return 0;
    }
    FUZZ_CHECK(n >= (size_t)T + 1 && v.size >= 1);
    for (int i = 1; tokenizer == TEXT_CHAR && i < v.size; i++)
        FUZZ_CHECK(v.cps[i - 1] < v.cps[i]);
    /* Decoding every token gives the input back. */
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(tok[i] >= 0 && tok[i] < v.size);
        char c[5];
        int k = text_decode_token(&v, tok[i], c);
        FUZZ_CHECK(k >= 1 && at + (size_t)k <= len && memcmp(s + at, c, (size_t)k) == 0);
        at += (size_t)k;
    }
    FUZZ_CHECK(at == len);
    /* As a prompt, the text encodes to the same tokens. */
    int32_t *again = malloc(len * sizeof *again);
    size_t m;
    FUZZ_CHECK(again && text_encode(&v, s, len, "prompt", again, &m, &err) == 0);
    FUZZ_CHECK(m == n && memcmp(again, tok, n * sizeof *tok) == 0);
    free(again);
    /* The vocabulary's JSON reads back to the same vocabulary. */
    cJSON *j = text_vocab_json(&v);
    text_vocab w;
    FUZZ_CHECK(j && text_vocab_from_json(j, "vocab", &w, &err) == 0);
    FUZZ_CHECK(w.size == v.size && w.tokenizer == v.tokenizer);
    FUZZ_CHECK(!v.cps || memcmp(w.cps, v.cps, (size_t)v.size * sizeof *v.cps) == 0);
    cJSON_Delete(j);
    text_vocab_free(&w);
    /* Windows stay inside the stream. */
    size_t K = text_windows(n, T);
    FUZZ_CHECK(K >= 1 && K * (size_t)T + 1 <= n);
    free(tok);
    text_vocab_free(&v);
    return 0;
}
