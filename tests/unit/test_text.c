/* Tests of core/text: char and byte tokenizers (vocabulary sorted by code point, multi-byte
 * UTF-8, invalid UTF-8 refused with its offset), prompts outside the vocabulary, vocabulary
 * JSON both ways, window arithmetic and the tail split, counter-based random starts, and the
 * builtin tinyshakespeare corpus (1,115,394 characters, 65 distinct). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/assets.h"
#include "core/text.h"

static void test_char(void **state)
{
    (void)state;
    const char *s = "bé a\xe2\x82\xac" "ab"; /* b é space a € a b */
    text_vocab v;
    int32_t *tok;
    size_t n;
    an_err err;
    assert_int_equal(text_tokenize(s, strlen(s), TEXT_CHAR, 2, "data.text", &v, &tok, &n, &err), 0);
    assert_int_equal(v.size, 5);
    const uint32_t want[5] = {' ', 'a', 'b', 0xE9, 0x20AC};
    assert_memory_equal(v.cps, want, sizeof want);
    const int32_t wt[7] = {2, 3, 0, 1, 4, 1, 2};
    assert_int_equal(n, 7);
    assert_memory_equal(tok, wt, sizeof wt);
    char c[5];
    assert_int_equal(text_decode_token(&v, 4, c), 3);
    assert_string_equal(c, "\xe2\x82\xac");
    assert_int_equal(text_decode_token(&v, 5, c), 0);
    /* A prompt in the vocabulary encodes; one outside it names the field and the character. */
    int32_t p[8];
    size_t pn;
    assert_int_equal(text_encode(&v, "ab\xc3\xa9", 4, "prompt", p, &pn, &err), 0);
    assert_int_equal(pn, 3);
    assert_int_equal(p[2], 3);
    assert_int_equal(text_encode(&v, "abz", 3, "prompt", p, &pn, &err), -EINVAL);
    assert_string_equal(err.field, "prompt");
    assert_non_null(strstr(err.message, "'z'"));
    assert_non_null(strstr(err.message, "vocabulary"));
    /* JSON round trip. */
    cJSON *j = text_vocab_json(&v);
    assert_non_null(j);
    text_vocab w;
    assert_int_equal(text_vocab_from_json(j, "vocab", &w, &err), 0);
    assert_int_equal(w.size, v.size);
    assert_memory_equal(w.cps, v.cps, sizeof want);
    cJSON_Delete(j);
    text_vocab_free(&w);
    j = cJSON_Parse("{\"tokenizer\":\"char\",\"tokens\":[\"b\",\"a\"]}");
    assert_int_equal(text_vocab_from_json(j, "vocab", &w, &err), -EINVAL);
    assert_non_null(strstr(err.message, "tokens[1]"));
    cJSON_Delete(j);
    free(tok);
    text_vocab_free(&v);
}

static void test_bad_text(void **state)
{
    (void)state;
    text_vocab v;
    int32_t *tok;
    size_t n;
    an_err err;
    const char *bad[] = {"ab\xff", "a\xc0\xaf", "\xed\xa0\x80", "ab\xe2\x82", "\xf4\x90\x80\x80"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(text_tokenize(bad[i], strlen(bad[i]), TEXT_CHAR, 1, "data.text", &v,
                                       &tok, &n, &err), -EINVAL);
        assert_string_equal(err.field, "data.text");
        assert_non_null(strstr(err.message, "UTF-8 at byte"));
        assert_null(tok);
    }
    /* NUL is refused by char (it could not be stored in the vocabulary's JSON). */
    assert_int_equal(text_tokenize("ab\0cd", 5, TEXT_CHAR, 1, "data.text", &v, &tok, &n, &err),
                     -EINVAL);
    assert_non_null(strstr(err.message, "NUL character at byte 2"));
    /* The byte tokenizer takes anything. */
    assert_int_equal(text_tokenize("ab\xff", 3, TEXT_BYTE, 1, "data.text", &v, &tok, &n, &err), 0);
    assert_int_equal(v.size, 256);
    assert_int_equal(tok[2], 255);
    free(tok);
    /* Too short for one window. */
    assert_int_equal(text_tokenize("abc", 3, TEXT_CHAR, 9, "data.text", &v, &tok, &n, &err),
                     -EINVAL);
    assert_non_null(strstr(err.message, "at least 9"));
}

static void test_windows(void **state)
{
    (void)state;
    assert_int_equal(text_windows(9, 4), 2);  /* [0..4], [4..8] */
    assert_int_equal(text_windows(8, 4), 1);
    assert_int_equal(text_windows(1, 4), 0);
    assert_int_equal(text_train_tokens(1000, 0.1), 900);
    assert_int_equal(text_train_tokens(1115394, 0.1), 1003854);
    int32_t tokens[9] = {0, 1, 2, 3, 4, 5, 6, 7, 8}, idx[4], tg[4];
    text_window(tokens, 1, 4, idx, tg);
    const int32_t wi[4] = {4, 5, 6, 7}, wtg[4] = {5, 6, 7, 8};
    assert_memory_equal(idx, wi, sizeof wi);
    assert_memory_equal(tg, wtg, sizeof wtg);
}

static void test_random_start(void **state)
{
    (void)state;
    enum { NT = 20, T = 4 };
    int seen[NT] = {0};
    for (int step = 0; step < 2000; step++) {
        size_t s = text_random_start(7, (uint64_t)step, 0, 3, NT, T);
        assert_true(s <= NT - T - 1);
        seen[s]++;
        /* A pure function of its arguments. */
        assert_int_equal(s, text_random_start(7, (uint64_t)step, 0, 3, NT, T));
    }
    for (int s = 0; s < NT - T; s++)
        assert_true(seen[s] > 50); /* ~125 expected each */
    /* Different rows of the same step differ somewhere. */
    int differ = 0;
    for (int r = 1; r < 10; r++)
        differ |= text_random_start(7, 5, 0, 0, 1000, T) !=
                  text_random_start(7, 5, 0, (uint64_t)r, 1000, T);
    assert_true(differ);
}

static void test_tinyshakespeare(void **state)
{
    (void)state;
    size_t len;
    const unsigned char *s = assets_get("data/tinyshakespeare.txt", &len);
    assert_non_null(s);
    assert_int_equal(len, 1115394);
    text_vocab v;
    int32_t *tok;
    size_t n;
    an_err err;
    assert_int_equal(text_tokenize((const char *)s, len, TEXT_CHAR, 65, "data", &v, &tok, &n,
                                   &err), 0);
    assert_int_equal(v.size, 65);
    assert_int_equal(n, 1115394);
    assert_int_equal(v.cps[0], '\n');
    assert_int_equal(v.cps[1], ' ');
    assert_int_equal(v.cps[64], 'z');
    /* "First" starts the corpus: F is token 18 in nanoGPT's vocabulary. */
    assert_int_equal(tok[0], 18);
    free(tok);
    text_vocab_free(&v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_char),
        cmocka_unit_test(test_bad_text),
        cmocka_unit_test(test_windows),
        cmocka_unit_test(test_random_start),
        cmocka_unit_test(test_tinyshakespeare),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
