/* cli_signals — SIGINT and SIGTERM of `anneald train` from its first instruction on.
 *
 * The trainer takes the two between steps (cli_train.c). Before that it reads the spec, makes
 * the data set and builds the model, seconds for a large one: a signal then used to end it by
 * its default action, killed by the signal with no word said. So main blocks the two before
 * anything else (the mask survives its exec of itself, daemon/main.c), and until start-up is
 * over a thread of its own waits for them: one that comes ends the process at once, with a
 * message and exit status 130, before anything is written. It waits in sigwaitinfo, never in
 * a handler, so a signal never lands on a thread inside a oneDNN kernel (docs/ARCHITECTURE.md,
 * "Signals"); the threads started meanwhile (OpenMP's) inherit the mask. */
#ifndef ANNEALD_CLI_SIGNALS_H
#define ANNEALD_CLI_SIGNALS_H

/* Blocks SIGINT and SIGTERM in the calling thread (main, first thing, for `train`). */
void cli_signals_block(void);

/* Starts the thread that ends the process on a stop signal during start-up, saying
 * "anneald CMD: interrupted ... during start-up", exit 130. 0 or -errno (the signals then
 * stay blocked until the command takes them). */
int cli_startup_watch(const char *cmd);

/* hold 1: a signal that comes now waits until cli_startup_hold(0) (a file being probed must
 * not be left behind); hold 0: it ends the process again. */
void cli_startup_hold(int hold);

/* Start-up is over: the thread ends; a signal it took meanwhile is pending again, blocked,
 * for the command to take. Nothing when no thread runs. */
void cli_startup_over(void);

#endif
