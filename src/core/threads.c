// SPDX-License-Identifier: MIT
// threads.c — the one thread pool: OpenMP. OpenBLAS is linked in its OpenMP
// build so BLAS calls and our kernels share the same workers instead of two
// pools spinning against each other on few cores.
#include "core.h"

#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

void keel_threads_set(int n) {
#ifdef _OPENMP
    if (n <= 0) n = omp_get_num_procs();
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

int keel_threads_get(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

double keel_time_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
