"""Fused blending of a sparse-product member into a dense block of blended scores
(twin: ``fastrec.reference.blend``)."""
from cython.parallel cimport parallel, prange
from libc.math cimport sqrt
from libc.stdint cimport int64_t, uint8_t
from libc.stdlib cimport calloc, free, malloc

from fastrec._kernels._heap cimport index_t, value_t
from fastrec._kernels._product cimport product_row

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


cdef struct RowScratch:
    double* values    # a product row, zero outside the touched columns
    int64_t* seen     # the touched columns (room for n + 1: see _product.pxd)
    uint8_t* listed   # 1 where a column is in seen


cdef RowScratch* _scratch_new(Py_ssize_t n) noexcept nogil:
    """A thread's zeroed scratch for rows of n columns, or NULL when memory runs out."""
    cdef RowScratch* work = <RowScratch*>calloc(1, sizeof(RowScratch))
    if work == NULL:
        return NULL
    work.values = <double*>calloc(n, sizeof(double))
    work.seen = <int64_t*>malloc((n + 1) * sizeof(int64_t))
    work.listed = <uint8_t*>calloc(n, sizeof(uint8_t))
    if work.values == NULL or work.seen == NULL or work.listed == NULL:
        _scratch_free(work)
        return NULL
    return work


cdef void _scratch_free(RowScratch* work) noexcept nogil:
    if work != NULL:
        free(work.values)
        free(work.seen)
        free(work.listed)
        free(work)


cdef void _scratch_clear(RowScratch* work, Py_ssize_t touched) noexcept nogil:
    """Zero the entries the last row touched, ready for the next."""
    cdef Py_ssize_t p
    for p in range(touched):
        work.values[work.seen[p]] = 0.0
        work.listed[work.seen[p]] = 0


cdef void _touched_stats(const double* scratch, const int64_t* seen, Py_ssize_t touched,
                         Py_ssize_t n, int normalize, double* scale, double* shift) noexcept nogil:
    """``(scale, shift)`` of a row of n scores whose untouched entries are 0 (as row_stats)."""
    cdef Py_ssize_t p
    cdef double value, total = 0.0, square = 0.0, mean, spread
    cdef double low = 0.0 if touched < n else scratch[seen[0]]
    cdef double high = low
    for p in range(touched):
        value = scratch[seen[p]]
        total = total + value
        square = square + value * value
        if value < low:
            low = value
        if value > high:
            high = value
    scale[0] = 1.0
    shift[0] = 0.0
    if normalize == ZSCORE:
        mean = total / n
        spread = sqrt(max(square / n - mean * mean, 0.0))
        shift[0] = mean
        if spread > 0:
            scale[0] = 1.0 / spread
    elif normalize == MINMAX:
        shift[0] = low
        if high > low:
            scale[0] = 1.0 / (high - low)


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
        work = _scratch_new(n)
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
                                          &t_indices[0], &t_indptr[0], work.values, work.seen, work.listed)
                _touched_stats(work.values, work.seen, touched, n, normalize, &scale, &shift)
                scale = weight * scale
                shift = block_offset[r] - scale * shift
                for j in range(n):
                    block[r, j] = <block_t>(block_scale[r] * block[r, j] + scale * work.values[j] + shift)
                _scratch_clear(work, touched)
        finally:
            _scratch_free(work)


def normalized_product_rows(const value_t[::1] x_data, const index_t[::1] x_indices,
                            const int64_t[::1] x_indptr, const value_t[::1] t_data,
                            const index_t[::1] t_indices, const int64_t[::1] t_indptr,
                            Py_ssize_t n_columns, const int64_t[::1] rows,
                            const double[::1] row_factor, int normalize,
                            const int64_t[::1] out_indptr, int64_t[::1] out_lengths,
                            int64_t[::1] out_indices, double[::1] out_values,
                            double[::1] scale, double[::1] shift, int num_threads):
    """Rows of ``X @ T`` as a sparse bonus: ``row_factor[r] * scale[r] * (X[rows[r]] @ T)``
    on the touched columns, with ``(scale, shift)`` the row's normalisation over all
    ``n_columns`` columns (untouched ones are 0).  The blend's pruned top-k adds it to the
    factor member's scores; the shift is left to the caller (it moves every column alike).

    Contract (unchecked): rows are valid row indices of X, T has ``n_columns`` columns;
    ``out_indptr`` (rows + 1) gives each row room for every product term
    (``product_row_sizes``); row r's distinct columns fill the first ``out_lengths[r]``.
    """
    cdef Py_ssize_t n_rows = rows.shape[0], n = max(n_columns, 1)
    cdef Py_ssize_t r, p, touched, start
    cdef double factor
    cdef RowScratch* work
    if n_rows == 0:
        return
    with nogil, parallel(num_threads=num_threads):
        work = _scratch_new(n)
        try:
            if work == NULL:
                with gil:
                    raise MemoryError("normalized_product_rows: cannot allocate per-thread scratch")
            for r in prange(n_rows, schedule="dynamic"):
                touched = product_row(rows[r], &x_data[0], &x_indices[0], &x_indptr[0], &t_data[0],
                                      &t_indices[0], &t_indptr[0], work.values, work.seen, work.listed)
                _touched_stats(work.values, work.seen, touched, n_columns, normalize, &scale[r], &shift[r])
                factor = row_factor[r] * scale[r]
                start = out_indptr[r]
                out_lengths[r] = touched
                for p in range(touched):
                    out_indices[start + p] = work.seen[p]
                    out_values[start + p] = factor * work.values[work.seen[p]]
                _scratch_clear(work, touched)
        finally:
            _scratch_free(work)


def product_row_sizes(const index_t[::1] x_indices, const int64_t[::1] x_indptr,
                      const int64_t[::1] t_indptr, const int64_t[::1] rows, int64_t[::1] sizes):
    """``sizes[r]``: the number of terms of row ``rows[r]`` of X @ T (at least its
    number of distinct columns)."""
    cdef Py_ssize_t r, p, total
    for r in range(rows.shape[0]):
        total = 0
        for p in range(x_indptr[rows[r]], x_indptr[rows[r] + 1]):
            total = total + t_indptr[x_indices[p] + 1] - t_indptr[x_indices[p]]
        sizes[r] = total
