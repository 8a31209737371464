/* metrics_file — the per-step metrics file of `anneald train --metrics-csv` and of the rank
 * program. */
#ifndef ANNEALD_METRICS_FILE_H
#define ANNEALD_METRICS_FILE_H

#include <stdint.h>
#include <stdio.h>

/* Opens the metrics file for writing rows after `header` (a line ending in a newline).
 * resumed = 0: a new file with the header. resumed > 0 (the step a --resume state restored):
 * an existing file is continued — it must have the same header; its rows up to that step
 * stay, later ones (a run that went on past the saved state) are dropped, and *time_base
 * gets the time column of the last kept row, so that the new rows' time counts on from it.
 * A missing or empty file is started anew. Prints the error and returns 1 on failure. */
int metrics_file_open(const char *path, const char *header, int64_t resumed, FILE **out,
                      double *time_base);

#endif
