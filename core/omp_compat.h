/* omp_compat — OpenMP's header, or for a build without OpenMP (the fuzzing build) the few
 * calls core/ makes, answering as a team of one thread: every loop then runs on the calling
 * thread. */
#ifndef ANNEALD_OMP_COMPAT_H
#define ANNEALD_OMP_COMPAT_H

#ifdef _OPENMP
#include <omp.h>
#else
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_threads(void) { return 1; }
static inline int omp_get_max_threads(void) { return 1; }
#endif

#endif
