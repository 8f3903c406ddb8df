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


def ranking_metrics(top_items, users, test, ks=(10,), *, num_threads=None, backend="auto"):
    """Precision, recall, NDCG, MAP, MRR and hit rate at every cut-off in ``ks``.

    One compiled pass over each list computes every metric at every cut-off.

    Parameters
    ----------
    top_items : int array (n_rows, n)
        Item indices in rank order, -1 padded; n >= max(ks).
    users : int array (n_rows,)
        The user index of each row.
    test : Interactions
        Held-out interactions sharing the id maps of the training data.
    ks : iterable of int
    num_threads : int, optional
    backend : {"auto", "compiled", "numpy"}
        "numpy" runs the vectorised reference.

    Returns
    -------
    dict
        ``{"precision@10": ..., "recall@10": ..., "ndcg@10": ..., "map@10": ...,
        "mrr@10": ..., "hit_rate@10": ..., "n_users": evaluated users,
        "n_skipped_users": rows without test items}``; NaN when no user has test items.
        With R relevant items and hits h_j at ranks j <= k: precision = sum h / k,
        recall = sum h / R, ndcg = DCG / ideal DCG of min(R, k) hits,
        map = sum_j h_j precision@j / min(R, k), mrr = 1 / rank of the first hit.
    """
    from fastrec._checks import check_choice
    from fastrec._threads import effective_num_threads
    from fastrec.reference.metrics import METRICS

    check_choice(backend, "backend", ("auto", "compiled", "numpy"))
    top_items = np.asarray(top_items)
    users = np.asarray(users)
    if top_items.ndim != 2 or users.ndim != 1 or top_items.shape[0] != users.size:
        raise ValueError("top_items must be (len(users), n)")
    if top_items.dtype.kind not in "iu" or users.dtype.kind not in "iu":
        raise TypeError("top_items and users must hold integer indices")
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1 or ks[-1] > top_items.shape[1]:
        raise ValueError(f"cut-offs must lie in [1, {top_items.shape[1]}], got {ks}")
    if users.size and (users.min() < 0 or users.max() >= test.n_users):
        raise ValueError(f"users must be indices in [0, {test.n_users})")
    if top_items.size and top_items.max() >= test.n_items:
        raise ValueError(f"top_items must be item indices below {test.n_items} (or -1)")
    evaluated = test.user_counts[users] > 0
    rows = np.flatnonzero(evaluated)
    kept_users = np.ascontiguousarray(users[rows], dtype=np.int64)
    csr = test.csr
    if backend == "numpy":
        from fastrec.reference.metrics import ranking_rows

        values = ranking_rows(top_items, rows, kept_users, csr.indptr, csr.indices, test.n_items, ks)
    else:
        from fastrec._kernels.metrics import ranking_rows

        values = np.empty((len(METRICS), len(ks), rows.size))
        ranking_rows(np.ascontiguousarray(top_items, dtype=np.int64), rows, kept_users, csr.indptr,
                     csr.indices, test.n_items, np.array(ks, dtype=np.int64), values,
                     effective_num_threads(num_threads))
    means = values.sum(axis=2) / rows.size if rows.size else np.full((len(METRICS), len(ks)), np.nan)
    result = {}
    for c, k in enumerate(ks):
        for m, name in enumerate(METRICS):
            result[f"{name}@{k}"] = float(means[m, c])
    result["n_users"] = int(evaluated.sum())
    result["n_skipped_users"] = int((~evaluated).sum())
    return result


def coverage(top_items, n_items):
    """Share of the catalogue that appears in at least one list."""
    top_items = np.asarray(top_items)
    return float(np.unique(top_items[top_items >= 0]).size / n_items) if n_items else 0.0
