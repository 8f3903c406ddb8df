# Software prefetch shared by the kernels: a no-op where the compiler has no builtin.
cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define fastrec_prefetch(p) __builtin_prefetch(p)
    #else
    #define fastrec_prefetch(p) ((void)0)
    #endif
    """
    void fastrec_prefetch(const void* p) noexcept nogil
