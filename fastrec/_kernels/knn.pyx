"""Kernels of the neighbourhood models (twins in ``fastrec.reference.knn``).

- ``knn_estimate``: Surprise-style kNN estimates.  For a target row x (item-based: an
  item) and a context row y (item-based: a user), the neighbours are the rows x2 listed
  in ``yr[y]`` (the items the user rated) with a positive similarity s(x, x2); the k most
  similar (ties: lower id) give the weighted mean of their deviations.  Queries come in
  groups sharing x, so each similarity row is scattered once per group.
- ``product_topk``: the n best columns of rows of X @ T (implicit's item-item scoring),
  minus a pattern of excluded columns per row.
- ``pair_dot``: <A[a], B[b]> for pairs of rows with sorted indices.
"""
from cython.parallel cimport parallel, prange
from libc.math cimport INFINITY
from libc.stdint cimport int32_t, int64_t, uint8_t
from libc.stdlib cimport calloc, free, malloc

from fastrec._kernels._heap cimport index_t, select_best, value_t
from fastrec._kernels._product cimport RowScratch, product_row, scratch_free, scratch_new


cdef extern from *:
    """
    static inline int fastrec_popcount(unsigned long long v) { return __builtin_popcountll(v); }
    static inline int fastrec_ctz(unsigned long long v) { return __builtin_ctzll(v); }
    """
    int fastrec_popcount(unsigned long long v) noexcept nogil
    int fastrec_ctz(unsigned long long v) noexcept nogil


cdef inline Py_ssize_t _rank_of_self(const value_t* row_s, const index_t* row_ids,
                                     Py_ssize_t length, double s, Py_ssize_t x) noexcept nogil:
    """How many entries of a sorted similarity row rank before (s, x)."""
    cdef Py_ssize_t lo = 0, hi = length, mid
    while lo < hi:
        mid = (lo + hi) // 2
        if row_s[mid] > s or (row_s[mid] == s and row_ids[mid] < x):
            lo = mid + 1
        else:
            hi = mid
    return lo


def knn_estimate(const value_t[::1] sim_data, const index_t[::1] sim_indices,
                 const int64_t[::1] sim_indptr,
                 const double[::1] yr_dev, const index_t[::1] yr_indices,
                 const int64_t[::1] yr_indptr,
                 const int64_t[::1] group_x, const int64_t[::1] group_start,
                 const int64_t[::1] group_stop, const int64_t[::1] group_out,
                 const int64_t[::1] query_y, Py_ssize_t k, double self_similarity,
                 double[::1] out_mean, int32_t[::1] out_k, int num_threads):
    """Weighted mean deviation of the k most similar rated neighbours, per query.

    Contract (unchecked): ``sim`` is an (n_x, n_x) CSR with no stored diagonal whose
    rows are sorted by score descending, ties by the lower id (as
    ``fastrec.similarity`` returns them); ``yr`` an (n_y, n_x) CSR with one deviation
    per entry; group g has target ``group_x[g]`` and the queries
    ``query_y[group_start[g]:group_stop[g]]``, whose results go to
    ``out_*[group_out[g] + t - group_start[g]]``; all ids valid.  s(x, x) is
    ``self_similarity``.  ``out_mean`` is sum(s * dev) / sum(s) over the chosen
    neighbours (0 when none) and ``out_k`` their number.

    Each group scatters row x's similarities and ranks (its sorted order, with x
    itself slotted in); a query with more than k candidates finds its k best by
    setting their ranks in a bitset and counting bits, without comparisons.
    """
    cdef Py_ssize_t n_x = sim_indptr.shape[0] - 1
    cdef Py_ssize_t n_groups = group_x.shape[0], n_y = yr_indptr.shape[0] - 1
    cdef Py_ssize_t g, x, y, p, q, t, c, w, r, size, start, length, self_rank, count, pc
    cdef Py_ssize_t longest = 0, widest = 0, n_words
    cdef double s, sum_s, sum_sd, chosen
    cdef unsigned long long word
    cdef double* sim_of
    cdef int64_t* rank_of
    cdef double* cand_s
    cdef int64_t* cand_q
    cdef int64_t* cand_r
    cdef unsigned long long* bits
    for y in range(n_y):
        longest = max(longest, yr_indptr[y + 1] - yr_indptr[y])
    for x in range(n_x):
        widest = max(widest, sim_indptr[x + 1] - sim_indptr[x])
    n_words = (widest + 1) // 64 + 1  # ranks 0..widest (x itself included)
    if n_groups == 0 or k <= 0:
        out_mean[:] = 0.0
        out_k[:] = 0
        return
    with nogil, parallel(num_threads=num_threads):
        sim_of = <double*>calloc(n_x + 1, sizeof(double))
        rank_of = <int64_t*>calloc(n_x + 1, sizeof(int64_t))
        cand_s = <double*>malloc((longest + 1) * sizeof(double))
        cand_q = <int64_t*>malloc((longest + 1) * sizeof(int64_t))
        cand_r = <int64_t*>malloc((longest + 1) * sizeof(int64_t))
        bits = <unsigned long long*>calloc(n_words, sizeof(unsigned long long))
        try:
            if (sim_of == NULL or rank_of == NULL or cand_s == NULL or cand_q == NULL
                    or cand_r == NULL or bits == NULL):
                with gil:
                    raise MemoryError("knn_estimate: cannot allocate per-thread scratch")
            for g in prange(n_groups, schedule="dynamic", chunksize=4):
                x = group_x[g]
                start = sim_indptr[x]
                length = sim_indptr[x + 1] - start
                self_rank = _rank_of_self(&sim_data[start], &sim_indices[start], length,
                                          self_similarity, x)
                for p in range(length):
                    sim_of[sim_indices[start + p]] = sim_data[start + p]
                    rank_of[sim_indices[start + p]] = p + (p >= self_rank)
                sim_of[x] = self_similarity
                rank_of[x] = self_rank
                for t in range(group_start[g], group_stop[g]):
                    y = query_y[t]
                    size = 0
                    for q in range(yr_indptr[y], yr_indptr[y + 1]):
                        r = yr_indices[q]
                        cand_s[size] = sim_of[r]
                        cand_q[size] = q
                        cand_r[size] = rank_of[r]
                        size = size + (cand_s[size] > 0)
                    sum_s = 0.0
                    sum_sd = 0.0
                    if size > k:
                        # the k best are the k lowest ranks: find the k-th set bit
                        for c in range(size):
                            r = cand_r[c]
                            bits[r >> 6] |= 1ULL << (r & 63)
                        count = 0
                        w = 0
                        pc = fastrec_popcount(bits[0])
                        while count + pc < k:
                            count = count + pc
                            w = w + 1
                            pc = fastrec_popcount(bits[w])
                        word = bits[w]
                        for c in range(k - count - 1):
                            word = word & (word - 1)
                        r = (w << 6) + fastrec_ctz(word)  # the k-th best rank
                        for c in range(size):
                            chosen = cand_r[c] <= r
                            sum_s = sum_s + chosen * cand_s[c]
                            sum_sd = sum_sd + chosen * cand_s[c] * yr_dev[cand_q[c]]
                            bits[cand_r[c] >> 6] = 0
                        size = k
                    else:
                        for c in range(size):
                            sum_s = sum_s + cand_s[c]
                            sum_sd = sum_sd + cand_s[c] * yr_dev[cand_q[c]]
                    c = group_out[g] + t - group_start[g]
                    out_mean[c] = sum_sd / sum_s if size > 0 else 0.0
                    out_k[c] = <int32_t>size
                for p in range(start, start + length):
                    sim_of[sim_indices[p]] = 0.0
                sim_of[x] = 0.0
        finally:
            free(sim_of)
            free(rank_of)
            free(cand_s)
            free(cand_q)
            free(cand_r)
            free(bits)


def product_topk(const value_t[::1] x_data, const index_t[::1] x_indices,
                 const int64_t[::1] x_indptr,
                 const value_t[::1] t_data, const index_t[::1] t_indices,
                 const int64_t[::1] t_indptr, const int64_t[::1] rows,
                 const int64_t[::1] excluded_indptr, const index_t[::1] excluded,
                 const uint8_t[::1] column_mask, Py_ssize_t n_cols,
                 int64_t[:, ::1] out_ids, value_t[:, ::1] out_scores, bint positive,
                 int num_threads):
    """Top columns of ``X[rows] @ T`` per row, scores descending (ties: lower column).

    Contract (unchecked): X is (n_x, m) and T (m, ``n_cols``) CSR; ``rows`` index X (-1: an
    empty row); ``excluded`` holds, per row of X (``excluded_indptr`` of length
    n_x + 1, or empty for none), columns never returned for it, e.g. a user's seen items; ``column_mask``
    (n_cols,) uint8, or empty, excludes columns where non-zero.  Columns with a zero
    score are not returned; rows are padded with -1 / -inf.  Accumulates in double.
    ``positive``: every x * t is > 0 in double (``fastrec.mips.products_positive``), so
    touched columns are told by value and the excluded marked by a 0.
    """
    cdef Py_ssize_t n_rows = rows.shape[0]
    cdef Py_ssize_t n = out_ids.shape[1]
    cdef Py_ssize_t r, a, b, p, t, n_touched, size, kept
    cdef bint has_excluded = excluded_indptr.shape[0] > 0
    cdef bint has_mask = column_mask.shape[0] > 0
    cdef RowScratch* work  # the product row; ``listed`` is 1, or 2 once found excluded (unless positive)
    cdef value_t* cand_s
    cdef int64_t* cand_ids
    if n_rows == 0:
        return
    with nogil, parallel(num_threads=num_threads):
        work = scratch_new(n_cols)
        cand_s = <value_t*>malloc((n_cols + 1) * sizeof(value_t))
        cand_ids = <int64_t*>malloc((n_cols + 1) * sizeof(int64_t))
        try:
            if work == NULL or cand_s == NULL or cand_ids == NULL:
                with gil:
                    raise MemoryError("product_topk: cannot allocate per-thread scratch")
            for r in prange(n_rows, schedule="dynamic", chunksize=16):
                a = rows[r]
                n_touched = 0
                if a >= 0 and positive:
                    n_touched = product_row(a, &x_data[0], &x_indices[0], &x_indptr[0], &t_data[0],
                                            &t_indices[0], &t_indptr[0], work, True)
                elif a >= 0:
                    n_touched = product_row(a, &x_data[0], &x_indices[0], &x_indptr[0], &t_data[0],
                                            &t_indices[0], &t_indptr[0], work, False)
                if has_excluded and a >= 0:
                    for p in range(excluded_indptr[a], excluded_indptr[a + 1]):
                        b = excluded[p]
                        if positive:
                            work.values[b] = 0.0  # a zero score is never returned
                        elif work.listed[b] == 1:
                            work.listed[b] = 2
                size = 0
                for t in range(n_touched):
                    b = work.seen[t]
                    if ((positive or work.listed[b] == 1) and <value_t>work.values[b] != 0
                            and not (has_mask and column_mask[b])):
                        cand_s[size] = <value_t>work.values[b]
                        cand_ids[size] = b
                        size = size + 1
                    if not positive:
                        work.listed[b] = 0
                    work.values[b] = 0.0
                kept = select_best(cand_s, cand_ids, size, n, &out_scores[r, 0], &out_ids[r, 0]) if n > 0 else 0
                for t in range(kept, n):
                    out_ids[r, t] = -1
                    out_scores[r, t] = -INFINITY
        finally:
            scratch_free(work)
            free(cand_s)
            free(cand_ids)


def pair_dot(const double[::1] a_data, const index_t[::1] a_indices, const int64_t[::1] a_indptr,
             const double[::1] b_data, const index_t[::1] b_indices, const int64_t[::1] b_indptr,
             const int64_t[::1] a_rows, const int64_t[::1] b_rows, double[::1] out,
             int num_threads):
    """``out[p] = <A[a_rows[p]], B[b_rows[p]]>``; rows -1 are empty; indices sorted (unchecked)."""
    cdef Py_ssize_t n_pairs = a_rows.shape[0], pair, i, j, i_end, j_end
    cdef double total
    for pair in prange(n_pairs, nogil=True, schedule="static", num_threads=num_threads):
        total = 0.0
        if a_rows[pair] >= 0 and b_rows[pair] >= 0:
            i = a_indptr[a_rows[pair]]
            i_end = a_indptr[a_rows[pair] + 1]
            j = b_indptr[b_rows[pair]]
            j_end = b_indptr[b_rows[pair] + 1]
            while i < i_end and j < j_end:
                if a_indices[i] < b_indices[j]:
                    i = i + 1
                elif a_indices[i] > b_indices[j]:
                    j = j + 1
                else:
                    total = total + a_data[i] * b_data[j]
                    i = i + 1
                    j = j + 1
        out[pair] = total


def product_dense(const value_t[::1] x_data, const index_t[::1] x_indices,
                  const int64_t[::1] x_indptr,
                  const value_t[::1] t_data, const index_t[::1] t_indices,
                  const int64_t[::1] t_indptr, const int64_t[::1] rows,
                  double[:, ::1] out, int num_threads):
    """``out[r] = X[rows[r]] @ T`` as dense rows (a row -1 is left as it is).

    Contract (unchecked): X (n_x, m) and T (m, out.shape[1]) CSR, ``out`` zeroed by the
    caller for the rows to fill.  Each row is a scatter of T's rows, in X's order.
    """
    cdef Py_ssize_t r, p, q, row
    cdef double weight
    for r in prange(rows.shape[0], nogil=True, schedule="dynamic", num_threads=num_threads):
        row = rows[r]
        if row < 0:
            continue
        for p in range(x_indptr[row], x_indptr[row + 1]):
            weight = x_data[p]
            for q in range(t_indptr[x_indices[p]], t_indptr[x_indices[p] + 1]):
                out[r, t_indices[q]] += weight * t_data[q]
