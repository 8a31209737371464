/* cli_lrfind — `anneald lr-find`: the learning-rate finder offline. */
#ifndef ANNEALD_CLI_LRFIND_H
#define ANNEALD_CLI_LRFIND_H

/* `anneald lr-find FILE|- [--min-lr X] [--max-lr X] [--steps N] [--stop-factor F]
 * [--mode exponential|linear] [--csv F]`: FILE is a finder request ({"job": …, "min_lr": …})
 * or a bare job spec; flags override the request's options. Trains the sweep in the
 * foreground, stops it once the smoothed loss diverges, prints the finder's report (the JSON of
 * GET /v1/jobs/{id}/lr_finder) on stdout and a summary on stderr. Exit 0, 1 for a bad spec or
 * a failed run, 2 for a bad command line. */
int cli_lrfind(int argc, char **argv);

#endif
