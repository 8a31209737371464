/* options — the daemon's command-line flags (API.md, "Command line"), parsed into one struct.
 *
 * Parsing only: no I/O beyond reading the token file, no exit(). main.c decides what a bad
 * flag means (exit status 2). */
#ifndef ANNEALD_OPTIONS_H
#define ANNEALD_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

#include "jobs/settings.h"
#include "util/log.h"


/* Fills `o` with the defaults: 127.0.0.1:8470, anneald.db, one worker per core, info logs,
 * 1 MiB JSON bodies, 256 MiB datasets, jobs of up to half the physical memory. */
void options_defaults(daemon_opts *o);

/* Parses the service flags in argv[1..argc-1] into `o` (which holds the defaults). Returns 0,
 * 1 when --help or --version was asked for (`*what` = "help" / "version"), or -EINVAL with a
 * one-line message in `msg`. Reads the token file when one is named (trailing whitespace is
 * dropped; an empty or unreadable file is an error). */
int options_parse(int argc, char **argv, daemon_opts *o, const char **what, char *msg,
                  size_t msgsz);

/* 1 when `host` is a loopback address (127.0.0.0/8, ::1, "localhost"). */
int options_is_loopback(const char *host);

/* The usage text printed by --help. */
const char *options_usage(void);

#endif
