# One row of a sparse product X @ T scattered into dense scratch, shared by the kNN and
# blend kernels.  ``listed`` must hold 0 or 1 during the scatter; ``seen`` needs room for
# n + 1 (the branch-free listing writes one past the last touched column).
from libc.stdint cimport int64_t, uint8_t

from fastrec._kernels._heap cimport index_t, value_t
from fastrec._kernels._prefetch cimport fastrec_prefetch

cdef enum:
    PRODUCT_AHEAD = 4  # rows of T prefetched ahead of use


cdef inline Py_ssize_t product_row(Py_ssize_t row, const value_t* x_data, const index_t* x_indices,
                                   const int64_t* x_indptr, const value_t* t_data,
                                   const index_t* t_indices, const int64_t* t_indptr,
                                   double* scratch, int64_t* seen, uint8_t* listed) noexcept nogil:
    """Add row ``row`` of X @ T into ``scratch``, listing each newly touched column in
    ``seen`` (marked in ``listed``); returns how many columns it touched."""
    cdef Py_ssize_t p, q, j, touched = 0, end = x_indptr[row + 1]
    cdef double value
    for p in range(x_indptr[row], end):
        value = x_data[p]
        if p + PRODUCT_AHEAD < end:  # the rows of T are scattered: fetch one a few rows ahead
            q = t_indptr[x_indices[p + PRODUCT_AHEAD]]
            fastrec_prefetch(&t_indices[q])
            fastrec_prefetch(&t_data[q])
        for q in range(t_indptr[x_indices[p]], t_indptr[x_indices[p] + 1]):
            j = t_indices[q]
            seen[touched] = j  # kept only the first time: no branch to mispredict
            touched = touched + 1 - listed[j]
            listed[j] = 1
            scratch[j] = scratch[j] + value * t_data[q]
    return touched
