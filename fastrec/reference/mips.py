"""NumPy twin of ``fastrec._kernels.mips`` / ``fastrec.mips``: the whole product, then top-k."""
import numpy as np
import scipy.sparse as sp

from fastrec.reference.topk import dense_topk


def inner_product_topk(users, items, k, dense_mask=None, seen=None, bonus=None):
    """``(ids, scores)``: the k best of ``users @ items.T`` (+ bonus) per row.

    Scores are computed in double and rounded to the users' dtype before ranking, as the
    kernel does; ``seen`` / ``bonus`` are CSR tuples as in ``InnerProductIndex.topk``.
    """
    users, items = np.asarray(users), np.asarray(items)
    rows, n = users.shape[0], items.shape[0]
    scores = users.astype(np.float64) @ items.astype(np.float64).T
    if bonus is not None:
        indptr, indices, values = (np.asarray(a) for a in bonus)
        owner = np.repeat(np.arange(rows), np.diff(indptr))
        np.add.at(scores, (owner, indices[:indptr[-1]]), values[:indptr[-1]])
    scores = scores.astype(users.dtype)
    sparse_mask = None
    if seen is not None:
        indptr, indices = (np.asarray(a) for a in seen)
        sparse_mask = sp.csr_array((np.ones(indptr[-1]), indices[:indptr[-1]], indptr), shape=(rows, n))
    mask = None if dense_mask is None else np.asarray(dense_mask, dtype=bool)
    return dense_topk(scores, k, mask, sparse_mask)
