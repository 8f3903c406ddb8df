"""Fused blending of a sparse-product member into a dense block of blended scores
(twin: ``fastrec.reference.blend``)."""
from cython.parallel cimport parallel, prange
from libc.math cimport sqrt
from libc.stdint cimport int64_t, uint8_t

from fastrec._kernels._heap cimport index_t, value_t
from fastrec._kernels._product cimport (MINMAX, NONE, ZSCORE, RowScratch, product_row, scratch_clear,
                                        scratch_free, scratch_new, touched_stats)

ctypedef fused block_t:
    float
    double


def row_stats(const block_t[:, ::1] block, int normalize, double[::1] scale, double[::1] shift,
              int num_threads):
    """Per row, ``(scale, shift)`` with normalised = (block - shift) * scale, accumulated
    in double in one pass: zscore (1 / std, mean), minmax (1 / range, min), none (1, 0)."""
    cdef Py_ssize_t n_rows = block.shape[0], n = block.shape[1], r, j
    cdef double value, total, square, low, high, mean, spread
    for r in prange(n_rows, nogil=True, schedule="static", num_threads=num_threads):
        scale[r] = 1.0
        shift[r] = 0.0
        if n == 0 or normalize == NONE:
            continue
        total = 0.0
        square = 0.0
        low = block[r, 0]
        high = low
        for j in range(n):
            value = block[r, j]
            total = total + value
            square = square + value * value
            low = min(low, value)
            high = max(high, value)
        if normalize == ZSCORE:
            mean = total / n
            spread = sqrt(max(square / n - mean * mean, 0.0))
            shift[r] = mean
        else:
            shift[r] = low
            spread = high - low
        if spread > 0:
            scale[r] = 1.0 / spread


def add_normalized_product(block_t[:, ::1] block, const double[::1] block_scale,
                           const double[::1] block_offset, const value_t[::1] x_data,
                           const index_t[::1] x_indices, const int64_t[::1] x_indptr,
                           const value_t[::1] t_data, const index_t[::1] t_indices,
                           const int64_t[::1] t_indptr, const int64_t[::1] rows,
                           const double[::1] fallback, double weight, int normalize,
                           int num_threads):
    """``block[r] = block_scale[r] * block[r] + block_offset[r] + weight * normalise(X[rows[r]] @ T)``
    per row, one pass over the block.

    Contract (unchecked): X (n_x, m) and T (m, n) CSR with n = block.shape[1]; a row -1
    takes ``fallback`` (n,) as its scores.  The product row is scattered into per-thread
    scratch; its statistics come from the touched entries (the others are 0), so only
    the final update passes over the whole row.  zscore: (s - mean) / std, minmax:
    (s - min) / (max - min), a constant row is only shifted.
    """
    cdef Py_ssize_t n_rows = rows.shape[0], n = block.shape[1]
    cdef Py_ssize_t r, j, touched, row
    cdef double scale, shift
    cdef RowScratch* work
    if n_rows == 0 or n == 0:
        return
    with nogil, parallel(num_threads=num_threads):
        work = scratch_new(n)
        try:
            if work == NULL:
                with gil:
                    raise MemoryError("add_normalized_product: cannot allocate per-thread scratch")
            for r in prange(n_rows, schedule="dynamic"):
                row = rows[r]
                if row < 0:
                    for j in range(n):
                        work.values[j] = fallback[j]
                        work.seen[j] = j
                    touched = n
                else:
                    touched = product_row(row, &x_data[0], &x_indices[0], &x_indptr[0], &t_data[0],
                                          &t_indices[0], &t_indptr[0], work, False)
                touched_stats(work, touched, n, normalize, &scale, &shift, NULL)
                scale = weight * scale
                shift = block_offset[r] - scale * shift
                for j in range(n):
                    block[r, j] = <block_t>(block_scale[r] * block[r, j] + scale * work.values[j] + shift)
                scratch_clear(work, touched, False)
        finally:
            scratch_free(work)
