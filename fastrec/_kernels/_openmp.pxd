# OpenMP shim shared by the kernels: compiles with or without -fopenmp.
cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define FASTREC_OPENMP 1
    static int fastrec_omp_max_threads(void) { return omp_get_max_threads(); }
    static int fastrec_omp_thread_num(void) { return omp_get_thread_num(); }
    #else
    #define FASTREC_OPENMP 0
    static int fastrec_omp_max_threads(void) { return 1; }
    static int fastrec_omp_thread_num(void) { return 0; }
    #endif
    """
    bint FASTREC_OPENMP
    int fastrec_omp_max_threads() noexcept nogil
    int fastrec_omp_thread_num() noexcept nogil
