"""Neighbourhood collaborative filtering: item-based and user-based kNN.

On ratings these are scikit-surprise's KNNBasic / KNNWithMeans / KNNWithZScore /
KNNBaseline (``center`` = "none" / "mean" / "zscore" / "baseline") with the same
numbers; on implicit feedback they score like implicit's item-item recommenders.
Both orientations share one implementation: "x" is the kind of row the similarity
compares (items for ItemKNN) and "y" the other kind (users for ItemKNN).
"""
import numpy as np
import scipy.sparse as sp

from fastrec._checks import as_1d, check_choice, check_non_negative_float, check_positive_int
from fastrec._threads import effective_num_threads
from fastrec.models.base import Explanation, Recommender, _raw_ids
from fastrec.similarity import METRICS, item_similarity, topk_arrays, user_similarity

CENTERS = ("none", "mean", "zscore", "baseline")
SELF_SIMILARITY = 1.0  # Surprise puts 1 on the diagonal; it counts when (u, i) was rated


class _Neighborhood(Recommender):
    """Shared implementation of :class:`ItemKNN` and :class:`UserKNN`."""

    _orientation = None  # "items" or "users": the rows the similarity compares
    _learned = ("similarity_", "means_", "sigmas_", "global_mean_", "user_bias_", "item_bias_")

    def __init__(self, k=40, min_k=1, metric=None, shrinkage=None, min_support=1, center="none",
                 baseline_options=None, max_neighbors=None, clip=True, dtype=np.float64,
                 num_threads=None):
        self.k = k
        self.min_k = min_k
        self.metric = metric
        self.shrinkage = shrinkage
        self.min_support = min_support
        self.center = center
        self.baseline_options = baseline_options
        self.max_neighbors = max_neighbors
        self.clip = clip
        self.dtype = dtype
        self.num_threads = num_threads

    # -------------------------------------------------------------- checks
    def _check_params(self):
        check_positive_int(self.k, "k")
        check_positive_int(self.min_k, "min_k", minimum=0)
        if self.metric is not None:
            check_choice(self.metric, "metric", tuple(METRICS))
        if self.shrinkage is not None:
            check_non_negative_float(self.shrinkage, "shrinkage")
        check_positive_int(self.min_support, "min_support")
        check_choice(self.center, "center", CENTERS)
        check_positive_int(self.max_neighbors, "max_neighbors", allow_none=True)
        if np.dtype(self.dtype) not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {np.dtype(self.dtype)}")
        self._baseline_model()._check_params()

    def _baseline_model(self):
        from fastrec.models.baseline import Baseline

        options = self.baseline_options or {}
        if not isinstance(options, dict):
            raise TypeError(f"baseline_options must be a dict of fastrec.Baseline parameters, got {options!r}")
        try:
            return Baseline(**options)
        except TypeError as error:
            raise TypeError(f"baseline_options: {error}") from None

    # ----------------------------------------------------------------- fit
    @property
    def predicts_ratings(self):
        """True once fitted on ratings (Surprise's estimates); implicit data gives scores."""
        return not getattr(self, "_implicit", False)

    def _resolved_metric(self, implicit):
        return self.metric or ("cosine" if implicit else "msd")

    def _kept_neighbors(self, implicit):
        """Similarities stored per row: implicit's item-item model keeps the k nearest."""
        if implicit:
            return self.k if self.max_neighbors is None else min(self.k, self.max_neighbors)
        return self.max_neighbors

    def _fit(self, data):
        implicit = data.is_implicit
        metric = self._resolved_metric(implicit)
        if implicit and self.center != "none":
            raise ValueError(f"center={self.center!r} needs explicit ratings; this data is implicit")
        needs_baseline = self.center == "baseline" or metric == "pearson_baseline"
        baseline = self._baseline_model().fit(data) if needs_baseline else None
        kept = self._kept_neighbors(implicit)
        similarity = item_similarity if self._orientation == "items" else user_similarity
        self.similarity_ = similarity(data, metric, kept, shrinkage=self.shrinkage,
                                      min_support=self.min_support, num_threads=self.num_threads,
                                      dtype=self.dtype, baseline=baseline)
        values = data.values.astype(np.float64)
        x_of_entry = data.csr.indices if self._orientation == "items" else data.entry_users
        n_x = self.similarity_.shape[0]
        counts = np.bincount(x_of_entry, minlength=n_x)
        self.means_ = np.bincount(x_of_entry, weights=values, minlength=n_x) / np.maximum(counts, 1)
        spread = np.bincount(x_of_entry, weights=(values - self.means_[x_of_entry]) ** 2, minlength=n_x)
        sigmas = np.sqrt(spread / np.maximum(counts, 1))
        self.sigmas_ = np.where(sigmas > 0, sigmas, values.std() if values.size else 1.0)
        self.global_mean_ = float(values.mean()) if values.size else 0.0
        empty = np.zeros(0)
        self.user_bias_ = baseline.user_bias_ if baseline is not None else empty
        self.item_bias_ = baseline.item_bias_ if baseline is not None else empty
        self.interactions_ = data
        self._prepare()

    def _restore(self, arrays):
        super()._restore(arrays)
        self.global_mean_ = float(self.global_mean_)
        self._prepare()

    def _prepare(self):
        """Derived arrays the kernels read (rebuilt after fit and load, never saved)."""
        data = self.interactions_
        for part in (self.similarity_.data, self.similarity_.indices, self.similarity_.indptr):
            part.flags.writeable = False  # the kernels rely on the rows' score order
        self._implicit = data.is_implicit
        self._items_with_data = self._factors = self._operands = self._prepared_users = None
        self._popularity = data.item_counts.astype(np.float64)
        if self._implicit:
            self._sparse_factors()
            return
        # yr: for every y, the x's it rated (item-based: a user's items) with deviations
        by_y = data.csr if self._orientation == "items" else sp.csr_array(data.csc.T)
        self._yr_indptr = by_y.indptr.astype(np.int64)
        self._yr_indices = by_y.indices
        self._yr_values = by_y.data  # the ratings themselves, for explain
        values = by_y.data.astype(np.float64)
        x2 = by_y.indices
        if self.center == "mean":
            values = values - self.means_[x2]
        elif self.center == "zscore":
            values = (values - self.means_[x2]) / self.sigmas_[x2]
        elif self.center == "baseline":
            y = np.repeat(np.arange(by_y.shape[0]), np.diff(by_y.indptr))
            values = values - self._baseline_part(x2, y)
        self._yr_dev = np.ascontiguousarray(values)
        sim = self.similarity_
        self._sim_indptr = sim.indptr.astype(np.int64)
        self._sim_indices = sim.indices.astype(by_y.indices.dtype, copy=False)

    def _biases(self):
        """(bias of each x, bias of each y): (items, users) for ItemKNN."""
        if self._orientation == "items":
            return self.item_bias_, self.user_bias_
        return self.user_bias_, self.item_bias_

    def _baseline_part(self, x, y):
        """mu + b_x + b_y (arrays broadcast) for center="baseline", else 0."""
        if self.center != "baseline":
            return 0.0
        x_bias, y_bias = self._biases()
        return self.global_mean_ + x_bias[x] + y_bias[y]

    # ------------------------------------------------------------ estimates
    def _neighbour_means(self, groups_x, starts, stops, outs, query_y, n_out, yr=None):
        """Run ``knn_estimate``: (weighted mean deviation, neighbour count) per query."""
        from fastrec._kernels.knn import knn_estimate

        yr_dev, yr_indices, yr_indptr = yr if yr is not None else (self._yr_dev, self._yr_indices, self._yr_indptr)
        mean = np.empty(n_out)
        count = np.empty(n_out, dtype=np.int32)
        sim = self.similarity_
        knn_estimate(sim.data, self._sim_indices, self._sim_indptr, yr_dev, yr_indices, yr_indptr,
                     *(np.ascontiguousarray(a, dtype=np.int64) for a in (groups_x, starts, stops, outs, query_y)),
                     int(self.k), SELF_SIMILARITY, mean, count, effective_num_threads(self.num_threads))
        return mean, count

    def _estimates(self, mean, count, x_mean, x_sigma, base_bias):
        """Surprise's estimate from the neighbours' weighted mean deviation (unclipped).

        ``base_bias`` is mu + b_x + b_y for center="baseline"; arrays broadcast.
        """
        enough = (count >= max(self.min_k, 1)) & (count > 0)
        if self.center == "none":
            return np.where(enough, mean, self.global_mean_)
        if self.center == "mean":
            return x_mean + np.where(enough, mean, 0.0)
        if self.center == "zscore":
            return x_mean + np.where(enough, x_sigma * mean, 0.0)
        return base_bias + np.where(enough, mean, 0.0)

    def _fallback_values(self, u, i):
        """What pairs with an unknown user or item get (Surprise's default prediction)."""
        if self.center != "baseline":
            return np.full(u.shape, self.global_mean_)
        return (self.global_mean_ + np.where(u >= 0, self.user_bias_[np.maximum(u, 0)], 0.0)
                + np.where(i >= 0, self.item_bias_[np.maximum(i, 0)], 0.0))

    @property
    def fallback(self):
        if getattr(self, "_implicit", False):
            return "zero score"
        return "baseline" if self.center == "baseline" else "global mean"

    def _xy(self, u, i):
        return (i, u) if self._orientation == "items" else (u, i)

    def _predict_indices(self, u, i):
        if self._implicit:
            return self._implicit_pair_scores(u, i)
        return self._rating_estimates(u, i)[0]

    def _predict_indices_with_counts(self, u, i):
        """Estimates and the number of neighbours behind each (Surprise's ``actual_k``)."""
        if self._implicit:
            return self._implicit_pair_scores(u, i), self._implicit_counts(u, i)
        return self._rating_estimates(u, i)

    def _rating_estimates(self, u, i):
        known = (u >= 0) & (i >= 0)
        count = np.zeros(u.size, dtype=np.int32)
        estimates = self._fallback_values(u, i)
        x, y = self._xy(u[known], i[known])
        order = np.argsort(x, kind="stable")
        sorted_x = x[order]
        starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]]) if x.size else np.zeros(0, np.int64)
        stops = np.r_[starts[1:], x.size]
        mean, n_used = self._neighbour_means(sorted_x[starts], starts, stops, starts, y[order], x.size)
        unsorted_mean, unsorted_count = np.empty_like(mean), np.empty_like(n_used)
        unsorted_mean[order], unsorted_count[order] = mean, n_used
        estimates[known] = self._estimates(unsorted_mean, unsorted_count, self.means_[x],
                                           self.sigmas_[x], self._baseline_part(x, y))
        count[known] = unsorted_count
        return self._clipped(estimates), count

    def _clipped(self, estimates):
        scale = self.interactions_.rating_scale
        if self.clip and scale is not None:
            np.clip(estimates, scale[0], scale[1], out=estimates)
        return estimates

    # ---------------------------------------------------------- implicit mode
    def _implicit_operands(self):
        """(A, B) with score(u, i) = <A[u], B[i]>: (R, S^T) item-based, (S, R^T) user-based."""
        if getattr(self, "_operands", None) is None:
            # copies: sorting the indices must not touch similarity_'s score order
            sim = sp.csr_array(self.similarity_, dtype=np.float64, copy=True)
            ratings = sp.csr_array(self.interactions_.csr, dtype=np.float64, copy=True)
            if self._orientation == "items":
                pair = (ratings, sp.csr_array(sim.T))
            else:
                pair = (sim, sp.csr_array(ratings.T))
            for matrix in pair:
                matrix.sort_indices()
            self._operands = pair
        return self._operands

    def _implicit_pair_scores(self, u, i):
        from fastrec._kernels.knn import pair_dot

        left, right = self._implicit_operands()
        index_dtype = np.promote_types(left.indices.dtype, right.indices.dtype)
        out = np.empty(u.size)
        pair_dot(left.data, left.indices.astype(index_dtype), left.indptr.astype(np.int64),
                 right.data, right.indices.astype(index_dtype), right.indptr.astype(np.int64),
                 np.ascontiguousarray(u, dtype=np.int64), np.ascontiguousarray(i, dtype=np.int64),
                 out, effective_num_threads(self.num_threads))
        return out

    def _implicit_counts(self, u, i):
        """Neighbours behind each implicit score: shared entries of the two operand rows."""
        left, right = self._implicit_operands()
        ones = [sp.csr_array((np.ones(m.nnz), m.indices, m.indptr), shape=m.shape) for m in (left, right)]
        valid = (u >= 0) & (i >= 0)
        counts = np.zeros(u.size, dtype=np.int32)
        if valid.any():
            a, b = ones[0][u[valid]], ones[1][i[valid]]
            counts[valid] = np.asarray(a.multiply(b).sum(axis=1)).ravel().astype(np.int32)
        return counts

    # ------------------------------------------------------------- recommend
    def _recommend_codes(self, users, n, exclude_seen=True, items=None, num_threads=None, batch_size=None):
        self._check_fitted()
        if not self._implicit:
            return super()._recommend_codes(users, n, exclude_seen, items, num_threads, batch_size)
        from fastrec._kernels.knn import product_topk

        n = check_positive_int(n, "n", minimum=0)
        users = as_1d(np.atleast_1d(np.asarray(users)), "users")
        u, known_user = self._known_users(users)
        data = self.interactions_
        excluded = self._excluded_columns(items)
        left, right = self._sparse_factors()
        seen = self._seen_pattern() if exclude_seen else (np.zeros(0, np.int64), left.indices[:0])
        ids = np.empty((u.size, n), dtype=np.int64)
        scores = np.empty((u.size, n), dtype=right.dtype)
        product_topk(left.data, left.indices, left.indptr, right.data, right.indices, right.indptr,
                     np.ascontiguousarray(u, dtype=np.int64), *seen,
                     np.zeros(0, np.uint8) if excluded is None else excluded[0],
                     data.n_items, ids, scores, self._products_positive(), effective_num_threads(num_threads))
        if not known_user.all():  # unknown users: the most popular items
            self._fill_popular(ids, scores, ~known_user, n, excluded, num_threads)
        return ids, scores, known_user

    def _sparse_factors(self):
        """(X, T) with the user's score row = X[u] @ T, in the similarity's dtype, int64 indptr,
        int32 indices where every dimension fits (less to read per product term)."""
        if getattr(self, "_factors", None) is None:
            data = self.interactions_
            sim = self.similarity_
            fits = max(data.n_users, data.n_items) < np.iinfo(np.int32).max
            index_dtype = np.int32 if fits else np.promote_types(sim.indices.dtype, data.csr.indices.dtype)

            def operand(values, matrix):
                return sp.csr_array((values.astype(sim.dtype, copy=False),
                                     matrix.indices.astype(index_dtype, copy=False),
                                     matrix.indptr.astype(np.int64, copy=False)), shape=matrix.shape)

            ratings, sim = operand(data.csr.data, data.csr), operand(sim.data, sim)
            self._factors = (ratings, sim) if self._orientation == "items" else (sim, ratings)
        return self._factors

    def _products_positive(self):
        """Whether every term of ``_sparse_factors``' product is > 0 (``products_positive``),
        found once per pair of factors."""
        from fastrec.mips import products_positive

        left, right = self._sparse_factors()
        cached = getattr(self, "_positive_cache", None)
        if cached is None or cached[0] is not left:
            cached = (left, products_positive(left.data[:left.indptr[-1]], right.data[:right.indptr[-1]]))
            self._positive_cache = cached
        return cached[1]

    def _seen_pattern(self):
        """Every user's training items as (indptr, indices) for product_topk's exclusions."""
        ratings = self._sparse_factors()[0 if self._orientation == "items" else 1]
        return ratings.indptr, ratings.indices

    def _fill_popular(self, ids, scores, rows, n, excluded, num_threads):
        from fastrec.topk import run_topk

        top_ids, top_scores = run_topk(self._popularity[None, :].astype(scores.dtype), n, excluded,
                                       None, None, effective_num_threads(num_threads))
        ids[rows] = top_ids[0]
        scores[rows] = top_scores[0]

    def _score_users(self, u):
        """Dense estimated ratings of every item for users ``u`` (rating mode, unclipped).

        Unknown users (-1) get item popularity, so they are shown the most popular items.
        """
        data = self.interactions_
        known = u >= 0
        out = np.empty((u.size, data.n_items))
        out[~known] = self._popularity
        users = u[known]
        b, n_items = users.size, data.n_items
        if b:
            if self._orientation == "items":  # one group per item, every user in each
                groups = np.arange(n_items)
                mean, count = self._neighbour_means(groups, np.zeros(n_items), np.full(n_items, b),
                                                    groups * b, users, n_items * b)
                mean, count = mean.reshape(n_items, b).T, count.reshape(n_items, b).T
                x, y = groups[None, :], users[:, None]
            else:  # one group per user, every item in each
                mean, count = self._neighbour_means(users, np.zeros(b), np.full(b, n_items),
                                                    np.arange(b) * n_items, np.arange(n_items), n_items * b)
                mean, count = mean.reshape(b, n_items), count.reshape(b, n_items)
                x, y = users[:, None], np.arange(n_items)[None, :]
            out[known] = self._estimates(mean, count, self.means_[x], self.sigmas_[x],
                                         self._baseline_part(x, y))
        return out

    def _history_fallback(self):
        return 0.0 if self._implicit else self.global_mean_

    # --------------------------------------------------------------- explain
    def explain(self, user, item, n=5):
        """The neighbours behind the estimate for (user, item): an :class:`Explanation`.

        Rating data: the k most similar neighbours the estimate used, each with its
        similarity, rating and contribution (its share of the estimate above ``base``).
        Implicit data: every neighbour whose similarity adds to the score.
        """
        self._check_fitted()
        n = check_positive_int(n, "n", minimum=0)
        data = self.interactions_
        u, known_u = self._known_users(np.atleast_1d(np.asarray(user)))
        i, known_i = self._known_items(np.atleast_1d(np.asarray(item)))
        estimate = float(self._predict_indices(u, i)[0])
        x_raw = data.item_ids if self._orientation == "items" else data.user_ids
        empty = Explanation(user, item, estimate, estimate, x_raw[:0], np.zeros(0), np.zeros(0), np.zeros(0))
        if not (known_u[0] and known_i[0]):
            return empty
        x, y = self._xy(int(u[0]), int(i[0]))
        if self._implicit:
            neighbor, sim, rating, contribution = self._implicit_parts(x, y)
            order = np.lexsort((neighbor, -contribution))
            base = 0.0
        else:
            neighbor, sim, rating, contribution, base = self._rating_parts(x, y)
            if neighbor.size == 0:
                return empty
            order = np.arange(neighbor.size)
        order = order[:n]
        return Explanation(user, item, estimate, base, x_raw[neighbor[order]], sim[order],
                           rating[order], contribution[order])

    def _rating_parts(self, x, y):
        start, stop = self._yr_indptr[y], self._yr_indptr[y + 1]
        neighbor = self._yr_indices[start:stop].astype(np.int64)
        dev = self._yr_dev[start:stop]
        rating = self._yr_values[start:stop].astype(np.float64)
        row = self.similarity_[[x]].toarray().ravel().astype(np.float64)
        row[x] = SELF_SIMILARITY
        sim = row[neighbor]
        keep = np.flatnonzero(sim > 0)
        keep = keep[np.lexsort((neighbor[keep], -sim[keep]))][:self.k]
        neighbor, sim, dev, rating = neighbor[keep], sim[keep], dev[keep], rating[keep]
        if neighbor.size < max(self.min_k, 1):
            return neighbor[:0], sim[:0], rating[:0], sim[:0], 0.0
        share = sim * dev / sim.sum()
        if self.center == "none":
            return neighbor, sim, rating, share, 0.0
        if self.center == "zscore":
            return neighbor, sim, rating, share * self.sigmas_[x], float(self.means_[x])
        if self.center == "mean":
            return neighbor, sim, rating, share, float(self.means_[x])
        return neighbor, sim, rating, share, float(self._baseline_part(x, y))

    def _implicit_parts(self, x, y):
        """Item-based: the user's items i with s(i, target); user-based: neighbours v who have the item."""
        data = self.interactions_
        sim = self.similarity_
        if self._orientation == "items":  # x = target item, y = user: sum_i r_ui s(i, x)
            row = data.csr[[y]]
            neighbor = row.indices.astype(np.int64)
            rating = row.data.astype(np.float64)
            column = sp.csr_array(sim[:, [x]]).toarray().ravel().astype(np.float64)
            s = column[neighbor]
        else:  # x = user, y = item: sum_v s(x, v) r_vy
            sim_row = sim[[x]]
            neighbor = sim_row.indices.astype(np.int64)
            s = sim_row.data.astype(np.float64)
            rating = data.csc[:, [y]].toarray().ravel()[neighbor].astype(np.float64)
        keep = (s != 0) & (rating != 0)
        return neighbor[keep], s[keep], rating[keep], (s * rating)[keep]


class ItemKNN(_Neighborhood):
    """Item-based collaborative filtering: neighbours are items.

    On ratings, the estimate for (u, i) comes from the ``k`` items most similar to i
    among those u rated (positive similarities only; ties: lower id), as in
    scikit-surprise with ``user_based=False``:

    - ``center="none"`` (KNNBasic): :math:`\\sum s_{ij} r_{uj} / \\sum s_{ij}`;
    - ``"mean"`` (KNNWithMeans): :math:`\\mu_i + \\sum s_{ij}(r_{uj} - \\mu_j) / \\sum s_{ij}`;
    - ``"zscore"`` (KNNWithZScore): :math:`\\mu_i + \\sigma_i \\sum s_{ij}(r_{uj} - \\mu_j)/\\sigma_j / \\sum s_{ij}`;
    - ``"baseline"`` (KNNBaseline): :math:`b_{ui} + \\sum s_{ij}(r_{uj} - b_{uj}) / \\sum s_{ij}`
      with the biases of a :class:`fastrec.Baseline` built from ``baseline_options``.

    With fewer than ``min_k`` neighbours the estimate falls back as Surprise's does
    (the global mean for "none", the centre otherwise); an item's similarity to
    itself counts as 1.  Unknown users or items get the global mean (the baseline
    for ``center="baseline"``).  Estimates are clipped to the rating scale (``clip``).

    On implicit feedback the score of item j for user u is
    :math:`\\sum_{i \\in I_u} r_{ui} s_{ij}` where j is among the ``k`` most similar
    items of i (implicit's ``ItemItemRecommender`` with ``K=k``).

    Parameters
    ----------
    k : int
        Neighbours used per estimate (rating data) or kept per item (implicit data).
    min_k : int
    metric : str, optional
        A measure of :mod:`fastrec.similarity`; default "msd" on ratings (Surprise's
        default), "cosine" on implicit data.  Surprise's "cosine" is ``"corated_cosine"``.
    shrinkage, min_support
        As in :func:`fastrec.similarity.item_similarity`.
    center : {"none", "mean", "zscore", "baseline"}
    baseline_options : dict, optional
        Parameters of :class:`fastrec.Baseline` (Surprise's ``bsl_options``), used by
        ``center="baseline"`` and the ``"pearson_baseline"`` metric.
    max_neighbors : int, optional
        Similarities stored per item.  None keeps every non-zero one, so estimates are
        exact; a number bounds memory at ``n_items * max_neighbors`` but an estimate
        then only sees neighbours among each item's ``max_neighbors`` most similar.
    clip : bool
    dtype : float64 or float32
        Of the stored similarities; float64 gives Surprise's numbers to 1e-4 and below.
    num_threads : int, optional

    Attributes
    ----------
    similarity_ : csr_array (n_items, n_items), rows by similarity descending
    means_, sigmas_ : float64 arrays (n_items,)
    global_mean_ : float
    user_bias_, item_bias_ : float64 arrays, empty unless a baseline was fitted
    """

    _orientation = "items"

    def similar_items(self, items, n=10):
        """The ``n`` most similar items of each raw item id: ``(item_ids, scores)``, padded."""
        return _most_similar(self, items, n, self.interactions_.item_index, self.interactions_.item_ids)

    def _history_scores(self, codes, values):
        """Scores of every item for one new user (estimates on ratings, unclipped)."""
        n_items = self.interactions_.n_items
        if self._implicit:
            left, right = self._sparse_factors()
            weights = values.astype(right.dtype)
            history = sp.csr_array((weights, codes.astype(right.indices.dtype), [0, codes.size]),
                                   shape=(1, n_items))
            return np.asarray((history @ right).toarray()).ravel().astype(np.float64)
        user_bias = 0.0
        if self.center == "baseline":
            reg_u = self._baseline_model().reg_u
            user_bias = float(np.sum(values - self.global_mean_ - self.item_bias_[codes]) / (reg_u + codes.size))
        if self.center == "mean":
            dev = values - self.means_[codes]
        elif self.center == "zscore":
            dev = (values - self.means_[codes]) / self.sigmas_[codes]
        elif self.center == "baseline":
            dev = values - (self.global_mean_ + self.item_bias_[codes] + user_bias)
        else:
            dev = values
        yr = (np.ascontiguousarray(dev, dtype=np.float64), codes.astype(self._yr_indices.dtype),
              np.array([0, codes.size], dtype=np.int64))
        groups = np.arange(n_items)
        mean, count = self._neighbour_means(groups, np.zeros(n_items), np.ones(n_items), groups,
                                            np.zeros(1), n_items, yr=yr)
        base = self.global_mean_ + self.item_bias_ + user_bias if self.center == "baseline" else 0.0
        return self._estimates(mean, count, self.means_, self.sigmas_, base)


class UserKNN(_Neighborhood):
    """User-based collaborative filtering: neighbours are users.

    The estimate for (u, i) comes from the ``k`` users most similar to u among those
    who rated i, with the formulas of :class:`ItemKNN` with users and items swapped
    (scikit-surprise's KNN models with ``user_based=True``).  On implicit feedback the
    score is :math:`\\sum_{v \\in N_k(u)} s_{uv} r_{vi}` over u's ``k`` nearest users.
    Parameters and attributes as :class:`ItemKNN`, with ``similarity_`` (n_users, n_users).
    """

    _orientation = "users"

    def similar_users(self, users, n=10):
        """The ``n`` most similar users of each raw user id: ``(user_ids, scores)``, padded."""
        return _most_similar(self, users, n, self.interactions_.user_index, self.interactions_.user_ids)

    def _history_scores(self, codes, values):
        """Scores of every item for one new user: its similarity to every training user
        (``fastrec.similarity.similarity_to_history``), then the trained estimates."""
        from fastrec.similarity import prepared_user_matrix, similarity_to_history

        data = self.interactions_
        metric = self._resolved_metric(self._implicit)
        baseline = self._baseline_for_history() if metric == "pearson_baseline" else None
        if getattr(self, "_prepared_users", None) is None:
            self._prepared_users = prepared_user_matrix(data, metric, baseline)
        users, sims = similarity_to_history(data, metric, codes, values, shrinkage=self.shrinkage,
                                            min_support=self.min_support, baseline=baseline,
                                            prepared=self._prepared_users)
        order = np.lexsort((users, -sims))[:self._kept_neighbors(self._implicit)]
        users, sims = users[order], sims[order].astype(self.similarity_.dtype)
        if self._implicit:  # sum over the neighbours of s_v r_vj
            return sims.astype(np.float64) @ data.csr[users].toarray()  # at most k rows
        n, n_items = data.n_users, data.n_items
        sim_indptr = np.r_[np.zeros(n + 1, dtype=np.int64), users.size]  # the new user is row n
        from fastrec._kernels.knn import knn_estimate

        mean = np.empty(n_items)
        count = np.empty(n_items, dtype=np.int32)
        knn_estimate(sims, users.astype(self._yr_indices.dtype), sim_indptr, self._yr_dev,
                     self._yr_indices, self._yr_indptr, np.array([n], dtype=np.int64),
                     np.zeros(1, dtype=np.int64), np.array([n_items], dtype=np.int64),
                     np.zeros(1, dtype=np.int64), np.arange(n_items, dtype=np.int64), int(self.k),
                     SELF_SIMILARITY, mean, count, effective_num_threads(self.num_threads))
        user_mean = values.mean() if values.size else self.global_mean_
        spread = values.std() if values.size else 0.0
        user_sigma = spread if spread > 0 else data.values.std()
        base = 0.0
        if self.center == "baseline":
            reg_u = self._baseline_model().reg_u
            user_bias = np.sum(values - self.global_mean_ - self.item_bias_[codes]) / (reg_u + codes.size)
            base = self.global_mean_ + user_bias + self.item_bias_
        return self._estimates(mean, count, user_mean, user_sigma, base)

    def _baseline_for_history(self):
        """A fitted-looking Baseline from the stored biases (for pearson_baseline)."""
        baseline = self._baseline_model()
        baseline.global_mean_ = self.global_mean_
        baseline.user_bias_, baseline.item_bias_ = self.user_bias_, self.item_bias_
        baseline.interactions_ = self.interactions_
        return baseline


def _most_similar(model, raw, n, to_index, ids):
    model._check_fitted()
    n = check_positive_int(n, "n", minimum=0)
    codes = to_index(as_1d(np.atleast_1d(np.asarray(raw)), "ids"), unknown="ignore")
    sim = model.similarity_
    rows = sim[np.maximum(codes, 0)] if codes.size else sim[:0]
    neighbor_ids, scores = topk_arrays(rows, n)
    neighbor_ids[codes < 0], scores[codes < 0] = -1, -np.inf
    return _raw_ids(ids, neighbor_ids), scores
