"""Fusion: one recommender from several, their scores blended with learned weights.

``method="linear"`` on ratings learns an intercept and one weight per member by least
squares (non-negative by default) on held-out ratings; ``"linear"`` and ``"rank"`` on
implicit data learn weights that maximise NDCG@k on held-out interactions, over each
member's normalised scores or ranks; ``"rrf"`` (reciprocal-rank fusion) needs no weights.
"""
import dataclasses

import numpy as np
import scipy.sparse as sp

from fastrec._checks import check_choice, check_positive_int
from fastrec.data import as_interactions
from fastrec.mips import NORMALIZATIONS, InnerProductIndex, ProductBonus
from fastrec.models.base import Explanation, Recommender

METHODS = ("linear", "rank", "rrf")
RRF_K = 60  # the constant of reciprocal-rank fusion (Cormack et al. 2009)
WEIGHT_STEPS = 10  # the ranking search tries weights on a grid of 1/WEIGHT_STEPS
CONTENT_K = 20  # content neighbours that score an item without interactions
PRIOR_USERS = 10_000  # users whose mean orders the pruned search's first exact scores
SCALING_BLOCK = 8192  # users whose search scaling the pruning plan computes at a time
STACKINGS = ("fwls", "linear")
FWLS_RIDGE = 1.0  # ridge penalty of the feature-weighted least squares


class Blend(Recommender):
    """A weighted fusion of fitted-or-not recommenders, kept as given in ``models``.

    - ``method="linear"``: rating blends (every member predicts ratings, the data is
      explicit) predict ``intercept_ + sum_m weights_[m] * member_m``; otherwise the
      score is ``sum_m weights_[m] * normalize(member_m's scores of the user's items)``.
    - ``"rank"``: the weighted sum of each member's rank score ``1 - rank / n_items``.
    - ``"rrf"``: ``sum_m 1 / (RRF_K + rank_m)``, no weights.

    ``normalize`` ("zscore", "minmax" or None) puts each member's scores of one user's
    items on a common scale before a ranking blend combines them.  ``weights`` given
    by hand are used as they are; otherwise they are learned in ``fit``.

    Attributes
    ----------
    weights_ : array (n_members,)
    intercept_ : float (rating blends; 0 otherwise)
    validation_scores_ : dict
        Each member's and the blend's validation RMSE (rating blends) or NDCG@k.
    """

    _unsaved_params = ("models",)  # saved as members of their own, see _state
    _learned = ("weights_", "intercept_", "support_weights_", "rating_blend_", "member_names_",
                "named_members_", "content_items_", "content_weights_")
    _dense_blas_scores = True

    def __init__(self, models, *, method="linear", stacking="fwls", normalize="zscore", weights=None,
                 nonnegative=True, validation_size=0.1, k=10, random_state=None, num_threads=None):
        self.models = models
        self.method = method
        self.stacking = stacking
        self.normalize = normalize
        self.weights = weights
        self.nonnegative = nonnegative
        self.validation_size = validation_size
        self.k = k
        self.random_state = random_state
        self.num_threads = num_threads

    # --------------------------------------------------------------- params
    def _members(self):
        return [m[1] if isinstance(m, tuple) else m for m in self.models]

    def _names(self):
        return [m[0] if isinstance(m, tuple) else f"{type(m).__name__}_{j}" for j, m in enumerate(self.models)]

    @property
    def _rating_blend(self):
        return bool(getattr(self, "rating_blend_", False))

    @property
    def predicts_ratings(self):
        return self._rating_blend

    @property
    def requires_ratings(self):
        return any(m.requires_ratings for m in self._members())

    @property
    def fallback(self):
        return ("unknown users: the members' fallbacks (popularity, biases), blended; items without "
                "interactions: their content neighbours' blended scores (item_features), and in a new "
                "user's history (recommend_history) those neighbours stand in for them")

    def _check_params(self):
        members = self._members()
        if not isinstance(self.models, (list, tuple)) or not members:
            raise ValueError("models must be a non-empty list of recommenders (or (name, model) pairs)")
        for m in members:
            if not isinstance(m, Recommender):
                raise TypeError(f"every member must be a fastrec recommender, got {m!r}")
        check_choice(self.method, "method", METHODS)
        check_choice(self.stacking, "stacking", STACKINGS)
        check_choice(self.normalize, "normalize", NORMALIZATIONS)
        check_positive_int(self.k, "k")
        if not 0.0 < self.validation_size < 1.0:
            raise ValueError(f"validation_size must lie in (0, 1), got {self.validation_size!r}")
        if self.weights is not None:
            weights = np.asarray(self.weights, dtype=np.float64)
            if weights.shape != (len(members),) or not np.isfinite(weights).all():
                raise ValueError(f"weights must be {len(members)} finite numbers, one per member")

    # ------------------------------------------------------------------ fit
    def fit(self, data, validation=None, refit=True, fit_members=True):
        """Fit the members and learn the weights.

        Without ``validation`` a random ``validation_size`` share of ``data`` is held
        out: members are fitted on the rest, their scores on the held-out part give the
        weights, and with ``refit=True`` (default) the members are fitted again on all
        of ``data``.  With ``validation`` (same ids), members are fitted on ``data`` and
        refitted on both when ``refit``.  Given ``weights`` skip the learning.
        ``fit_members=False`` takes members already fitted on ``data`` as they are
        (weights given, or learned on ``validation``).
        """
        from fastrec.model_selection import train_test_split

        data = as_interactions(data)
        self._check_params()
        members = self._members()
        self.content_items_ = None  # set again once the weights are learned
        self.rating_blend_ = np.array(self.method == "linear" and not data.is_implicit
                                      and all(m.predicts_ratings for m in members))
        self.member_names_ = np.array(self._names())
        self.named_members_ = np.array(all(isinstance(m, tuple) for m in self.models))
        if validation is not None:
            validation = as_interactions(validation)
            if not validation.same_ids(data):
                raise ValueError("validation must use the training data's ids (split one Interactions "
                                 "with fastrec.model_selection)")
        if not fit_members:
            for m in members:
                if not hasattr(m, "interactions_") or not m.interactions_.same_ids(data):
                    raise ValueError(f"fit_members=False needs every member fitted on data with these ids; "
                                     f"{m!r} is not")
            if self.weights is None and validation is None:
                raise ValueError("fit_members=False learns weights on validation data: pass validation "
                                 "or weights")
            self.interactions_ = data
            self._learn_weights(data, validation)
            self._fit_content(data)
            return self
        if validation is None:
            train, validation = train_test_split(data, self.validation_size, random_state=self.random_state)
            full = data
        else:
            train, full = data, _union(data, validation)
        self.interactions_ = train
        for m in members:
            m.fit(train)
        self._learn_weights(train, validation)
        if refit:
            for m in members:
                m.fit(full)
        self.interactions_ = full if refit else train
        self._fit_content(self.interactions_)
        return self

    def _learn_weights(self, train, validation):
        from scipy.optimize import nnls

        from fastrec import metrics

        names = self._names()
        n = len(names)
        self.validation_scores_ = {}
        if validation is None:  # weights given, members taken as they are
            self.weights_, self.intercept_ = np.asarray(self.weights, dtype=np.float64), 0.0
            self.support_weights_ = np.zeros((2, n + 1))
            return
        users, items, ratings, _ = validation.to_arrays()
        u, _ = self._known_users(users)
        i, _ = Recommender._known_items(self, items)
        self.support_weights_ = np.zeros((2, n + 1))
        if self._rating_blend:
            columns = np.column_stack([m._predict_indices(u, i) for m in self._members()])
            for name, column in zip(names, columns.T, strict=True):
                self.validation_scores_[name] = metrics.rmse(ratings, column)
            if self.weights is not None:
                weights, intercept = np.asarray(self.weights, dtype=np.float64), 0.0
            elif self.stacking == "fwls":
                # feature-weighted linear stacking (Sill et al. 2009): each weight is linear
                # in the user's and the item's log support, fitted by ridge least squares
                fu, fi = self._user_support(u), self._item_support(i)
                design = np.column_stack([columns, columns * fu[:, None], columns * fi[:, None],
                                          np.ones(u.size), fu, fi])
                gram = design.T @ design + FWLS_RIDGE * np.eye(design.shape[1])
                solution = np.linalg.solve(gram, design.T @ ratings)
                weights, intercept = solution[:n], float(solution[3 * n])
                self.support_weights_ = np.vstack([np.r_[solution[n:2 * n], solution[3 * n + 1]],
                                                   np.r_[solution[2 * n:3 * n], solution[3 * n + 2]]])
            else:
                design = np.column_stack([columns, np.ones(u.size)])
                if self.nonnegative:
                    solution, _ = nnls(design, ratings)
                else:
                    solution = np.linalg.lstsq(design, ratings, rcond=None)[0]
                weights, intercept = solution[:n], float(solution[n])
            self.weights_, self.intercept_ = weights, intercept
            blended = self._predict_indices(u, i)
            self.validation_scores_["blend"] = metrics.rmse(ratings, blended)
            return
        # ranking blends: NDCG@k of each member, then a grid search over the weights
        self.intercept_ = 0.0
        evaluated = np.flatnonzero(validation.user_counts > 0)
        member_scores = [self._member_scores(m, evaluated) for m in self._members()]

        def ndcg(weights):
            combined = sum(w * s for w, s in zip(weights, member_scores, strict=True))
            top = _top(combined, self.k, train, evaluated)
            return metrics.ranking_metrics(top, evaluated, validation, (self.k,))[f"ndcg@{self.k}"]

        for j, name in enumerate(names):
            self.validation_scores_[name] = ndcg(np.eye(n)[j])
        if self.method == "rrf":
            weights = np.ones(n)
        elif self.weights is not None:
            weights = np.asarray(self.weights, dtype=np.float64)
        else:
            weights = _grid_search(ndcg, n)
        self.weights_ = weights
        self.validation_scores_["blend"] = ndcg(weights)

    # -------------------------------------------------------------- scoring
    def _member_scores(self, model, u):
        """One member's dense scores of every item for users ``u``, on the blend's scale."""
        return self._on_scale(_dense_scores(model, u))

    def _on_scale(self, scores):
        """Dense scores on the blend's scale: normalised scores (linear), rank scores
        (rank) or reciprocal ranks (rrf)."""
        if self.method == "linear":
            scale, shift = _scale_and_shift(scores, self.normalize)
            return (scores - shift[:, None]) * scale[:, None]
        ranks = np.empty(scores.shape)
        order = np.argsort(-scores, axis=1, kind="stable")
        np.put_along_axis(ranks, order, np.arange(scores.shape[1], dtype=np.float64)[None, :], axis=1)
        if self.method == "rank":
            return 1.0 - ranks / scores.shape[1]
        return 1.0 / (RRF_K + 1.0 + ranks)

    def _predict_indices(self, u, i):
        if self._rating_blend and not self._content_items(i).any():
            fu, fi = self._user_support(u), self._item_support(i)
            a, b = self.support_weights_
            out = self.intercept_ + a[-1] * fu + b[-1] * fi
            for m, member in enumerate(self._members()):
                out += member._predict_indices(u, i) * (self.weights_[m] + a[m] * fu + b[m] * fi)
        else:  # through the dense rows, which score items without interactions too
            users, inverse = np.unique(u, return_inverse=True)
            out = self._score_users(users)[inverse, np.maximum(i, 0)]
            out[i < 0] = self.intercept_ if self._rating_blend else 0.0
        scale = self.interactions_.rating_scale
        return np.clip(out, *scale) if self._rating_blend and scale is not None else out

    def _score_users(self, u):
        members = self._members()
        sparse = [_sparse_member(m) for m in members]
        if self._rating_blend or self.method != "linear" or not any(sparse) or sum(not s for s in sparse) != 1:
            return self._combine([_dense_scores(m, u) for m in members], self._user_support(u))
        return self._fused_scores(u, members, sparse)

    def _block_topk(self, rows, n, candidates, seen, num_threads):
        """Top-n through the pruned exact search when the blend is linear in its members'
        scores (``_pruning_plan``); else the dense rows and the shared top-k."""
        plan = self._pruning_plan()
        if plan is None:
            return super()._block_topk(rows, n, candidates, seen, num_threads)
        return self._search_known_rows(
            rows, n, candidates, seen, num_threads,
            lambda known, known_seen: self._pruned_topk(plan, known, n, candidates, known_seen, num_threads))

    def _row_bytes(self):
        plan = self._pruning_plan()
        return super()._row_bytes() if plan is None else plan.index.row_bytes()

    def _pruning_plan(self):
        """A ``_PruningPlan`` when the blend's score is an inner product plus a sparse
        bonus: linear method, zscore or no normalisation (each affine in a member's row,
        with statistics known without the row), every dense member linear in user and
        item vectors (``_linear_scoring``: MF, Popularity, Baseline), the others implicit
        kNN, and bounds that prune (``InnerProductIndex.pruning_pays``); else None.
        Cached until the weights or a member's learned arrays change."""
        if self._rating_blend or self.method != "linear" or self.normalize == "minmax":
            return None
        members = self._members()
        linear = [(j, m._linear_scoring()) for j, m in enumerate(members)
                  if not _sparse_member(m) and hasattr(m, "_linear_scoring")]
        if not linear or len(linear) != sum(not _sparse_member(m) for m in members):
            return None
        key = ((self.weights_, getattr(self, "content_weights_", None)) + tuple(k for _, (k, _, _) in linear)
               + tuple(m._sparse_factors() for m in members if _sparse_member(m)))
        cached = getattr(self, "_pruning_cache", None)
        if cached is None or len(cached[0]) != len(key) or any(a is not b for a, b in zip(cached[0], key)):
            cached = (key, self._build_pruning_plan(linear))
            self._pruning_cache = cached
        return cached[1]

    def _build_pruning_plan(self, linear):
        from fastrec.mips import score_moments

        blocks = [np.asarray(items_of()) for _, (_, _, items_of) in linear]
        dtype = np.float32 if any(b.dtype == np.float32 for b in blocks) else np.float64
        items = np.hstack([b.astype(np.float64) for b in blocks])
        if self._has_content_items():
            # a content-scored item's blended score is the weighted mean (weights sum to 1)
            # of its neighbours': so are its vector and, per user, its bonus
            items[self.content_items_] = self.content_weights_.T @ items
        terms = [(*m._sparse_factors(), w, self.normalize)
                 for w, m in zip(self.weights_, self._members(), strict=True) if _sparse_member(m)]
        means = (self.content_items_, self.content_weights_) if self._has_content_items() else None
        scales, offset = self._user_scaling(linear, [score_moments(b) for b in blocks])
        plan = _PruningPlan([j for j, _ in linear], scales, offset, None,
                            ProductBonus(len(items), terms, means=means))
        # the items a typical user scores best go first (as MF's own search does): the mean
        # of evenly spaced users' search vectors
        n_users = self.interactions_.n_users
        typical = np.linspace(0, n_users - 1, min(n_users, PRIOR_USERS)).astype(np.int64)
        prior = self._plan_users(plan, typical, np.float64)[0].mean(axis=0) if n_users else None
        plan.index = InnerProductIndex(items.astype(dtype), prior=prior)
        probe = plan.index.probe_rows(n_users)
        return plan if plan.index.pruning_pays(self._plan_users(plan, probe)[0]) else None

    def _user_scaling(self, linear, moments):
        """Every user's factor on each linear member's vector in the search (its weight,
        over its score row's standard deviation under zscore) and the offset that maps the
        search's scores back to the blend's: ``(scales (members, users), offset (users,))``,
        once per plan rather than per block of every search."""
        from fastrec.mips import row_moments

        n_users = self.interactions_.n_users
        scales = np.empty((len(linear), n_users))
        offset = np.zeros(n_users)
        for slot, ((j, (_, users_of, _)), member_moments) in enumerate(zip(linear, moments, strict=True)):
            scales[slot] = float(self.weights_[j])
            if self.normalize != "zscore":
                continue
            for start in range(0, n_users, SCALING_BLOCK):
                rows = np.arange(start, min(start + SCALING_BLOCK, n_users))
                mean, spread = row_moments(np.asarray(users_of(rows), dtype=np.float64), member_moments)
                scales[slot, rows] /= np.where(spread > 0, spread, 1.0)
                offset[rows] -= scales[slot, rows] * mean
        return scales, offset

    def _plan_users(self, plan, rows, dtype=None):
        """The search's user vectors (each linear member's, times its ``_user_scaling``
        factor; in ``dtype``, default the search's) and the offset that maps the search's
        scores to the blend's."""
        members = self._members()
        parts = [np.asarray(members[j]._linear_scoring()[1](rows), dtype=np.float64) * plan.scales[slot, rows, None]
                 for slot, j in enumerate(plan.linear)]
        joined = parts[0] if len(parts) == 1 else np.hstack(parts)
        return joined.astype(dtype or plan.index.dtype), plan.offset[rows]

    def _pruned_topk(self, plan, rows, n, candidates, seen, num_threads):
        """Every dense member is an inner product, so the blended score is one inner product
        (the members' vectors side by side, scaled per user) plus the kNN members'
        normalised, weighted products as a bonus the search builds per user, plus a
        per-user offset: the pruned search ranks that without the dense rows."""
        users, offset = self._plan_users(plan, rows)
        ids, scores, _ = plan.index.topk(users, n, dense_mask=candidates, seen=seen, bonus=plan.bonus,
                                         bonus_rows=rows, offset=offset, num_threads=num_threads)
        return ids, scores

    def _fused_scores(self, u, members, sparse):
        """The linear blend of one dense member (a BLAS block) and sparse ones (implicit
        kNN): one compiled pass for the dense row's statistics, then one per sparse member
        that scatters its product row, normalises it and adds it while scaling the block;
        equals ``_combine`` up to the block's float32 rounding."""
        from fastrec._kernels.blend import add_normalized_product
        from fastrec._threads import effective_num_threads

        threads = effective_num_threads(self.num_threads)
        code = NORMALIZATIONS.index(self.normalize)
        (first,) = [j for j, is_sparse in enumerate(sparse) if not is_sparse]
        out = np.asarray(_dense_scores(members[first], u))
        if not (out.flags.owndata and out.flags.writeable and out.flags.c_contiguous and out.dtype.kind == "f"):
            out = np.array(out, dtype=np.float64, order="C")  # never write into a member's own array
        scale, shift = _scale_and_shift(out, self.normalize)
        block_scale = self.weights_[first] * scale
        block_offset = -block_scale * shift
        for w, m, is_sparse in zip(self.weights_, members, sparse, strict=True):
            if is_sparse:  # the first pass also applies the dense member's scale
                left, right = m._sparse_factors()
                add_normalized_product(out, block_scale, block_offset, left.data, left.indices, left.indptr,
                                       right.data, right.indices, right.indptr,
                                       np.ascontiguousarray(u, dtype=np.int64),
                                       np.ascontiguousarray(m._popularity, dtype=np.float64), float(w),
                                       code, threads)
                block_scale, block_offset = np.ones(u.size), np.zeros(u.size)
        return self._score_content_items(out)

    def _user_support(self, u):
        """The stacking feature of users ``u``: log(1 + interactions) / 5 (0 for -1)."""
        counts = self.interactions_.user_counts
        return np.where(u >= 0, np.log1p(counts[np.maximum(u, 0)]), 0.0) / 5

    def _item_support(self, i=None):
        """As ``_user_support`` for items ``i`` (None: every item)."""
        counts = self.interactions_.item_counts
        return np.log1p(counts if i is None else np.where(i >= 0, counts[np.maximum(i, 0)], 0)) / 5

    def _score_content_items(self, out):
        """Items without interactions take their content neighbours' blended scores."""
        if self._has_content_items():
            out[:, self.content_items_] = (self.content_weights_.T @ out.T).T
        return out

    def _combine(self, member_scores, user_support):
        """The blended scores from each member's dense scores (rows: users), with the items
        that have no interactions scored through their content neighbours."""
        if self._rating_blend:
            fi = self._item_support()
            a, b = self.support_weights_
            out = np.empty(member_scores[0].shape)
            out[...] = self.intercept_ + a[-1] * user_support[:, None] + b[-1] * fi[None, :]
            for m, scores in enumerate(member_scores):
                out += scores * (self.weights_[m] + a[m] * user_support[:, None] + b[m] * fi[None, :])
        elif self.method == "linear":
            # sum_m w_m (s_m - shift_m) * scale_m, with one product pass per member
            out, offset = None, 0.0
            for w, scores in zip(self.weights_, member_scores, strict=True):
                scale, shift = _scale_and_shift(scores, self.normalize)
                part = np.multiply(scores, (w * scale)[:, None], dtype=np.float64)
                out = part if out is None else np.add(out, part, out=out)
                offset = offset + w * scale * shift
            out -= np.asarray(offset)[:, None]
        else:
            out = sum(w * self._on_scale(s) for w, s in zip(self.weights_, member_scores, strict=True))
        return self._score_content_items(out)

    def _history_scores(self, codes, values):
        """A user unseen in training: each member's fold-in scores (members that cannot
        fold in give what they give an unknown user), blended.  History items without
        interactions stand in as their content neighbours (``_through_content``)."""
        support = np.array([np.log1p(codes.size) / 5])  # the history's own size, as a user's
        codes, values = self._through_content(codes, values)
        parts = []
        for m in self._members():
            try:
                scores = m._history_scores(codes, values)
            except NotImplementedError:
                scores = _dense_scores(m, np.array([-1]))[0]
            parts.append(np.asarray(scores, dtype=np.float64)[None, :])
        return self._combine(parts, support)[0]

    def _history_fallback(self):
        return self.intercept_

    def _through_content(self, codes, values):
        """A history whose items without interactions (the content-scored ones) are
        replaced by their content neighbours, which members can fold in: implicit data
        adds each neighbour its similarity weight (the weights sum to 1) times the item's
        value; ratings give a neighbour the weighted mean rating of the items pointing at
        it, unless the user rated it directly.  Sorted codes, as ``_history_codes``."""
        stand_in = self._content_items(codes)
        if not stand_in.any():
            return codes, values
        pointing = sp.csc_array(self.content_weights_)[:, np.searchsorted(self.content_items_, codes[stand_in])]
        spread = pointing @ values[stand_in]  # per neighbour: sum of weight x value
        weights = np.asarray(pointing.sum(axis=1)).ravel()
        reached = np.flatnonzero(weights > 0)
        direct = np.zeros(self.interactions_.n_items)
        direct[codes[~stand_in]] = values[~stand_in]
        if self.interactions_.is_implicit:
            merged = direct
            merged[reached] += spread[reached]
        else:
            merged = np.zeros_like(direct)
            merged[reached] = spread[reached] / weights[reached]
            merged[codes[~stand_in]] = values[~stand_in]
        keep = np.union1d(codes[~stand_in], reached)
        return keep.astype(np.int64), merged[keep]

    def _history_report(self, codes):
        cold = int(self._content_items(codes).sum())
        if not cold:
            return super()._history_report(codes)
        return (f"the history; {cold} of its {codes.size} items had no interactions and stood in as "
                "their content neighbours (item_features)")

    def fold_in(self, items, ratings=None):
        """Each member's fold-in of a user unseen in training, by member name (members
        without one are left out); ``recommend_history`` blends their scores."""
        return {name: model.fold_in(items, ratings) for name, model in zip(self._names(), self._members(),
                                                                           strict=True)
                if hasattr(model, "fold_in")}

    # ----------------------------------------------------------- cold items
    def _has_content_items(self):
        """Whether some items are scored through their content neighbours."""
        return getattr(self, "content_items_", None) is not None and self.content_items_.size > 0

    def _content_items(self, i):
        """Which of the item indices ``i`` are scored through content neighbours."""
        items = getattr(self, "content_items_", None)
        if items is None or not items.size:
            return np.zeros(np.shape(i), dtype=bool)
        return np.isin(i, items)

    def _known_items(self, raw):
        """Items with interactions, and items without any that content neighbours score."""
        i, known = super()._known_items(raw)
        items = getattr(self, "content_items_", None)
        if items is not None and items.size:
            codes = self.interactions_.item_index(raw, unknown="ignore")
            reachable = np.isin(codes, items)
            i = np.where(reachable, codes, i)
        return i, known

    def _fit_content(self, data):
        """Items without interactions get the blended scores of their ``CONTENT_K`` most
        similar items with interactions (cosine of ``item_features``), similarity-weighted."""
        self.content_items_ = np.zeros(0, dtype=np.int64)
        self.content_weights_ = sp.csr_array((data.n_items, 0))
        cold = np.flatnonzero(data.item_counts == 0)
        if data.item_features is None or not cold.size:
            return
        neighbours, similarities = _content_neighbours(data.item_features, cold, data.item_counts > 0, CONTENT_K)
        sizes = np.array([len(n) for n in neighbours])
        reached = sizes > 0
        weights = sp.csc_array((np.concatenate([s / s.sum() for s in similarities if s.size] or [np.zeros(0)]),
                                np.concatenate([n for n in neighbours if n.size] or [np.zeros(0, np.int64)]),
                                np.r_[0, np.cumsum(sizes[reached])]), shape=(data.n_items, int(reached.sum())))
        self.content_items_ = cold[reached]
        self.content_weights_ = sp.csr_array(weights)

    def explain(self, user, item, n=5):
        """Each member's part of the blended score: ``Explanation.neighbors`` are the
        member names, ``similarity`` their weights for this pair (feature-weighted
        stacking makes them depend on the user's and item's support), ``rating`` their
        own scores and ``contribution`` weight x score; ``base`` is the intercept."""
        self._check_fitted()
        u, _ = self._known_users(np.atleast_1d(np.asarray(user)))
        i, _ = self._known_items(np.atleast_1d(np.asarray(item)))
        weights, base = self.weights_.copy(), self.intercept_
        if self._rating_blend:
            parts = np.array([m._predict_indices(u, i)[0] for m in self._members()])
            fu, fi = self._user_support(u), self._item_support(i)
            a, b = self.support_weights_
            weights += a[:-1] * fu[0] + b[:-1] * fi[0]
            base += a[-1] * fu[0] + b[-1] * fi[0]
        else:
            parts = np.array([self._member_scores(m, u)[0, max(i[0], 0)] for m in self._members()])
        contribution = weights * parts
        estimate = float(base + contribution.sum())
        order = np.argsort(-np.abs(contribution), kind="stable")[:n]
        names = np.array(self._names(), dtype=object)
        return Explanation(user, item, estimate, float(base), names[order], weights[order],
                           parts[order], contribution[order])

    def _state(self):
        """The blend's own state, and each member's under ``member<j>/``."""
        state = super()._state()
        for j, member in enumerate(self._members()):
            state.update({f"member{j}/{key}": value for key, value in member._state().items()})
        return state

    def _restore(self, arrays):
        from fastrec.models.base import _from_state

        super()._restore(arrays)
        members = []
        for j, name in enumerate(self.member_names_.tolist()):
            prefix = f"member{j}/"
            state = {key[len(prefix):]: value for key, value in arrays.items() if key.startswith(prefix)}
            members.append((name, _from_state(state)))
        self.models = members if bool(self.named_members_) else [m for _, m in members]


def _content_neighbours(features, rows, allowed, k, block=256):
    """For each item of ``rows``: its ``k`` most similar items where ``allowed``, by cosine
    of the ``features`` rows (in double; positive only, ties to the lower id), as lists of
    (item ids, similarities).  ``block`` rows at a time: never rows x items at once."""
    features = sp.csr_array(features, dtype=np.float64)
    norms = np.sqrt(np.asarray(features.multiply(features).sum(axis=1)).ravel())
    unit = sp.csr_array(sp.diags_array(np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)) @ features)
    columns = np.flatnonzero(allowed)
    against = sp.csr_array(unit[columns].T)
    neighbours, similarities = [], []
    for start in range(0, len(rows), block):
        scores = sp.csr_array(unit[rows[start:start + block]] @ against)
        for r in range(scores.shape[0]):
            values = scores.data[scores.indptr[r]:scores.indptr[r + 1]]
            ids = columns[scores.indices[scores.indptr[r]:scores.indptr[r + 1]]]
            keep = np.lexsort((ids, -values))[:k]
            keep = keep[values[keep] > 0]
            neighbours.append(ids[keep].astype(np.int64))
            similarities.append(values[keep])
    return neighbours, similarities


def _dense_scores(model, u):
    """A member's dense scores of every item for user indices ``u`` (unknown: -1)."""
    if _sparse_member(model):
        # implicit kNN recommends through a sparse product; here its rows are made dense
        from fastrec._kernels.knn import product_dense
        from fastrec._threads import effective_num_threads

        left, right = model._sparse_factors()
        out = np.zeros((u.size, right.shape[1]))
        product_dense(left.data, left.indices, left.indptr, right.data, right.indices, right.indptr,
                      np.ascontiguousarray(u, dtype=np.int64), out,
                      effective_num_threads(model.num_threads))
        out[u < 0] = model._popularity
        return out
    return np.asarray(model._score_users(u))


@dataclasses.dataclass
class _PruningPlan:
    """What the blend's pruned search needs: the linear members' positions, every user's
    scaling of their vectors and offset (``Blend._user_scaling``), the search over their
    item vectors side by side, and the kNN members' products as its bonus (picklable:
    the member's user-vector function is asked for at each use)."""

    linear: list
    scales: np.ndarray
    offset: np.ndarray
    index: InnerProductIndex
    bonus: ProductBonus


def _sparse_member(model):
    """Implicit kNN: scores are a sparse product, X[u] @ S."""
    return bool(getattr(model, "_implicit", False)) and hasattr(model, "_sparse_factors")


def _scale_and_shift(scores, how):
    """Per row, (scale, shift) with normalised = (scores - shift) * scale: zscore (mean,
    1 / std), minmax (min, 1 / range) or None; a constant row gets scale 1 (one
    compiled pass, ``_kernels.blend.row_stats``)."""
    from fastrec._kernels.blend import row_stats
    from fastrec._threads import effective_num_threads

    scores = np.ascontiguousarray(scores, dtype=scores.dtype if scores.dtype in (np.float32, np.float64)
                                  else np.float64)
    scale, shift = np.empty(scores.shape[0]), np.empty(scores.shape[0])
    row_stats(scores, NORMALIZATIONS.index(how), scale, shift, effective_num_threads(None))
    return scale, shift


def _top(scores, k, train, users):
    """Top-k item indices of each row with the user's training items excluded."""
    from fastrec.models.base import _rows_pattern
    from fastrec.topk import run_topk

    indptr, indices = _rows_pattern(train.csr, users)
    ids, _ = run_topk(np.ascontiguousarray(scores), k, None, indptr, indices, 1)
    return ids


def _grid_search(objective, n):
    """Weights on the simplex maximising ``objective``: coordinate moves of 1/WEIGHT_STEPS
    from equal weights, until no move helps (deterministic)."""
    weights = np.full(n, 1.0 / n)
    best = objective(weights)
    step = 1.0 / WEIGHT_STEPS
    improved = True
    while improved:
        improved = False
        for j in range(n):
            for other in range(n):
                if j == other or weights[other] < step - 1e-12:
                    continue
                trial = weights.copy()
                trial[j] += step
                trial[other] -= step
                value = objective(trial)
                if value > best + 1e-12:
                    weights, best, improved = trial, value, True
    return weights


def _union(a, b):
    """The entries of two Interactions with the same ids and no common entry."""
    users = np.concatenate([a.entry_users, b.entry_users])
    items = np.concatenate([a.csr.indices, b.csr.indices])
    values = np.concatenate([a.csr.data, b.csr.data])
    order = np.lexsort((items, users))
    if np.any((users[order][1:] == users[order][:-1]) & (items[order][1:] == items[order][:-1])):
        raise ValueError("validation repeats (user, item) pairs of the training data")
    indptr = np.zeros(a.n_users + 1, dtype=a.csr.indptr.dtype)
    np.cumsum(np.bincount(users, minlength=a.n_users), out=indptr[1:])
    csr = sp.csr_array((values[order], items[order].astype(a.csr.indices.dtype), indptr), shape=a.shape)
    stamps = None
    if a.timestamps is not None and b.timestamps is not None:
        stamps = np.concatenate([a.timestamps, b.timestamps])[order]
    return a._replace(csr=csr, timestamps=stamps)
