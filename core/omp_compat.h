/* omp_compat — OpenMP's header, or for a build without OpenMP (the fuzzing build) the few
 * calls core/ makes, answering as a team of one thread: every loop then runs on the calling
 * thread. And a thread's piece of a loop shared by its team. */
#ifndef ANNEALD_OMP_COMPAT_H
#define ANNEALD_OMP_COMPAT_H

#ifdef _OPENMP
#include <omp.h>
#else
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_threads(void) { return 1; }
static inline int omp_get_max_threads(void) { return 1; }
static inline int omp_in_parallel(void) { return 0; }
static inline void omp_set_num_threads(int n) { (void)n; }
#endif

#include <stddef.h>

/* This thread's piece [*i0, *i1) of n items, pieces starting at multiples of align. */
static inline void span(int n, int align, int *i0, int *i1)
{
    int k = omp_get_num_threads(), t = omp_get_thread_num();
    int per = ((n + k - 1) / k + align - 1) / align * align;
    long a = (long)t * per, b = a + per;
    *i0 = a < n ? (int)a : n;
    *i1 = b < n ? (int)b : n;
}

/* This thread's piece [*i0, *i1) of n elements, in whole blocks of `block` elements. */
static inline void span_blocks(size_t n, size_t block, size_t *i0, size_t *i1)
{
    int b0, b1;
    span((int)((n + block - 1) / block), 1, &b0, &b1);
    *i0 = (size_t)b0 * block < n ? (size_t)b0 * block : n;
    *i1 = (size_t)b1 * block < n ? (size_t)b1 * block : n;
}

#endif
