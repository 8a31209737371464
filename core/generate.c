/* generate — next-token sampling from a gpt (generate.h). */
#include "core/generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/cfgval.h"
#include "core/rng.h"

int gen_parse(const cJSON *body, gen_params *out, an_err *err)
{
    static const char *const keys[] = {"prompt", "max_tokens", "temperature", "top_k", "seed",
                                       "step", NULL};
    int64_t v;
    int rc;
    memset(out, 0, sizeof *out);
    if ((rc = cfg_want_object(body, "", err)) || (rc = cfg_check_keys(body, "", keys, err)) ||
        (rc = cfg_require(body, "", "prompt", err)))
        return rc;
    const cJSON *pr = cfg_get(body, "prompt");
    char got[80];
    if (cJSON_IsString(pr) && strlen(pr->valuestring) > GEN_MAX_PROMPT)
        return an_fail(err, "prompt", "prompt must be a string of at most %d bytes, got one of "
                       "%zu", GEN_MAX_PROMPT, strlen(pr->valuestring));
    if (!cJSON_IsString(pr))
        return an_fail(err, "prompt", "prompt must be a string of at most %d bytes, got %s",
                       GEN_MAX_PROMPT, cfg_describe(pr, got, sizeof got));
    out->prompt = pr->valuestring;
    if ((rc = cfg_int(body, "", "max_tokens", 200, 1, GEN_MAX_TOKENS, &v, err)))
        return rc;
    out->max_tokens = (int)v;
    if ((rc = cfg_num(body, "", "temperature", 1.0, 0.0, 100.0, CFG_CLOSED, &out->temperature,
                      err)))
        return rc;
    if ((rc = cfg_int(body, "", "top_k", 0, 0, 1 << 20, &v, err)))
        return rc;
    out->top_k = (int)v;
    if ((rc = cfg_int(body, "", "seed", 0, 0, CFG_INT_MAX, &v, err)))
        return rc;
    out->seed = (uint64_t)v;
    return cfg_int(body, "", "step", -1, 0, CFG_INT_MAX, &out->step, err);
}

int gen_weights_check(const gpt *g, an_err *err)
{
    float bad = 0.0f;
    for (size_t i = 0; i < g->nparams; i++)
        bad += g->params[i] - g->params[i]; /* 0 for finite values, NaN otherwise */
    if (bad != bad)
        return an_fail(err, "step", "the weights of this checkpoint are not finite (the run "
                       "diverged before it was saved): generate from an earlier step");
    return 0;
}

int gen_state_init(gen_state *s, gpt *g, const text_vocab *v, const gen_params *p, an_err *err)
{
    memset(s, 0, sizeof *s);
    int rc = gen_weights_check(g, err);
    return rc ? rc : gen_state_start(s, g, v, p, err);
}

int gen_state_start(gen_state *s, gpt *g, const text_vocab *v, const gen_params *p,
                    an_err *err)
{
    memset(s, 0, sizeof *s);
    if (p->top_k > v->size)
        return an_fail(err, "top_k", "top_k must be at most the vocabulary's %d tokens (0: all), "
                       "got %d", v->size, p->top_k);
    size_t len = strlen(p->prompt);
    s->ctx = malloc((len + (size_t)p->max_tokens + 1) * sizeof *s->ctx);
    s->prob = malloc((size_t)v->size * sizeof *s->prob);
    if (!s->ctx || !s->prob) {
        gen_state_free(s);
        return an_failc(err, -ENOMEM, "", "out of memory for %d tokens", p->max_tokens);
    }
    size_t n = 0;
    int rc = text_encode(v, p->prompt, len, "prompt", s->ctx, &n, err);
    if (rc) {
        gen_state_free(s);
        return rc;
    }
    if (n == 0)
        s->ctx[n++] = 0; /* an empty prompt starts from the first token */
    s->g = g;
    s->vocab = v;
    s->p = *p;
    s->n = s->nprompt = n;
    return 0;
}

void gen_state_free(gen_state *s)
{
    free(s->ctx);
    free(s->prob);
    memset(s, 0, sizeof *s);
}

/* The token drawn from the logits of one position. */
static int32_t pick(gen_state *s, const float *logits)
{
    const int V = s->vocab->size;
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best])
            best = i;
    if (s->p.temperature == 0.0)
        return best;
    /* top-k: the k-th largest logit is the cut (ties at the cut are kept). */
    double cut = -INFINITY;
    if (s->p.top_k > 0 && s->p.top_k < V) {
        for (int i = 0; i < V; i++)
            s->prob[i] = logits[i];
        for (int k = 0; k < s->p.top_k; k++) { /* partial selection: k passes */
            int m = -1;
            for (int i = 0; i < V; i++)
                if (s->prob[i] > -INFINITY && (m < 0 || s->prob[i] > s->prob[m]))
                    m = i;
            if (m < 0) /* fewer than k logits above -inf: every one is kept */
                break;
            cut = s->prob[m];
            s->prob[m] = -INFINITY;
        }
    }
    /* The gap to the largest logit over the temperature: 0 for the largest, below 0 for the
     * rest, so a temperature too small to divide a logit by (5e-324) gives 0 and -inf, the
     * greedy pick, where logit / T - max / T would be inf - inf. */
    double sum = 0.0;
    for (int i = 0; i < V; i++) {
        double e = logits[i] >= cut
                       ? exp(((double)logits[i] - (double)logits[best]) / s->p.temperature)
                       : 0.0;
        s->prob[i] = e;
        sum += e;
    }
    rng r;
    rng_init(&r, s->p.seed, rng_stream_id(RNG_GENERATE, (uint64_t)s->made, 0, 0), 0);
    double u = rng_uniform(&r) * sum, acc = 0.0;
    int last = best;
    for (int i = 0; i < V; i++) {
        if (s->prob[i] <= 0.0)
            continue;
        acc += s->prob[i];
        last = i;
        if (u < acc)
            return i;
    }
    return last;
}

int gen_next(gen_state *s, char out[5])
{
    out[0] = '\0';
    if (s->made >= s->p.max_tokens)
        return 0;
    const int T = s->g->s.block_size;
    size_t t = s->n < (size_t)T ? s->n : (size_t)T;
    int rc = gpt_forward(s->g, s->ctx + s->n - t, NULL, 1, (int)t, NULL);
    if (rc)
        return rc < 0 ? rc : -EINVAL;
    const float *lg = s->g->logits + (t - 1) * (size_t)s->vocab->size;
    for (int i = 0; i < s->vocab->size; i++)
        if (!isfinite(lg[i]))
            return -EDOM; /* finite weights can still overflow: nothing to draw from */
    int32_t tok = pick(s, lg);
    s->ctx[s->n++] = tok;
    s->made++;
    int n = text_decode_token(s->vocab, tok, out);
    if (n == 0) { /* a byte vocabulary's token is one byte, whatever it is */
        out[0] = (char)tok;
        out[1] = '\0';
        n = 1;
    }
    return n;
}
