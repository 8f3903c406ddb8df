"""Most-popular recommendation: the reference point every personalised model must beat."""
import numpy as np

from fastrec._checks import check_choice, check_non_negative_float
from fastrec.models.base import Recommender


class Popularity(Recommender):
    """Score items by popularity, the same for every user.

    Parameters
    ----------
    mode : {"count", "mean"}
        "count": the number of users who interacted with the item.  "mean": the damped
        mean rating (explicit data only), which is a rating prediction:

        .. math:: s_i = \\frac{\\sum_{u} r_{ui} + \\beta \\mu}{n_i + \\beta}

    damping : float >= 0
        :math:`\\beta`, pulls rarely rated items towards the global mean :math:`\\mu`.

    Attributes
    ----------
    item_scores_ : float64 array (n_items,)
    global_mean_ : float
    """

    _learned = ("item_scores_", "global_mean_")

    def __init__(self, mode="count", damping=5.0):
        self.mode = mode
        self.damping = damping

    @property
    def predicts_ratings(self):
        return self.mode == "mean"

    @property
    def requires_ratings(self):
        return self.mode == "mean"

    @property
    def fallback(self):
        return "global mean" if self.mode == "mean" else "score 0"

    def _check_params(self):
        check_choice(self.mode, "mode", ("count", "mean"))
        check_non_negative_float(self.damping, "damping")

    def _fit(self, data):
        counts = data.item_counts.astype(np.float64)
        if self.mode == "count":
            self.global_mean_ = float(data.values.mean())
            self.item_scores_ = counts
            return
        if data.is_implicit:
            raise ValueError("Popularity(mode='mean') needs explicit ratings; use mode='count'")
        self.global_mean_ = mu = float(data.values.mean(dtype=np.float64))
        sums = np.bincount(data.csr.indices, weights=data.values, minlength=data.n_items)
        with np.errstate(invalid="ignore"):
            scores = (sums + self.damping * mu) / (counts + self.damping)
        self.item_scores_ = np.where(counts > 0, scores, mu)

    def _predict_indices(self, u, i):
        unknown = self.global_mean_ if self.mode == "mean" else 0.0
        return np.where(i >= 0, self.item_scores_[np.maximum(i, 0)], unknown)

    def _score_users(self, u):
        return np.broadcast_to(self.item_scores_, (u.size, self.item_scores_.size))

    def _linear_scoring(self):
        """``(key, users, items)`` as ``MatrixFactorization._linear_scoring``: one column."""
        scores = self.item_scores_
        return scores, lambda u: np.ones((u.size, 1)), lambda: scores[:, None]
