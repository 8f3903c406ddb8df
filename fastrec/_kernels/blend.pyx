"""Fused blending of a sparse-product member into a dense block of blended scores
(twin: ``fastrec.reference.blend``)."""
from cython.parallel cimport parallel, prange
from libc.math cimport sqrt
from libc.stdint cimport int64_t, uint8_t
from libc.stdlib cimport calloc, free, malloc

from fastrec._kernels._heap cimport index_t, value_t

ctypedef fused block_t:
    float
    double

cdef enum:  # normalisations, in fastrec.models.blend.NORMALIZATIONS order
    ZSCORE = 0
    MINMAX = 1
    NONE = 2


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
    cdef Py_ssize_t r, p, q, j, touched, row
    cdef double value, total, square, low, high, scale, shift, mean, spread
    cdef double* scratch
    cdef int64_t* seen
    cdef uint8_t* listed
    if n_rows == 0 or n == 0:
        return
    with nogil, parallel(num_threads=num_threads):
        scratch = <double*>calloc(n, sizeof(double))
        seen = <int64_t*>malloc(n * sizeof(int64_t))
        listed = <uint8_t*>calloc(n, sizeof(uint8_t))
        try:
            if scratch == NULL or seen == NULL or listed == NULL:
                with gil:
                    raise MemoryError("add_normalized_product: cannot allocate per-thread scratch")
            for r in prange(n_rows, schedule="dynamic"):
                row = rows[r]
                touched = 0
                if row < 0:
                    for j in range(n):
                        scratch[j] = fallback[j]
                        seen[j] = j
                    touched = n
                else:
                    for p in range(x_indptr[row], x_indptr[row + 1]):
                        value = x_data[p]
                        for q in range(t_indptr[x_indices[p]], t_indptr[x_indices[p] + 1]):
                            j = t_indices[q]
                            if not listed[j]:
                                listed[j] = 1
                                seen[touched] = j
                                touched = touched + 1
                            scratch[j] = scratch[j] + value * t_data[q]
                total = 0.0
                square = 0.0
                low = 0.0 if touched < n else scratch[seen[0]]
                high = low
                for p in range(touched):
                    value = scratch[seen[p]]
                    total = total + value
                    square = square + value * value
                    if value < low:
                        low = value
                    if value > high:
                        high = value
                scale = 1.0
                shift = 0.0
                if normalize == ZSCORE:
                    mean = total / n
                    spread = sqrt(max(square / n - mean * mean, 0.0))
                    shift = mean
                    if spread > 0:
                        scale = 1.0 / spread
                elif normalize == MINMAX:
                    shift = low
                    if high > low:
                        scale = 1.0 / (high - low)
                scale = weight * scale
                shift = block_offset[r] - scale * shift
                for j in range(n):
                    block[r, j] = <block_t>(block_scale[r] * block[r, j] + scale * scratch[j] + shift)
                for p in range(touched):
                    scratch[seen[p]] = 0.0
                    listed[seen[p]] = 0
        finally:
            free(scratch)
            free(seen)
            free(listed)
