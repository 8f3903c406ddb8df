"""Row-wise top-k selection: the checked entry point to the shared top-k kernel."""
import numpy as np
import scipy.sparse as sp

from fastrec._checks import check_choice, check_positive_int
from fastrec._threads import effective_num_threads

BACKENDS = ("auto", "compiled", "numpy")
_NO_DENSE_MASK = {}  # n_cols -> empty (0, n_cols) uint8 block, reused


def _empty_dense_mask(n_cols):
    mask = _NO_DENSE_MASK.get(n_cols)
    if mask is None:
        mask = _NO_DENSE_MASK.setdefault(n_cols, np.zeros((0, n_cols), dtype=np.uint8))
    return mask


def _as_scores(scores):
    arr = np.asarray(scores)
    if arr.ndim != 2:
        raise ValueError(f"scores must be a 2-D array (rows x columns), got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"scores must be numeric, got dtype {arr.dtype}")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float32 if arr.dtype == np.float16 else np.float64)
    return np.ascontiguousarray(arr)


def _dense_mask(exclude, shape):
    mask = np.asarray(exclude)
    if mask.dtype != bool:
        raise TypeError(f"a dense exclude mask must be boolean, got dtype {mask.dtype}")
    if mask.shape == (shape[1],):
        mask = mask[None, :]
    elif mask.shape != shape:
        raise ValueError(f"exclude has shape {mask.shape}; expected {shape} or ({shape[1]},)")
    return np.ascontiguousarray(mask).view(np.uint8)


def sparse_exclusion(exclude, shape):
    """``(indptr, indices)`` of a sparse exclusion pattern, CSR with sorted indices."""
    if exclude.shape != shape:
        raise ValueError(f"exclude has shape {exclude.shape}; expected {shape}")
    csr = exclude if exclude.format == "csr" else exclude.tocsr()
    if not csr.has_sorted_indices:
        csr = csr.copy()
        csr.sort_indices()
    indptr, indices = csr.indptr, csr.indices
    if indices.dtype != indptr.dtype:
        common = np.promote_types(indices.dtype, indptr.dtype)
        indptr, indices = indptr.astype(common), indices.astype(common)
    return np.ascontiguousarray(indptr), np.ascontiguousarray(indices)


def top_k(scores, k, *, exclude=None, num_threads=None, backend="auto"):
    """The ``k`` highest-scoring columns of every row.

    Parameters
    ----------
    scores : array-like, (n_rows, n_cols)
        float32 or float64 (integers become float64).  NaN and -inf are never selected.
    k : int >= 0
        May exceed n_cols: rows are then padded.
    exclude : None, bool array of shape (n_cols,) or (n_rows, n_cols), or scipy sparse (n_rows, n_cols)
        Columns never selected (True, or a stored entry of the sparse matrix, e.g. the
        items a user has already seen).
    num_threads : int, optional
        None or 0 for every core; the result does not depend on it.
    backend : {"auto", "compiled", "numpy"}
        "numpy" runs the reference implementation.

    Returns
    -------
    ids : int64 array (n_rows, k)
        Column ids sorted by score descending, ties by the lower id; -1 pads.
    top_scores : array (n_rows, k), the scores' dtype
        -inf pads.

    Examples
    --------
    >>> ids, s = top_k([[0.1, 0.9, 0.5]], 2)
    >>> ids.tolist(), s.tolist()
    ([[1, 2]], [[0.9, 0.5]])
    """
    check_choice(backend, "backend", BACKENDS)
    arr = _as_scores(scores)
    k = check_positive_int(k, "k", minimum=0)
    n_rows, n_cols = arr.shape
    dense = sparse = None
    if exclude is not None:
        if sp.issparse(exclude):
            sparse = exclude
        else:
            dense = _dense_mask(exclude, arr.shape)
    threads = effective_num_threads(num_threads)

    if backend == "numpy":
        from fastrec.reference.topk import dense_topk as reference_topk

        return reference_topk(arr, k, None if dense is None else dense.view(bool), sparse)

    indptr = indices = None
    if sparse is not None:
        indptr, indices = sparse_exclusion(sparse, arr.shape)
    return run_topk(arr, k, dense, indptr, indices, threads)


def run_topk(scores, k, dense_mask, indptr, indices, num_threads):
    """Call the kernel on already-checked arrays (for models that build their own masks).

    ``scores`` C-contiguous float32/float64; ``dense_mask`` None or uint8 (1|n_rows, n_cols);
    ``indptr``/``indices`` None or a CSR pattern with sorted indices of one integer dtype.
    """
    from fastrec._kernels.topk import dense_topk

    n_rows, n_cols = scores.shape
    if indptr is None:
        indptr = indices = np.zeros(0, dtype=np.int64)
    out_ids = np.empty((n_rows, k), dtype=np.int64)
    out_scores = np.empty((n_rows, k), dtype=scores.dtype)
    dense_topk(scores, _empty_dense_mask(n_cols) if dense_mask is None else dense_mask,
               indptr, indices, out_ids, out_scores, num_threads)
    return out_ids, out_scores
