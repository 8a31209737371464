/* startup_signals — SIGINT and SIGTERM from the first instruction on, for the daemon and for
 * `anneald train`.
 *
 * Each takes them later its own way (the daemon on its loop thread, daemon/loop.c; the trainer
 * between steps, cli_train.c). Before that each does seconds of work: the daemon opens and
 * migrates the store and loads its jobs; the trainer reads the spec, makes the data set and
 * builds the model. A signal then used to end the process by its default action, killed by the
 * signal with no word said. So main blocks the two before anything else (the mask survives its
 * exec of itself, daemon/main.c), and until start-up is over a thread of its own waits for
 * them: one that comes ends the process at once through the command's `stop`, which says so.
 * It waits in sigwaitinfo, never in a handler, so a signal never lands on a thread inside a
 * oneDNN kernel (docs/ARCHITECTURE.md, "Signals"); the threads started meanwhile inherit the
 * mask. */
#ifndef ANNEALD_STARTUP_SIGNALS_H
#define ANNEALD_STARTUP_SIGNALS_H

/* Blocks SIGINT and SIGTERM in the calling thread (main, first thing). */
void startup_signals_block(void);

/* Unblocks them in the calling thread, once its own way of taking them is in place: a signal
 * that came meanwhile is taken then. */
void startup_signals_unblock(void);

/* Ends the process on stop signal `sig` during start-up, saying so (on the watching thread,
 * while the main thread is anywhere in its start-up): it must not return. */
typedef void (*startup_stop)(int sig);

/* Starts the thread that calls `stop` on a stop signal during start-up. 0 or -errno (the
 * signals then stay blocked until the command takes them). */
int startup_watch(startup_stop stop);

/* hold 1: a signal that comes now waits until startup_hold(0) (a file being probed must not
 * be left behind); hold 0: it ends the process again. */
void startup_hold(int hold);

/* Start-up is over: the thread ends; a signal it took meanwhile is pending again, blocked,
 * for the command to take. Nothing when no thread runs. */
void startup_over(void);

#endif
