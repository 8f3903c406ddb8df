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

from fastrec._kernels._heap cimport heap_offer, index_t, select_best, value_t


def knn_estimate(const value_t[::1] sim_data, const index_t[::1] sim_indices,
                 const int64_t[::1] sim_indptr,
                 const double[::1] yr_dev, const index_t[::1] yr_indices,
                 const int64_t[::1] yr_indptr,
                 const int64_t[::1] group_x, const int64_t[::1] group_start,
                 const int64_t[::1] group_stop, const int64_t[::1] group_out,
                 const int64_t[::1] query_y, Py_ssize_t k, double self_similarity,
                 double[::1] out_mean, int32_t[::1] out_k, int num_threads):
    """Weighted mean deviation of the k most similar rated neighbours, per query.

    Contract (unchecked): ``sim`` is an (n_x, n_x) CSR with no stored diagonal, ``yr``
    an (n_y, n_x) CSR with sorted indices and one deviation per entry; group g has
    target ``group_x[g]`` and the queries ``query_y[group_start[g]:group_stop[g]]``,
    whose results go to ``out_*[group_out[g] + t - group_start[g]]``; all ids valid.
    s(x, x) is ``self_similarity``.  ``out_mean`` is sum(s * dev) / sum(s) over the
    chosen neighbours (0 when none) and ``out_k`` their number.
    """
    cdef Py_ssize_t n_x = sim_indptr.shape[0] - 1
    cdef Py_ssize_t n_groups = group_x.shape[0], n_y = yr_indptr.shape[0] - 1
    cdef Py_ssize_t g, x, y, p, q, t, c, size, kept, longest = 0
    cdef double s, sum_s, sum_sd
    cdef double* sim_of
    cdef double* cand_s
    cdef int64_t* cand_q
    cdef double* keep_s
    cdef int64_t* keep_q
    for y in range(n_y):
        longest = max(longest, yr_indptr[y + 1] - yr_indptr[y])
    if n_groups == 0 or k <= 0:
        out_mean[:] = 0.0
        out_k[:] = 0
        return
    with nogil, parallel(num_threads=num_threads):
        sim_of = <double*>calloc(n_x + 1, sizeof(double))
        cand_s = <double*>malloc((longest + 1) * sizeof(double))
        cand_q = <int64_t*>malloc((longest + 1) * sizeof(int64_t))
        keep_s = <double*>malloc(k * sizeof(double))
        keep_q = <int64_t*>malloc(k * sizeof(int64_t))
        try:
            if sim_of == NULL or cand_s == NULL or cand_q == NULL or keep_s == NULL or keep_q == NULL:
                with gil:
                    raise MemoryError("knn_estimate: cannot allocate per-thread scratch")
            for g in prange(n_groups, schedule="dynamic", chunksize=4):
                x = group_x[g]
                for p in range(sim_indptr[x], sim_indptr[x + 1]):
                    sim_of[sim_indices[p]] = sim_data[p]
                sim_of[x] = self_similarity
                for t in range(group_start[g], group_stop[g]):
                    y = query_y[t]
                    size = 0
                    for q in range(yr_indptr[y], yr_indptr[y + 1]):
                        s = sim_of[yr_indices[q]]
                        if s > 0:
                            cand_s[size] = s
                            cand_q[size] = q
                            size = size + 1
                    sum_s = 0.0
                    sum_sd = 0.0
                    if size > k:  # positions rise with neighbour ids: ties keep the lower id
                        kept = 0
                        for c in range(size):
                            heap_offer(keep_s, keep_q, &kept, k, cand_s[c], cand_q[c])
                        for c in range(kept):
                            sum_s = sum_s + keep_s[c]
                            sum_sd = sum_sd + keep_s[c] * yr_dev[keep_q[c]]
                        size = kept
                    else:
                        for c in range(size):
                            sum_s = sum_s + cand_s[c]
                            sum_sd = sum_sd + cand_s[c] * yr_dev[cand_q[c]]
                    c = group_out[g] + t - group_start[g]
                    out_mean[c] = sum_sd / sum_s if size > 0 else 0.0
                    out_k[c] = <int32_t>size
                for p in range(sim_indptr[x], sim_indptr[x + 1]):
                    sim_of[sim_indices[p]] = 0.0
                sim_of[x] = 0.0
        finally:
            free(sim_of)
            free(cand_s)
            free(cand_q)
            free(keep_s)
            free(keep_q)


def product_topk(const value_t[::1] x_data, const index_t[::1] x_indices,
                 const int64_t[::1] x_indptr,
                 const value_t[::1] t_data, const index_t[::1] t_indices,
                 const int64_t[::1] t_indptr, const int64_t[::1] rows,
                 const int64_t[::1] excluded_indptr, const int64_t[::1] excluded,
                 const uint8_t[::1] column_mask, Py_ssize_t n_cols,
                 int64_t[:, ::1] out_ids, value_t[:, ::1] out_scores, int num_threads):
    """Top columns of ``X[rows] @ T`` per row, scores descending (ties: lower column).

    Contract (unchecked): X is (n_x, m) and T (m, ``n_cols``) CSR; ``rows`` index X (-1: an
    empty row); ``excluded`` holds, per output row r (``excluded_indptr`` of length
    len(rows) + 1, or empty for none), columns never returned; ``column_mask``
    (n_cols,) uint8, or empty, excludes columns where non-zero.  Columns with a zero
    score are not returned; rows are padded with -1 / -inf.  Accumulates in double.
    """
    cdef Py_ssize_t n_rows = rows.shape[0]
    cdef Py_ssize_t n = out_ids.shape[1]
    cdef Py_ssize_t r, a, b, c, p, q, t, n_touched, size, kept
    cdef bint has_excluded = excluded_indptr.shape[0] > 0
    cdef bint has_mask = column_mask.shape[0] > 0
    cdef double w
    cdef double* acc
    cdef uint8_t* mark
    cdef int64_t* touched
    cdef value_t* cand_s
    cdef int64_t* cand_ids
    if n_rows == 0:
        return
    with nogil, parallel(num_threads=num_threads):
        acc = <double*>calloc(n_cols + 1, sizeof(double))
        mark = <uint8_t*>calloc(n_cols + 1, sizeof(uint8_t))
        touched = <int64_t*>malloc((n_cols + 1) * sizeof(int64_t))
        cand_s = <value_t*>malloc((n_cols + 1) * sizeof(value_t))
        cand_ids = <int64_t*>malloc((n_cols + 1) * sizeof(int64_t))
        try:
            if acc == NULL or mark == NULL or touched == NULL or cand_s == NULL or cand_ids == NULL:
                with gil:
                    raise MemoryError("product_topk: cannot allocate per-thread scratch")
            for r in prange(n_rows, schedule="dynamic", chunksize=16):
                a = rows[r]
                n_touched = 0
                if a >= 0:
                    for p in range(x_indptr[a], x_indptr[a + 1]):
                        c = x_indices[p]
                        w = x_data[p]
                        for q in range(t_indptr[c], t_indptr[c + 1]):
                            b = t_indices[q]
                            if mark[b] == 0:
                                mark[b] = 1
                                touched[n_touched] = b
                                n_touched = n_touched + 1
                            acc[b] += w * t_data[q]
                if has_excluded:
                    for p in range(excluded_indptr[r], excluded_indptr[r + 1]):
                        b = excluded[p]
                        if mark[b] == 1:
                            mark[b] = 2
                size = 0
                for t in range(n_touched):
                    b = touched[t]
                    if mark[b] == 1 and <value_t>acc[b] != 0 and not (has_mask and column_mask[b]):
                        cand_s[size] = <value_t>acc[b]
                        cand_ids[size] = b
                        size = size + 1
                    mark[b] = 0
                    acc[b] = 0.0
                kept = select_best(cand_s, cand_ids, size, n, &out_scores[r, 0], &out_ids[r, 0]) if n > 0 else 0
                for t in range(kept, n):
                    out_ids[r, t] = -1
                    out_scores[r, t] = -INFINITY
        finally:
            free(acc)
            free(mark)
            free(touched)
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
