# Rows of a sparse product X @ T scattered into dense per-thread scratch, with their
# normalisation statistics: shared by the kNN, blend and pruned-search kernels.
from libc.math cimport sqrt
from libc.stdint cimport int64_t, uint8_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memset

from fastrec._kernels._heap cimport index_t, value_t
from fastrec._kernels._prefetch cimport prefetch_entries

cdef enum:
    PRODUCT_AHEAD = 4  # rows of T prefetched ahead of use

cdef enum:  # normalisations, in fastrec.models.blend.NORMALIZATIONS order
    ZSCORE = 0
    MINMAX = 1
    NONE = 2


cdef struct RowScratch:
    double* values    # a dense row, zero outside the listed columns
    int64_t* seen     # the listed columns (room for n + 1: the branch-free listing)
    uint8_t* listed   # 1 where a column is in seen


cdef inline RowScratch* scratch_new(Py_ssize_t n) noexcept nogil:
    """A thread's zeroed scratch for rows of n columns, or NULL when memory runs out."""
    cdef RowScratch* work = <RowScratch*>calloc(1, sizeof(RowScratch))
    if work == NULL:
        return NULL
    work.values = <double*>calloc(n + 1, sizeof(double))
    work.seen = <int64_t*>malloc((n + 1) * sizeof(int64_t))
    work.listed = <uint8_t*>calloc(n + 1, sizeof(uint8_t))
    if work.values == NULL or work.seen == NULL or work.listed == NULL:
        scratch_free(work)
        return NULL
    return work


cdef inline void scratch_free(RowScratch* work) noexcept nogil:
    if work != NULL:
        free(work.values)
        free(work.seen)
        free(work.listed)
        free(work)


cdef inline Py_ssize_t scratch_bytes(Py_ssize_t n) noexcept nogil:
    """Bytes a RowScratch of n columns takes in a caller's buffer (``scratch_at``)."""
    return 2 * (n + 1) * sizeof(double) + (n + 8) // 8 * 8


cdef inline RowScratch scratch_at(char* base, Py_ssize_t n) noexcept nogil:
    """A zeroed RowScratch of n columns laid out at ``base`` (8-byte aligned,
    ``scratch_bytes(n)`` long, reused across calls: no allocation or first-touch page
    faults).  Returned by value: assigned inside a parallel block, each thread's own."""
    cdef RowScratch work
    work.values = <double*>base
    work.seen = <int64_t*>(base + (n + 1) * sizeof(double))
    work.listed = <uint8_t*>(base + 2 * (n + 1) * sizeof(double))
    memset(work.values, 0, (n + 1) * sizeof(double))
    memset(work.listed, 0, n + 1)
    return work


cdef inline void scratch_clear(RowScratch* work, Py_ssize_t touched, bint by_value) noexcept nogil:
    """Zero the entries of the ``touched`` listed columns, ready for the next row
    (``by_value``: listed by ``product_row(by_value=True)``, no flags to clear)."""
    cdef Py_ssize_t p
    for p in range(touched):
        work.values[work.seen[p]] = 0.0
        if not by_value:
            work.listed[work.seen[p]] = 0


cdef inline Py_ssize_t scratch_list(RowScratch* work, Py_ssize_t touched, int64_t j) noexcept nogil:
    """List column j if it is not yet (no branch to mispredict); the new count."""
    work.seen[touched] = j  # kept only the first time
    touched = touched + 1 - work.listed[j]
    work.listed[j] = 1
    return touched


cdef inline Py_ssize_t product_row(Py_ssize_t row, const value_t* x_data, const index_t* x_indices,
                                   const int64_t* x_indptr, const value_t* t_data,
                                   const index_t* t_indices, const int64_t* t_indptr,
                                   RowScratch* work, bint by_value) noexcept nogil:
    """Add row ``row`` of X @ T into ``work`` (listing must be empty: every ``listed`` 0),
    listing each touched column; returns how many columns it touched.

    ``by_value`` (pass a constant: each call site inlines to its own loop): a column is
    new while its value is 0, and ``listed`` is left alone.  Only for products that
    cannot give 0: every term positive and no x * t underflowing to 0
    (``fastrec.mips.products_positive``); it spares a load and a store per term and the
    flags' clearing."""
    cdef Py_ssize_t p, q, j, touched = 0, end = x_indptr[row + 1]
    cdef double value
    cdef double* values = work.values
    cdef int64_t* seen = work.seen
    cdef uint8_t* listed = work.listed
    for p in range(x_indptr[row], end):
        value = x_data[p]
        if p + PRODUCT_AHEAD < end:  # the rows of T are scattered: fetch one a few rows ahead
            prefetch_entries(t_indices, t_data, t_indptr[x_indices[p + PRODUCT_AHEAD]],
                             t_indptr[x_indices[p + PRODUCT_AHEAD] + 1], sizeof(index_t),
                             sizeof(value_t))
        for q in range(t_indptr[x_indices[p]], t_indptr[x_indices[p] + 1]):
            j = t_indices[q]
            seen[touched] = j  # kept only the first time: no branch to mispredict
            if by_value:
                touched = touched + (values[j] == 0)
            else:
                touched = touched + 1 - listed[j]
                listed[j] = 1
            values[j] = values[j] + value * t_data[q]
    return touched


cdef struct RowStats:  # running sums of a row's listed entries (see touched_stats)
    double total
    double square
    double low   # with the unlisted 0s, if any
    double high


cdef inline RowStats stats_start(const RowScratch* work, Py_ssize_t touched, Py_ssize_t n) noexcept nogil:
    """Empty sums for a row of n entries with ``touched`` listed: low and high start at
    the unlisted 0 when there is one, else at a listed entry."""
    cdef RowStats stats
    stats.total = 0.0
    stats.square = 0.0
    stats.low = 0.0 if touched < n else work.values[work.seen[0]]
    stats.high = stats.low
    return stats


cdef inline void stats_add(RowStats* stats, double value) noexcept nogil:
    stats.total = stats.total + value
    stats.square = stats.square + value * value
    if value < stats.low:
        stats.low = value
    if value > stats.high:
        stats.high = value


cdef inline void stats_finish(const RowStats* stats, Py_ssize_t touched, Py_ssize_t n, int normalize,
                              double* scale, double* shift, double* magnitude) noexcept nogil:
    """``touched_stats``'s results from the row's sums."""
    cdef double mean, spread
    scale[0] = 1.0
    shift[0] = 0.0
    if magnitude != NULL:  # low and high include the unlisted 0 (or a listed entry)
        magnitude[0] = max(-stats.low, stats.high) if touched else 0.0
    if normalize == ZSCORE:
        mean = stats.total / n
        spread = sqrt(max(stats.square / n - mean * mean, 0.0))
        shift[0] = mean
        if spread > 0:
            scale[0] = 1.0 / spread
    elif normalize == MINMAX:
        shift[0] = stats.low
        if stats.high > stats.low:
            scale[0] = 1.0 / (stats.high - stats.low)


cdef inline void touched_stats(const RowScratch* work, Py_ssize_t touched, Py_ssize_t n, int normalize,
                               double* scale, double* shift, double* magnitude) noexcept nogil:
    """``(scale, shift)`` with normalised = (row - shift) * scale, of a row of n entries
    whose unlisted ones are 0: zscore (1 / std, mean), minmax (1 / range, min), none
    (1, 0); a constant row keeps scale 1.  ``magnitude``, unless NULL: the largest
    absolute value of the listed entries (0 when none)."""
    cdef Py_ssize_t p
    cdef RowStats stats = stats_start(work, touched, n)
    for p in range(touched):
        stats_add(&stats, work.values[work.seen[p]])
    stats_finish(&stats, touched, n, normalize, scale, shift, magnitude)
