# Software prefetch shared by the kernels: a no-op where the compiler has no builtin.
cdef extern from *:
    """
    #if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    /* volatile asm, not __builtin_prefetch: gcc counts the builtin as no side effect, so it
       deletes a loop made only of prefetches (prefetch_span's) and then any call to an
       inline helper made only of them */
    #define fastrec_prefetch(p) __asm__ __volatile__("prefetcht0 %0" : : "m"(*(const char*)(p)))
    #elif defined(__GNUC__) || defined(__clang__)
    #define fastrec_prefetch(p) __builtin_prefetch(p)
    #else
    #define fastrec_prefetch(p) ((void)0)
    #endif
    """
    void fastrec_prefetch(const void* p) noexcept nogil

cdef enum:
    CACHE_LINE = 64


cdef inline void prefetch_span(const void* start, Py_ssize_t nbytes) noexcept nogil:
    """Fetch every cache line of ``nbytes`` from ``start`` (a scattered row: the hardware
    prefetcher sees only its first lines)."""
    cdef const char* at = <const char*>start
    cdef const char* stop = at + nbytes
    while at < stop:
        fastrec_prefetch(at)
        at += CACHE_LINE
    if nbytes > 0:
        fastrec_prefetch(stop - 1)  # the last line when the span starts mid-line


cdef inline void prefetch_entries(const void* indices, const void* values, Py_ssize_t start,
                                  Py_ssize_t stop, Py_ssize_t index_size,
                                  Py_ssize_t value_size) noexcept nogil:
    """Fetch entries start..stop of a sparse row stored elsewhere: its indices and its
    values, of ``index_size`` and ``value_size`` bytes each."""
    prefetch_span(<const char*>indices + start * index_size, (stop - start) * index_size)
    prefetch_span(<const char*>values + start * value_size, (stop - start) * value_size)
