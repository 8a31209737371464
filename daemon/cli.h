/* cli — the offline commands: `anneald check`, `anneald preview`, `anneald train`.
 *
 * Each runs in the foreground without the service and returns the process exit status:
 * 0 on success, 1 for a bad spec or a failed run (errors printed with their JSON path),
 * 2 for a bad command line. */
#ifndef ANNEALD_CLI_H
#define ANNEALD_CLI_H

#include <stddef.h>

/* `anneald check FILE|-`: argv[0] is "check". Prints the normalised spec and its warnings as
 * JSON ({"spec":…,"warnings":[…]}) on stdout, or the error ("error: FIELD: MESSAGE") on
 * stderr with status 1. */
int cli_check(int argc, char **argv);

/* `anneald preview FILE|- [--steps N] [--param-group-lr X]... [--format json|csv]`: prints
 * exactly what POST /v1/schedules/preview answers (json) or `step,lr0,lr1,…[,mom0,…]` rows. */
int cli_preview(int argc, char **argv);

/* `anneald train JOB.json [--steps N] [--metrics-csv F] [--weights-json F] [--save F]
 * [--resume F]`: trains one job in the foreground. */
int cli_train(int argc, char **argv);

/* Restores a --save file (or a bare checkpoint blob) of `spec` into t (cli_train.c); prints
 * the error and returns 1 when it cannot. */
struct train;
struct job_spec;
int cli_resume_from(struct train *t, const struct job_spec *spec, const char *path);

/* `anneald generate JOB.json --resume F --prompt TEXT [--max-tokens N] [--temperature T]
 * [--top-k K] [--seed S]`: samples text from a gpt job's saved state (cli_generate.c). */
int cli_generate(int argc, char **argv);


#endif
