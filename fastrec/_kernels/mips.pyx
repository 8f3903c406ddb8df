"""Exact top-k of inner products, most of them skipped by an upper bound
(twin: ``fastrec.reference.mips``; the bounds come from ``fastrec.mips``).

For each row r the caller gives an upper bound of every score (a cheap product of
rotated head coordinates and tail norms) and an allowance ``slack[r]`` for the
bound's rounding.  The kernel computes an item's exact score, users[r] . items[j]
in double plus an optional sparse bonus, only where the bound reaches the row's
current k-th best; the result is the exact top-k, ranked by score descending with
ties to the lower id, whatever the bounds' tightness.
"""
from cython.parallel cimport parallel, prange
from libc.math cimport INFINITY, fabs
from libc.stdint cimport int32_t, int64_t, uint8_t
from libc.stdlib cimport calloc, free

from fastrec._kernels._heap cimport heap_offer, heap_sort, value_t

ctypedef fused pattern_t:  # the excluded and bonus columns' CSR
    int32_t
    int64_t

cdef extern from *:
    """
    /* the exact score: a double dot product whose summation order is fixed at build time */
    static inline double fastrec_dot_f(const float* a, const float* b, Py_ssize_t n) {
        double total = 0.0;
        #pragma omp simd reduction(+:total)
        for (Py_ssize_t d = 0; d < n; d++) total += (double)a[d] * (double)b[d];
        return total;
    }
    static inline double fastrec_dot_d(const double* a, const double* b, Py_ssize_t n) {
        double total = 0.0;
        #pragma omp simd reduction(+:total)
        for (Py_ssize_t d = 0; d < n; d++) total += a[d] * b[d];
        return total;
    }
    /* whether any of x[0..n) reaches t: one vector compare per lane group, no branch */
    static inline int fastrec_any_ge_f(const float* x, Py_ssize_t n, float t) {
        int hit = 0;
        #pragma omp simd reduction(|:hit)
        for (Py_ssize_t j = 0; j < n; j++) hit |= x[j] >= t;
        return hit;
    }
    static inline int fastrec_any_ge_d(const double* x, Py_ssize_t n, double t) {
        int hit = 0;
        #pragma omp simd reduction(|:hit)
        for (Py_ssize_t j = 0; j < n; j++) hit |= x[j] >= t;
        return hit;
    }
    """
    int fastrec_any_ge_f(const float* x, Py_ssize_t n, float t) noexcept nogil
    int fastrec_any_ge_d(const double* x, Py_ssize_t n, double t) noexcept nogil
    double fastrec_dot_f(const float* a, const float* b, Py_ssize_t n) noexcept nogil
    double fastrec_dot_d(const double* a, const double* b, Py_ssize_t n) noexcept nogil

cdef enum:
    SKIP_CHUNK = 32  # bounds tested together before any is looked at one by one


cdef inline double _dot(const value_t* a, const value_t* b, Py_ssize_t n) noexcept nogil:
    if value_t is float:
        return fastrec_dot_f(a, b, n)
    else:
        return fastrec_dot_d(a, b, n)


cdef inline bint _any_reaches(const value_t* x, Py_ssize_t n, value_t t) noexcept nogil:
    if value_t is float:
        return fastrec_any_ge_f(x, n, t)
    else:
        return fastrec_any_ge_d(x, n, t)


cdef inline bint _in_sorted(const pattern_t* values, Py_ssize_t size, int64_t j) noexcept nogil:
    cdef Py_ssize_t low = 0, high = size, mid
    while low < high:
        mid = (low + high) // 2
        if values[mid] < j:
            low = mid + 1
        else:
            high = mid
    return low < size and values[low] == j


cdef int64_t _row_topk(value_t* row, Py_ssize_t n, const value_t* user, const value_t* items,
                       Py_ssize_t dims, double slack, const int64_t* warm, Py_ssize_t n_warm,
                       const uint8_t* is_warm, const uint8_t* mask, const pattern_t* seen,
                       Py_ssize_t n_seen, const pattern_t* bonus_at, const double* bonus_by,
                       Py_ssize_t n_bonus, double* bonus, Py_ssize_t k, int64_t* out_ids,
                       value_t* out_scores) noexcept nogil:
    """One row of ``pruned_topk``; ``bonus`` is zeroed scratch of n doubles, left zeroed."""
    cdef Py_ssize_t j, q, p, size = 0, seen_pos = 0, chunk_end
    cdef int64_t exact = 0, item
    cdef double score, largest_bonus = 0.0
    cdef value_t threshold = -INFINITY  # bound below which nothing can enter, once full
    for p in range(n_bonus):
        bonus[bonus_at[p]] += bonus_by[p]
    for p in range(n_bonus):
        j = bonus_at[p]
        if fabs(bonus[j]) > largest_bonus:
            largest_bonus = fabs(bonus[j])
        row[j] = <value_t>(row[j] + bonus_by[p])
    # the bonus's own rounding in the bounds row: a few ulps of its size
    slack += 4.0 * largest_bonus * (1e-15 if value_t is double else 1.2e-7)

    for q in range(n_warm):
        item = warm[q]
        if mask[item] or _in_sorted(seen, n_seen, item):
            continue
        score = _dot(user, items + item * dims, dims) + bonus[item]
        exact += 1
        if not (score > -INFINITY):  # NaN or -inf
            continue
        heap_offer(out_scores, out_ids, &size, k, <value_t>score, item)
        if size == k:
            threshold = <value_t>(out_scores[0] - slack)

    j = 0
    while j < n:
        chunk_end = j + SKIP_CHUNK
        if chunk_end <= n:
            if not _any_reaches(row + j, SKIP_CHUNK, threshold):
                j = chunk_end
                continue
        else:
            chunk_end = n
        for q in range(j, chunk_end):
            # not (bound < threshold): NaN bounds are looked at too
            if row[q] < threshold or is_warm[q] or mask[q]:
                continue
            while seen_pos < n_seen and seen[seen_pos] < q:
                seen_pos += 1
            if seen_pos < n_seen and seen[seen_pos] == q:
                continue
            score = _dot(user, items + q * dims, dims) + bonus[q]
            exact += 1
            if not (score > -INFINITY):
                continue
            heap_offer(out_scores, out_ids, &size, k, <value_t>score, <int64_t>q)
            if size == k:
                threshold = <value_t>(out_scores[0] - slack)
        j = chunk_end

    heap_sort(out_scores, out_ids, size)
    for q in range(size, k):
        out_scores[q] = -INFINITY
        out_ids[q] = -1
    for p in range(n_bonus):
        bonus[bonus_at[p]] = 0.0
    return exact


def pruned_topk(value_t[:, ::1] bounds, const value_t[:, ::1] users, const value_t[:, ::1] items,
                const double[::1] slack, const int64_t[::1] warm, const uint8_t[::1] is_warm,
                const uint8_t[:, ::1] dense_mask, const pattern_t[::1] seen_indptr,
                const pattern_t[::1] seen_indices, const pattern_t[::1] bonus_indptr,
                const pattern_t[::1] bonus_lengths, const pattern_t[::1] bonus_indices, const double[::1] bonus_values,
                int64_t[:, ::1] out_ids, value_t[:, ::1] out_scores, int num_threads):
    """Top-k of ``users @ items.T + bonus`` per row; returns how many exact scores it took.

    Contract (checked by ``fastrec.mips``): ``bounds`` (rows, n) are upper bounds of
    ``users @ items.T`` to within ``slack``; the kernel adds each row's bonus into its
    bounds row (the array is scratch).  ``warm`` lists items scored first, to raise the
    threshold early, and ``is_warm`` (n,) marks them.  ``dense_mask`` (1 or rows, n):
    non-zero excludes the column; ``seen_*``: a CSR of excluded columns per row, sorted;
    ``bonus_*``: (column, value) pairs added to the scores, row r's at ``bonus_indptr[r]``
    onwards, ``bonus_lengths[r]`` of them, any order, repeats summed.
    A NaN or -inf score is never a candidate; rows with fewer than k candidates are
    padded with id -1 and score -inf.
    """
    cdef Py_ssize_t n_rows = bounds.shape[0], n = bounds.shape[1], dims = users.shape[1]
    cdef Py_ssize_t k = out_ids.shape[1], r
    cdef bint shared_mask = dense_mask.shape[0] == 1
    cdef int64_t exact = 0
    cdef double* bonus
    if n_rows == 0 or k == 0:
        return 0
    with nogil, parallel(num_threads=num_threads):
        bonus = <double*>calloc(n + 1, sizeof(double))
        try:
            if bonus == NULL:
                with gil:
                    raise MemoryError("pruned_topk: cannot allocate per-thread scratch")
            for r in prange(n_rows, schedule="dynamic"):
                exact += _row_topk(&bounds[r, 0], n, &users[r, 0], &items[0, 0], dims, slack[r],
                                   &warm[0], warm.shape[0], &is_warm[0],
                                   &dense_mask[0 if shared_mask else r, 0],
                                   &seen_indices[0] + seen_indptr[r], seen_indptr[r + 1] - seen_indptr[r],
                                   &bonus_indices[0] + bonus_indptr[r], &bonus_values[0] + bonus_indptr[r],
                                   bonus_lengths[r], bonus, k,
                                   &out_ids[r, 0], &out_scores[r, 0])
        finally:
            free(bonus)
    return exact
