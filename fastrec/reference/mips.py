"""NumPy twin of ``fastrec._kernels.mips`` / ``fastrec.mips``: the whole product, then top-k."""
import numpy as np
import scipy.sparse as sp

from fastrec.reference.blend import NORMALIZATIONS, row_stats
from fastrec.reference.topk import dense_topk


def inner_product_topk(users, items, k, dense_mask=None, seen=None, bonus=None, terms=None, means=None,
                       bonus_rows=None, offset=None):
    """``(ids, scores)``: the k best of ``users @ items.T`` (+ bonus) per row.

    Scores are computed in double and rounded to the users' dtype before ranking, as the
    kernel does; ``seen`` / ``bonus`` are CSR tuples as in ``InnerProductIndex.topk``;
    ``terms`` / ``means`` / ``bonus_rows`` define a ``ProductBonus`` (its arguments), and
    ``offset`` a constant per row, added after ranking.
    """
    users, items = np.asarray(users), np.asarray(items)
    rows, n = users.shape[0], items.shape[0]
    scores = users.astype(np.float64) @ items.astype(np.float64).T
    if bonus is not None:
        indptr, indices, values = (np.asarray(a) for a in bonus)
        owner = np.repeat(np.arange(rows), np.diff(indptr))
        np.add.at(scores, (owner, indices[:indptr[-1]]), values[:indptr[-1]])
    shift = np.zeros(rows) if offset is None else -np.asarray(offset, dtype=np.float64)
    if terms or means is not None:
        extra, constant = product_bonus(terms or [], means, np.arange(rows) if bonus_rows is None else bonus_rows, n)
        scores += extra
        shift += constant
    scores = scores.astype(users.dtype)
    sparse_mask = None
    if seen is not None:
        indptr, indices = (np.asarray(a) for a in seen)
        sparse_mask = sp.csr_array((np.ones(indptr[-1]), indices[:indptr[-1]], indptr), shape=(rows, n))
    mask = None if dense_mask is None else np.asarray(dense_mask, dtype=bool)
    ids, top = dense_topk(scores, k, mask, sparse_mask)
    return ids, (top - shift[:, None]).astype(users.dtype)


def product_bonus(terms, means, rows, n):
    """``(bonus, shift)``: the dense bonus rows of a ``ProductBonus`` without their
    normalisation constants, and those constants per row (the full bonus is their
    difference)."""
    rows = np.asarray(rows, dtype=np.int64)
    bonus, shift = np.zeros((rows.size, n)), np.zeros(rows.size)
    for x, t, weight, normalize in terms:
        product = (sp.csr_array(x, dtype=np.float64)[rows] @ sp.csr_array(t, dtype=np.float64)).toarray()
        scale, centre = row_stats(product, NORMALIZATIONS.index(normalize))
        bonus += product * (weight * scale)[:, None]
        shift += weight * scale * centre
    if means is not None:
        items, weights = means
        bonus[:, items] += bonus @ sp.csc_array(weights, dtype=np.float64)
    return bonus, shift
