"""``evaluate``: fit a model, time it, and score its ratings and top-N lists on held-out data.

``evaluate_sampled``: the sampled protocol of the NCF paper (each held-out item ranked
among 100 sampled negatives), with ``sampled_ranking_metrics`` for the ranks.
"""
import time

import numpy as np

from fastrec import metrics
from fastrec.metrics import _cutoffs, sampled_ranking_metrics


class EvaluationResult:
    """Metrics and timings of one model on one split; ``to_dict()`` / ``to_frame()``."""

    def __init__(self, model_name, values):
        self.model_name = model_name
        self.values = values

    def to_dict(self):
        return {"model": self.model_name, **self.values}

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame([self.to_dict()]).set_index("model")

    def __getitem__(self, key):
        return self.values[key]

    def __repr__(self):
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in self.values.items())
        return f"<EvaluationResult {self.model_name}: {shown}>"


def evaluate(model, train, test, k=(10,), *, fit=True, name=None, num_threads=None):
    """Fit ``model`` on ``train`` (unless ``fit=False``) and score it on ``test``.

    Rating metrics (RMSE, MAE) are computed for models that predict ratings on
    explicit data; ranking metrics (precision, recall, NDCG, MAP, MRR, hit rate, AUC at
    each k), catalogue coverage and novelty from ``recommend`` with seen items
    excluded, for every user with test items.  ``train`` and ``test`` must share their id maps (as the splits
    in ``fastrec.model_selection`` produce).
    """
    if not train.same_ids(test):
        raise ValueError("train and test must share id maps; build them with fastrec.model_selection")
    ks = (k,) if np.ndim(k) == 0 else tuple(k)
    values = {}
    start = time.perf_counter()
    if fit:
        model.fit(train)
    values["fit_seconds"] = time.perf_counter() - start

    users, items, ratings, _ = test.to_arrays()
    start = time.perf_counter()
    if model.predicts_ratings and not test.is_implicit:
        predicted = model.predict(users, items)
        values["rmse"] = metrics.rmse(ratings, predicted)
        values["mae"] = metrics.mae(ratings, predicted)
    else:
        values["rmse"] = values["mae"] = float("nan")
    values["predict_seconds"] = time.perf_counter() - start

    test_users = np.flatnonzero(test.user_counts > 0)
    start = time.perf_counter()
    codes, _, _ = model._recommend_codes(test.user_ids[test_users], max(ks), num_threads=num_threads)
    values["recommend_seconds"] = time.perf_counter() - start
    values.update(metrics.ranking_metrics(codes, test_users, test, ks, train=train))
    values["coverage"] = metrics.coverage(codes, test.n_items)
    values["novelty"] = metrics.novelty(codes, train)
    return EvaluationResult(name or repr(model), values)


def evaluate_sampled(model, train, test, n_negatives=100, k=10, *, fit=True, random_state=None,
                     num_threads=None, name=None):
    """The sampled protocol of He et al. (2017): rank each held-out item among negatives.

    The evaluation of "Neural Collaborative Filtering" (He, Liao, Zhang, Nie, Hu and
    Chua, WWW 2017), usable with any fastrec model: split with
    ``fastrec.model_selection.leave_k_out(data, 1, by="time")``, fit ``model`` on
    ``train`` (unless ``fit=False``), then for every test interaction score the
    held-out item and ``n_negatives`` items the user has in neither train nor test
    (drawn by :func:`fastrec.model_selection.sample_negatives`), and average the hit
    ratio and NDCG of the held-out item's rank (:func:`sampled_ranking_metrics`).

    Scores are ``model.predict(user_ids, item_ids)`` on raw ids, one call for every
    (row, candidate) pair.  Ties count against the held-out item (pessimistic ranks),
    so a model that gives many items the same score -- a constant, a rating clipped
    to the top of the scale, the zero score of an item without training data --
    earns no hits from the tie.

    Parameters
    ----------
    model : fastrec model (a ``Recommender``)
    train, test : Interactions
        Sharing their id maps (as the splits in ``fastrec.model_selection`` produce).
    n_negatives : int >= 0
        Sampled negatives per test interaction (100 in the paper).
    k : int or tuple of int
        Cut-offs (10 in the paper).
    fit : bool
        Fit ``model`` on ``train`` first; with False it must already be fitted.
    random_state : None, int, SeedSequence or numpy.random.Generator
        Seeds the negatives, so models scored with the same seed see the same lists.
    num_threads : int, optional
        Accepted for symmetry with :func:`evaluate` and checked; ``predict`` runs
        with the model's own ``num_threads`` (kNN and MF take one at construction).
    name : str, optional
        The result's model name (default ``repr(model)``).

    Returns
    -------
    EvaluationResult
        ``hit_rate@k`` and ``ndcg@k`` for each k, ``n_users`` (rows evaluated: one per
        test interaction), ``fit_seconds`` and ``score_seconds`` (``predict`` and the
        ranks; drawing the negatives is not timed).

    Raises
    ------
    ValueError
        train and test with different id maps; a user with fewer than ``n_negatives``
        items to sample; NaN scores.  Errors from ``fit`` or ``predict`` (a model
        that needs ratings on implicit data, say) propagate, with a note naming the
        model.
    """
    from fastrec._threads import effective_num_threads
    from fastrec.model_selection import sample_negatives

    if not train.same_ids(test):
        raise ValueError("train and test must share id maps; build them with fastrec.model_selection")
    ks = _cutoffs(k)
    effective_num_threads(num_threads)  # validate only
    users, candidates = sample_negatives(train, test, n_negatives, random_state=random_state)
    values = {}
    start = time.perf_counter()
    if fit:
        try:
            model.fit(train)
        except Exception as error:
            error.add_note(f"evaluate_sampled: fitting {model!r} on the training data failed")
            raise
    values["fit_seconds"] = time.perf_counter() - start

    start = time.perf_counter()
    user_ids = np.repeat(train.user_ids[users], candidates.shape[1])
    item_ids = train.item_ids[candidates.ravel()]
    try:
        scores = np.asarray(model.predict(user_ids, item_ids))
    except Exception as error:
        error.add_note(f"evaluate_sampled: {model!r}.predict(users, items) failed; the sampled "
                       "protocol needs a model whose predict scores any (user, item) pair")
        raise
    if scores.shape != user_ids.shape:
        raise ValueError(f"{model!r}.predict returned shape {scores.shape} for {user_ids.size} pairs")
    try:
        ranking = sampled_ranking_metrics(scores.reshape(candidates.shape), ks)
    except ValueError as error:
        error.add_note(f"evaluate_sampled: scores from {model!r}.predict")
        raise
    values["score_seconds"] = time.perf_counter() - start
    values.update(ranking)
    return EvaluationResult(name or repr(model), values)
