"""Row-wise top-k selection over a dense block of scores.

Shared by batch recommendation and (later) similarity: each row keeps a bounded
min-heap of its k best (score, column) pairs, built in the output row itself, then
heap-sorted in place.  "Better" means a higher score, ties going to the lower column.
"""
from cython.parallel cimport prange
from libc.stdint cimport int32_t, int64_t, uint8_t
from libc.math cimport INFINITY

from fastrec._kernels._heap cimport (heap_sift_down, heap_sift_up, heap_sort, index_t,
                                     value_t)

ctypedef fused mask_index_t:
    int32_t
    int64_t


cdef inline void _row_topk(const value_t* row, Py_ssize_t n_cols,
                           const uint8_t* dense_mask,
                           const mask_index_t* excluded, Py_ssize_t n_excluded,
                           Py_ssize_t k, index_t* out_ids, value_t* out_scores) noexcept nogil:
    cdef Py_ssize_t j, p = 0, size = 0
    cdef value_t s
    if k == 0:
        return
    cdef value_t threshold = -INFINITY  # the root's score once the heap is full
    for j in range(n_cols):
        s = row[j]
        # once full, only a strictly higher score can enter (equal scores have lower ids
        # already inside); this one comparison rejects almost every column
        if size == k and not (s > threshold):
            continue
        if not (s > -INFINITY):  # NaN and -inf are never candidates
            continue
        if dense_mask != NULL and dense_mask[j]:
            continue
        if n_excluded:
            while p < n_excluded and excluded[p] < j:
                p += 1
            if p < n_excluded and excluded[p] == j:
                continue
        if size < k:
            out_scores[size] = s
            out_ids[size] = <index_t>j
            heap_sift_up(out_scores, out_ids, size)
            size += 1
        else:
            out_scores[0] = s
            out_ids[0] = <index_t>j
            heap_sift_down(out_scores, out_ids, size, 0)
        if size == k:
            threshold = out_scores[0]
    heap_sort(out_scores, out_ids, size)
    for j in range(size, k):
        out_scores[j] = -INFINITY
        out_ids[j] = -1


def dense_topk(const value_t[:, ::1] scores,
               const uint8_t[:, ::1] dense_mask,
               const mask_index_t[::1] mask_indptr,
               const mask_index_t[::1] mask_indices,
               index_t[:, ::1] out_ids,
               value_t[:, ::1] out_scores,
               int num_threads):
    """Write the k best columns of every row of ``scores`` into ``out_ids``/``out_scores``.

    Unchecked kernel; ``fastrec.top_k`` is the checked entry point.  Contract:

    - ``scores``: C-contiguous (n_rows, n_cols) float32 or float64.  NaN and -inf are
      never selected.
    - ``dense_mask``: uint8, shape (0, n_cols) for none, (1, n_cols) shared by every row,
      or (n_rows, n_cols); non-zero excludes the column.
    - ``mask_indptr`` / ``mask_indices``: CSR pattern of excluded columns, indices sorted
      ascending within each row; pass empty arrays for none (else len(indptr) == n_rows+1).
    - ``out_ids`` / ``out_scores``: C-contiguous (n_rows, k), overwritten; k = shape[1].
      Rows come out sorted by score descending, ties by lower column, padded with -1 / -inf.
    - Inputs are not modified; the result does not depend on ``num_threads``.
    """
    cdef Py_ssize_t n_rows = scores.shape[0], n_cols = scores.shape[1]
    cdef Py_ssize_t k = out_ids.shape[1]
    cdef Py_ssize_t i, start, n_excluded
    cdef const uint8_t* mask_row
    cdef bint has_sparse = mask_indptr.shape[0] > 0
    cdef bint shared_mask = dense_mask.shape[0] == 1
    cdef bint has_dense = dense_mask.shape[0] > 0
    if out_scores.shape[0] != n_rows or out_ids.shape[0] != n_rows or out_scores.shape[1] != k:
        raise ValueError("dense_topk: output arrays must both have shape (n_rows, k)")
    if has_dense and (dense_mask.shape[1] != n_cols or (not shared_mask and dense_mask.shape[0] != n_rows)):
        raise ValueError("dense_topk: dense_mask must have shape (0|1|n_rows, n_cols)")
    if has_sparse and mask_indptr.shape[0] != n_rows + 1:
        raise ValueError("dense_topk: mask_indptr must have n_rows + 1 entries")
    if n_rows == 0 or k == 0:
        return
    if n_cols == 0:  # nothing to select; also keeps &scores[i, 0] in bounds below
        out_ids[:, :] = -1
        out_scores[:, :] = -INFINITY
        return
    for i in prange(n_rows, nogil=True, schedule="guided", num_threads=num_threads):
        mask_row = NULL
        if has_dense:
            mask_row = &dense_mask[0 if shared_mask else i, 0]
        start = 0
        n_excluded = 0
        if has_sparse:
            start = mask_indptr[i]
            n_excluded = mask_indptr[i + 1] - start
        _row_topk(&scores[i, 0], n_cols, mask_row,
                  (&mask_indices[start]) if n_excluded > 0 else <const mask_index_t*>NULL,
                  n_excluded, k, &out_ids[i, 0], &out_scores[i, 0])
