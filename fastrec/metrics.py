"""Accuracy metrics: rating errors and top-N ranking quality.

Ranking metrics take a top-N array of item indices (as ``recommend`` produces, -1
padded) and the test interactions; every item a user has in the test set counts as
relevant.  Users with no test items are skipped and counted.
"""
import numpy as np


def _pair(y_true, y_pred):
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has shape {y_true.shape} but y_pred has {y_pred.shape}")
    if y_true.size == 0:
        raise ValueError("no predictions to score")
    return y_true, y_pred


def mse(y_true, y_pred):
    """Mean squared error."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.mean((y_true - y_pred) ** 2))


def rmse(y_true, y_pred):
    """Root mean squared error."""
    return float(np.sqrt(mse(y_true, y_pred)))


def mae(y_true, y_pred):
    """Mean absolute error."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.mean(np.abs(y_true - y_pred)))


def log_loss(y_true, y_prob, eps=1e-15):
    """Mean binary cross-entropy of probabilities ``y_prob`` for 0/1 labels ``y_true``
    (probabilities clipped to [eps, 1 - eps])."""
    y_true, y_prob = _pair(y_true, y_prob)
    if not np.isin(y_true, (0.0, 1.0)).all():
        raise ValueError("y_true must hold 0/1 labels")
    if ((y_prob < 0) | (y_prob > 1) | np.isnan(y_prob)).any():
        raise ValueError("y_prob must hold probabilities in [0, 1]")
    p = np.clip(y_prob, eps, 1 - eps)
    return float(-np.mean(y_true * np.log(p) + (1 - y_true) * np.log1p(-p)))


def ranking_metrics(top_items, users, test, ks=(10,), *, train=None, num_threads=None,
                    backend="auto"):
    """Precision, recall, NDCG, MAP, MRR, hit rate and AUC at every cut-off in ``ks``.

    One compiled pass over each list computes every metric at every cut-off.

    Parameters
    ----------
    top_items : int array (n_rows, n)
        Item indices in rank order, distinct within a row, -1 padded; n >= max(ks).
    users : int array (n_rows,)
        The user index of each row.
    test : Interactions
        Held-out interactions sharing the id maps of the training data.
    ks : iterable of int
    train : Interactions, optional
        The training interactions; only AUC uses them, to leave each user's training
        items out of the negatives (as ``recommend(exclude_seen=True)`` leaves them out
        of the lists).  Without them every item outside the test set is a negative.
    num_threads : int, optional
    backend : {"auto", "compiled", "numpy"}
        "numpy" runs the vectorised reference.

    Returns
    -------
    dict
        ``{"precision@10": ..., "recall@10": ..., "ndcg@10": ..., "map@10": ...,
        "mrr@10": ..., "hit_rate@10": ..., "auc@10": ..., "n_users": evaluated users,
        "n_skipped_users": rows without test items}``; NaN when no user has test items.
        With R relevant items and hits h_j at ranks j <= k: precision = sum h / k,
        recall = sum h / R, ndcg = DCG / ideal DCG of min(R, k) hits,
        map = sum_j h_j precision@j / min(R, k), mrr = 1 / rank of the first hit.
        auc@k is the share of (relevant, negative) pairs in the right order when the
        top k are ranked first and every other item ties below them (a tie counts
        1/2): with N negatives and n_j negatives listed above the hit at rank j,
        auc = (sum_j h_j (N - n_j) + (R - hits)(N - n_k) / 2) / (R N); 1 when N = 0.
    """
    from fastrec._checks import check_choice
    from fastrec._threads import effective_num_threads
    from fastrec.reference.metrics import METRICS

    check_choice(backend, "backend", ("auto", "compiled", "numpy"))
    top_items, users = _lists(top_items, test.n_items, users=users)
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1 or ks[-1] > top_items.shape[1]:
        raise ValueError(f"cut-offs must lie in [1, {top_items.shape[1]}], got {ks}")
    if users.size and (users.min() < 0 or users.max() >= test.n_users):
        raise ValueError(f"users must be indices in [0, {test.n_users})")
    if train is not None and not train.same_ids(test):
        raise ValueError("train and test must share id maps; build them with fastrec.model_selection")
    evaluated = test.user_counts[users] > 0
    rows = np.flatnonzero(evaluated)
    kept_users = np.ascontiguousarray(users[rows], dtype=np.int64)
    csr = test.csr
    if train is not None:
        train_indptr, train_indices = train.csr.indptr, train.csr.indices
    else:
        train_indptr, train_indices = np.zeros(test.n_users + 1, csr.indptr.dtype), csr.indices[:0]
    if backend == "numpy":
        from fastrec.reference.metrics import ranking_rows

        values = ranking_rows(top_items, rows, kept_users, csr.indptr, csr.indices, train_indptr,
                              train_indices, test.n_items, ks)
    else:
        from fastrec._kernels.metrics import ranking_rows

        values = np.empty((len(METRICS), len(ks), rows.size))
        train_indices = train_indices.astype(csr.indptr.dtype, copy=False)
        ranking_rows(np.ascontiguousarray(top_items, dtype=np.int64), rows, kept_users, csr.indptr,
                     csr.indices.astype(csr.indptr.dtype, copy=False),
                     train_indptr.astype(csr.indptr.dtype, copy=False), train_indices, test.n_items,
                     np.array(ks, dtype=np.int64), values, effective_num_threads(num_threads))
    means = values.sum(axis=2) / rows.size if rows.size else np.full((len(METRICS), len(ks)), np.nan)
    result = {}
    for c, k in enumerate(ks):
        for m, name in enumerate(METRICS):
            result[f"{name}@{k}"] = float(means[m, c])
    result["n_users"] = int(evaluated.sum())
    result["n_skipped_users"] = int((~evaluated).sum())
    return result


def _lists(top_items, n_items, users=None):
    """``top_items`` (and ``users``) checked: integer indices, items below ``n_items``."""
    top_items = np.asarray(top_items)
    if top_items.ndim != 2 or (users is not None and (np.ndim(users) != 1
                                                      or top_items.shape[0] != np.size(users))):
        raise ValueError("top_items must be (len(users), n)" if users is not None
                         else "top_items must be a 2-D array (lists, n)")
    users = None if users is None else np.asarray(users)
    if top_items.dtype.kind not in "iu" or (users is not None and users.dtype.kind not in "iu"):
        raise TypeError("top_items and users must hold integer indices")
    if top_items.size and (top_items.max() >= n_items or top_items.min() < -1):
        raise ValueError(f"top_items must be item indices below {n_items} (or -1)")
    return top_items, users


def coverage(top_items, n_items):
    """Share of the catalogue that appears in at least one list."""
    top_items = np.asarray(top_items)
    return float(np.unique(top_items[top_items >= 0]).size / n_items) if n_items else 0.0


def novelty(top_items, train):
    """Mean self-information of the recommended items, in bits.

    novelty = mean over lists of mean over listed items of -log2(p_i), where p_i is
    the share of training users who interacted with item i (an item nobody has is
    counted as one user's).  Lists with no items (-1 only) are skipped.
    """
    top_items, _ = _lists(top_items, train.n_items)
    information = -np.log2(np.maximum(train.item_counts, 1) / max(train.n_users, 1))
    listed = top_items >= 0
    per_list = listed.sum(axis=1)
    bits = np.where(listed, information[np.maximum(top_items, 0)], 0.0).sum(axis=1)
    kept = per_list > 0
    return float(np.mean(bits[kept] / per_list[kept])) if kept.any() else float("nan")


def intra_list_diversity(top_items, similarity, *, num_threads=None, backend="auto"):
    """Mean pairwise dissimilarity of the items within each list.

    ild = mean over lists of 1 - sum over ordered pairs (a, b) of distinct listed
    items of s(a, b) / (m (m - 1)), with m distinct items in the list; so each
    unordered pair counts the mean of s(a, b) and s(b, a).  ``similarity`` is a sparse
    n_items x n_items matrix (``fastrec.similarity.item_similarity`` or
    ``content_similarity``); a missing entry is similarity 0.  Lists with fewer than
    two items are skipped.  The compiled pass scans the similarity rows of the listed
    items, so top-k neighbour matrices are cheap and ``k=None`` ones cost their rows.
    """
    import scipy.sparse as sp

    from fastrec._checks import check_choice
    from fastrec._threads import effective_num_threads

    check_choice(backend, "backend", ("auto", "compiled", "numpy"))
    if not sp.issparse(similarity) or similarity.shape[0] != similarity.shape[1]:
        raise TypeError("similarity must be a square scipy.sparse matrix (items x items)")
    top_items, _ = _lists(top_items, similarity.shape[0])
    csr = sp.csr_matrix(similarity)
    if csr.dtype not in (np.float32, np.float64):
        csr = csr.astype(np.float64)
    if not np.isfinite(csr.data).all():
        raise ValueError("similarity holds NaN or infinite values")
    if backend == "numpy":
        from fastrec.reference.metrics import list_similarity_rows

        total, distinct = list_similarity_rows(top_items, csr)
    else:
        from fastrec._kernels.metrics import list_similarity_rows

        total = np.empty(top_items.shape[0])
        distinct = np.empty(top_items.shape[0], dtype=np.int64)
        index = csr.indptr.dtype
        list_similarity_rows(np.ascontiguousarray(top_items, dtype=np.int64), csr.indptr,
                             csr.indices.astype(index, copy=False), csr.data, csr.shape[0],
                             total, distinct, effective_num_threads(num_threads))
    kept = distinct >= 2
    if not kept.any():
        return float("nan")
    return float(np.mean(1.0 - total[kept] / (distinct[kept] * (distinct[kept] - 1.0))))


def sampled_ranking_metrics(scores, k=(10,)):
    """Hit ratio and NDCG of one positive ranked among sampled negatives, per row.

    Parameters
    ----------
    scores : array (n_rows, 1 + n_negatives), ints or floats
        Column 0 the held-out (positive) item's score, the other columns its
        negatives' scores.
    k : int or iterable of int >= 1
        Cut-offs.

    Returns
    -------
    dict
        ``{"hit_rate@10": ..., "ndcg@10": ..., "n_users": n_rows}`` (both metrics for
        each k, in increasing k), means over rows; NaN when there are no rows.

    Raises
    ------
    ValueError
        NaN scores, bad shape or cut-offs.

    Notes
    -----
    The rank of the positive counts the negatives scored at least as high, so ties
    are pessimistic (a constant score ranks the positive last, at ``1 + n_negatives``):

    .. math::

        r = 1 + \\sum_{j \\geq 1} [s_j \\geq s_0], \\qquad
        \\mathrm{HR@}k = [r \\leq k], \\qquad
        \\mathrm{NDCG@}k = \\frac{[r \\leq k]}{\\log_2(r + 1)}

    Examples
    --------
    >>> sampled_ranking_metrics([[0.9, 0.1, 0.5], [0.2, 0.3, 0.2]], k=1)
    {'hit_rate@1': 0.5, 'ndcg@1': 0.5, 'n_users': 2}
    """
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.shape[1] < 1:
        raise ValueError(f"scores must be (n_rows, 1 + n_negatives), got shape {scores.shape}")
    if scores.dtype.kind not in "iuf":
        raise TypeError(f"scores must be ints or floats, got {scores.dtype}")
    ks = _cutoffs(k)
    if scores.dtype.kind == "f":
        nan_rows = np.isnan(scores).any(axis=1)
        if nan_rows.any():
            raise ValueError(f"scores hold NaN in {int(nan_rows.sum())} of {scores.shape[0]} rows "
                             f"(first: row {int(np.argmax(nan_rows))}); rank needs comparable scores")
    n_rows = scores.shape[0]
    ranks = 1 + np.count_nonzero(scores[:, 1:] >= scores[:, :1], axis=1)
    result = {}
    for cut in ks:
        hit = ranks <= cut
        gain = np.where(hit, 1.0 / np.log2(ranks + 1.0), 0.0)
        result[f"hit_rate@{cut}"] = float(hit.mean()) if n_rows else float("nan")
        result[f"ndcg@{cut}"] = float(gain.mean()) if n_rows else float("nan")
    result["n_users"] = int(n_rows)
    return result


def _cutoffs(k):
    """Sorted distinct cut-offs from an int or an iterable of ints."""
    from fastrec._checks import check_positive_int

    ks = (k,) if np.ndim(k) == 0 else tuple(k)
    if not ks:
        raise ValueError("k must be a cut-off or a non-empty tuple of cut-offs")
    return sorted({check_positive_int(cut, "k") for cut in ks})
