/* cli_generate — `anneald generate`: text from a gpt job's saved state, offline, with the
 * same sampling as POST /v1/jobs/{id}/generate (core/generate.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/config.h"
#include "core/generate.h"
#include "core/train.h"
#include "core/train_gpt.h"
#include "daemon/cli.h"
#include "daemon/cli_util.h"

static const char GENERATE_HELP[] =
    "usage: anneald generate JOB.json --resume F [--prompt TEXT] [--max-tokens N]\n"
    "                        [--temperature T] [--top-k K] [--seed S]\n"
    "\n"
    "Samples text from a gpt job's state written by `anneald train JOB.json --save F`, as\n"
    "POST /v1/jobs/{id}/generate does: the same seed and state give the same text. The text\n"
    "(prompt first) goes to stdout; a byte model's bytes go out as they are made (the\n"
    "service passes them on as whole UTF-8 characters, a byte that forms none as U+FFFD).\n"
    "\n"
    "  --resume F         the saved state (required)\n"
    "  --prompt TEXT      the start; its characters must be in the job's vocabulary\n"
    "                     (default none: the text starts after the vocabulary's first\n"
    "                     token, as the service does for an empty prompt)\n"
    "  --max-tokens N     tokens to generate, 1 to 100000 (default 200)\n"
    "  --temperature T    0 is greedy (default 1)\n"
    "  --top-k K          sample among the K likeliest tokens (default 0: all)\n"
    "  --seed S           the sampling seed (default 0)\n";

/* The flags that set a key of the request (gen_parse checks the values). */
static const char *const FLAGS[][2] = {{"--max-tokens", "max_tokens"},
                                       {"--temperature", "temperature"},
                                       {"--top-k", "top_k"},
                                       {"--seed", "seed"},
                                       {"--prompt", "prompt"}};
enum { NUM_FLAGS = 4 }; /* the first four are numbers */

/* The flag among the first n of FLAGS that sets request key `field`, or NULL. */
static const char *flag_of(const char *field, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (strcmp(field, FLAGS[k][1]) == 0)
            return FLAGS[k][0];
    return NULL;
}

int cli_generate(int argc, char **argv)
{
    const char *path = NULL, *resume = NULL;
    cJSON *body = cJSON_CreateObject();
    if (!body)
        return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (cli_is_help(a)) {
            fputs(GENERATE_HELP, stdout);
            cJSON_Delete(body);
            return cli_stdout_done("the help", 0);
        }
        int taken = 0;
        for (size_t k = 0; k < NUM_FLAGS; k++) {
            if (strcmp(a, FLAGS[k][0]) != 0)
                continue;
            char *end = NULL;
            double x = v ? strtod(v, &end) : 0;
            /* decimal numbers only: strtod also reads 0x10, inf and nan */
            if (!v || end == v || *end || v[strspn(v, "0123456789+-.eE")]) {
                cJSON_Delete(body);
                return cli_usage_err("generate", "%s expects a number", a);
            }
            /* a flag given again replaces the earlier value, as train's and lr-find's do */
            cJSON_DeleteItemFromObjectCaseSensitive(body, FLAGS[k][1]);
            cJSON_AddNumberToObject(body, FLAGS[k][1], x);
            taken = 1;
        }
        if (taken || strcmp(a, "--prompt") == 0 || strcmp(a, "--resume") == 0) {
            if (!v) {
                cJSON_Delete(body);
                return cli_usage_err("generate", "%s needs a value", a);
            }
            if (strcmp(a, "--prompt") == 0) {
                cJSON_DeleteItemFromObjectCaseSensitive(body, "prompt");
                cJSON_AddStringToObject(body, "prompt", v);
            }
            else if (strcmp(a, "--resume") == 0)
                resume = v;
            i++;
        } else if (strncmp(a, "--", 2) == 0) {
            static const char *const with_value[] = {"--resume", "--prompt", "--max-tokens",
                                                     "--temperature", "--top-k", "--seed", NULL};
            static const char *const bare[] = {"--help", NULL};
            cJSON_Delete(body);
            return cli_unknown_flag("generate", a, with_value, bare);
        } else if (!path && (a[0] != '-' || strcmp(a, "-") == 0)) {
            path = a;
        } else {
            cJSON_Delete(body);
            return cli_usage_err("generate", "unexpected argument '%s'", a);
        }
    }
    if (!path || !resume) {
        cJSON_Delete(body);
        return cli_usage_err("generate", "expects a job spec file and --resume F%s", "");
    }
    if (!cJSON_GetObjectItemCaseSensitive(body, "prompt"))
        cJSON_AddStringToObject(body, "prompt", "");
    an_err e;
    an_err_clear(&e);
    gen_params p;
    if (gen_parse(body, &p, &e)) {
        /* Every key of the body comes from a flag: a bad value is a bad command line (exit 2),
         * named by its flag rather than its JSON key. */
        const char *flag = flag_of(e.field, sizeof FLAGS / sizeof FLAGS[0]);
        int rc = flag ? cli_flag_err("generate", flag, &e) : 1;
        if (!flag)
            cli_print_err(&e);
        cJSON_Delete(body);
        return rc;
    }
    job_spec spec;
    if (cli_load_spec(path, &spec)) {
        cJSON_Delete(body);
        return 1;
    }
    int rc = 1;
    train *t = NULL;
    gen_state g;
    memset(&g, 0, sizeof g);
    if (spec.model.type != MODEL_GPT) {
        fprintf(stderr, "error: model.type: generate needs a gpt job\n");
        goto out;
    }
    if (train_create(&t, &spec, NULL, 0, &e)) {
        cli_print_err(&e);
        goto out;
    }
    if (cli_resume_from(t, &spec, resume))
        goto out;
    gtrain *gt = train_gpt(t);
    if (gen_state_init(&g, gtrain_model(gt), gtrain_vocab(gt), &p, &e)) {
        /* a number the model cannot take (a top_k over its vocabulary): still a flag's */
        const char *flag = flag_of(e.field, NUM_FLAGS);
        if (flag)
            rc = cli_flag_err("generate", flag, &e);
        else
            cli_print_err(&e);
        goto out;
    }
    fputs(p.prompt, stdout);
    char tok[5];
    int n;
    while ((n = gen_next(&g, tok)) > 0)
        fwrite(tok, 1, (size_t)n, stdout);
    fputc('\n', stdout);
    if (n == -EDOM)
        fprintf(stderr, "error: the model's next-token scores are not finite after %d tokens "
                "(this state's weights overflow): nothing to draw from\n", g.made);
    else if (n < 0)
        fprintf(stderr, "error: generation failed after %d tokens: %s\n", g.made,
                strerror(-n));
    rc = cli_stdout_done("the text", n < 0);
out:
    gen_state_free(&g);
    train_free(t);
    job_spec_free(&spec);
    cJSON_Delete(body);
    return rc;
}
