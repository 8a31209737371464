/* cli_util — what the offline commands share: reading files, printing errors and usage,
 * loading a job spec with every error at once, numbers in their exact form. */
#ifndef ANNEALD_CLI_UTIL_H
#define ANNEALD_CLI_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/config.h"

/* Prints "error: FIELD: MESSAGE" (or "error: MESSAGE") on stderr. */
void cli_print_err(const an_err *e);

/* Prints "anneald CMD: <fmt with arg>" and where to read more on stderr; returns 2 (the exit
 * status of a bad command line). */
int cli_usage_err(const char *cmd, const char *fmt, const char *arg);

/* Flushes stdout and checks it: returns rc when everything written to it went out, else prints
 * "error: cannot write WHAT to stdout: REASON" on stderr and returns rc, or 1 when rc is 0 (a
 * full disk or a closed stdout must not pass for success). Every command calls it last. */
int cli_stdout_done(const char *what, int rc);

/* An error of the request a command built from its flags (an_err of core/, whose field is
 * the JSON key a flag set): printed as a bad command line naming the flag, "anneald CMD:
 * FLAG must be …" (the key at the start of the message becomes the flag). Returns 2. */
int cli_flag_err(const char *cmd, const char *flag, const an_err *e);

/* An argument starting with "--" that is none of a command's flags: prints "anneald CMD:
 * unknown flag 'ARG'", with the nearest of `with_value` (the flags that take a value) and
 * `bare` (those that take none) when one is within two edits, or how to give the value when
 * ARG is a known flag written FLAG=VALUE. Both lists end with NULL; bare may be NULL.
 * Returns 2. */
int cli_unknown_flag(const char *cmd, const char *arg, const char *const *with_value,
                     const char *const *bare);

/* 1 if a is --help or -h. */
int cli_is_help(const char *a);

/* Prints the help of one command ("check", "preview", "train") on stdout; returns 0. */
int cli_help(const char *cmd);

/* Reads the JSON file at `path` into *out (cJSON_Delete it); prints the error (a file that
 * cannot be read, malformed JSON with its place) and returns 1 on failure. */
int cli_read_json(const char *path, struct cJSON **out);

/* Reads and parses the spec at `path`; prints every error (one line each) and returns 1 on
 * failure. */
int cli_load_spec(const char *path, job_spec *spec);

/* Output files of one command: flags[k] names paths[k] (NULL: not given). Refuses, with exit
 * status 2 and a message, "-" (these outputs are files, not stdout), two outputs naming the
 * same file, and an output naming the input file `input` (NULL or "-": none): one would
 * overwrite the other. 0 when they are distinct. */
int cli_distinct_outputs(const char *cmd, const char *input, const char *const *flags,
                         const char *const *paths, int n);

/* Prints the spec's warnings ("warning: …", one a line) on stderr, as `check` does. */
void cli_print_warnings(const job_spec *spec);

/* A spec of several ranks trains in this one process, on the same global batch
 * (cfg_world_one_process); a note on stderr says so. */
void cli_one_process(job_spec *spec);

/* A whole decimal number in [lo, hi] into *out; -EINVAL otherwise. */
int cli_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out);

/* A double in the fewest digits that read back to the same value (as the API prints). */
const char *cli_exact(char buf[40], double v);

/* Pretty-prints JSON with two-space indentation (cJSON_Print indents with tabs) and every
 * number exact (json_make_exact), as the daemon prints it; malloc'd. */
char *cli_json_pretty(const void *json);

/* Writes s as one shell word (single-quoted when it holds anything but plain characters). */
void cli_shell_word(FILE *out, const char *s);

#endif
