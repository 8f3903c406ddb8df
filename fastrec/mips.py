"""Exact maximum-inner-product top-k: the top-n items of ``users @ items.T`` without
computing most of the product.

The item vectors are rotated onto the principal axes of their second moment (factor
models put most of their energy on a few axes: popularity and the main tastes).  A
score is then bounded by the exact product on the first ``head`` axes plus the product
of the remaining norms (Cauchy-Schwarz):

    u . v  <=  u_head . v_head + |u_tail| |v_tail|

so one BLAS product of width head + 1 bounds every score, and the compiled kernel
(``fastrec._kernels.mips``) computes an exact score only where the bound reaches the
user's current k-th best.  The answer is exact whatever the bounds' tightness: loose
bounds only cost time.  Twin: ``fastrec.reference.mips``.

Catalogues of GROUPED_MIN_ITEMS to GROUPED_MAX_ITEMS items add a level: the items are
clustered (Lloyd) into groups of about GROUP_SIZE by their bound vectors, and a group's
box bounds every bound in it, ``s+ . max + s- . min``.  The search then takes the best
groups first and bounds items only inside groups whose box reaches the k-th best: a
product of width 2 (head + 1) over the groups instead of head + 1 over the items.  With a
bonus (a blend's kNN members) the bonus columns are left out of the groups and bounded on
their own, by their group's bound plus their bonus, then their item bound plus their
bonus; the best of them are scored first, as they usually lead.
"""
import numpy as np
import scipy.sparse as sp

from fastrec._scratch import scratch
from fastrec._threads import limit_blas_threads

HEAD_DIMS = 16  # rotated axes kept exactly in the bound (the rest enter through norms)
MIN_HEAD_DIMS = 4  # below this the bound is not narrower enough to pay: vectors kept whole
SLACK_ULPS = 4  # the bound's rounding allowance, per term of its product
MIN_WARM = 16  # items scored first to raise the threshold: max(2k, MIN_WARM)
# an exact score costs about 40x a dense BLAS score (60 ns against 1.6): past about 1.6%
# of the scores computed exactly the whole product is faster (measured, 64 factors, 20k
# items); an untrained or isotropic model has no dominant axes and stays near 100%
MAX_EXACT_SHARE = 0.012
PROBE_SCORES = 2_000_000  # the pruning probe's budget of (user, item) pairs
NORMALIZATIONS = ("zscore", "minmax", None)  # the kernels' codes, in this order
GROUP_SIZE = 16  # items per group of the two-level search, on average
GROUPED_MIN_ITEMS = 4096  # fewer items: one level (the groups would not pay)
GROUPED_MAX_ITEMS = 65536  # more: one level (grouping costs O(n^2 / GROUP_SIZE) to build)
GROUP_ITERATIONS = 8  # Lloyd iterations grouping the items' bound vectors
GROUPED = True  # False: the one-level search even where there are groups (for comparisons)


def head_dims_for(dims):
    """The bound's exact width for vectors of ``dims``: at most a third of the product's;
    narrow vectors are kept whole (the bound is then the score itself)."""
    head = min(HEAD_DIMS, dims // 3 - 1)
    return head if head >= MIN_HEAD_DIMS else dims


class InnerProductIndex:
    """Exact top-k over ``users @ items.T`` (+ a sparse bonus), pruned by rotated bounds.

    Parameters
    ----------
    items : (n_items, dims) float32 or float64 array, finite
    prior : (dims,) array, optional
        A typical user vector (e.g. the mean user); the items it scores best are scored
        exactly first.  Default: the first principal axis, signed towards the items.
    head_dims : int, optional
        Rotated axes kept exactly in the bound (default ``head_dims_for(dims)``).

    ``groups`` holds the two-level search's groups (see the module, built at first use),
    or None.
    """

    def __init__(self, items, *, prior=None, head_dims=None):
        items = np.asarray(items)
        if items.ndim != 2 or items.dtype not in (np.float32, np.float64):
            raise ValueError("items must be a 2-d float32 or float64 array")
        if not np.all(np.isfinite(items)):
            raise ValueError("items contain NaN or infinite values")
        self.items = np.ascontiguousarray(items)
        self.dtype = self.items.dtype
        n, dims = self.items.shape
        head = head_dims_for(dims) if head_dims is None else int(head_dims)
        if not 0 <= head <= dims:
            raise ValueError(f"head_dims must be in [0, {dims}], got {head}")
        self.head_dims = head
        wide = self.items.astype(np.float64)
        _, axes = np.linalg.eigh(wide.T @ wide)
        self.rotation = np.ascontiguousarray(axes[:, ::-1])  # strongest axis first
        rotated = wide @ self.rotation
        tail = np.sqrt(np.einsum("ij,ij->i", rotated[:, head:], rotated[:, head:]))
        # the bound's item side, (head + 1, n): rotated head coordinates, then tail norms
        self.item_bounds = np.ascontiguousarray(np.vstack([rotated[:, :head].T, tail[None, :]]),
                                                dtype=self.dtype)
        self.largest_norm = float(np.sqrt(np.einsum("ij,ij->i", wide, wide)).max()) if n else 0.0
        if prior is None:
            prior = self.rotation[:, 0] * (np.sign(rotated[:, 0].sum()) or 1.0) if dims else np.zeros(0)
        prior = np.asarray(prior, dtype=np.float64)
        if prior.shape != (dims,):
            raise ValueError(f"prior must have shape ({dims},), got {prior.shape}")
        self.prior = prior
        self.prior_order = np.argsort(-(wide @ prior), kind="stable").astype(np.int64)
        self._groupable = GROUPED_MIN_ITEMS <= n <= GROUPED_MAX_ITEMS and head > 0
        self._groups_cache = None

    @property
    def groups(self):
        """The two-level search's groups, built at first use, or None where the catalogue is
        outside the grouped sizes."""
        if self._groups_cache is None and self._groupable:
            self._groups_cache = self._groups()
        return self._groups_cache

    def _groups(self):
        """The two-level search's groups: items clustered by their bound vectors (a few
        Lloyd iterations from a fixed sample), each group's box of them, the items in group
        order.  Returns ``(indptr, items, item_side, box (2 * width, groups), corner, position,
        group_of, root_box)`` (``position``: each item's place in group order; ``group_of``
        its group; ``root_box`` (2 * width,) float64, the box of every item)."""
        vectors = self.item_bounds.T.astype(np.float64)
        n, width = vectors.shape
        count = max(1, n // GROUP_SIZE)
        centres = vectors[np.random.default_rng(0).choice(n, count, replace=False)]
        lifted = np.hstack([vectors, np.ones((n, 1))])  # |x - c|^2 - |x|^2 = [x, 1] . [-2c, |c|^2]
        for _ in range(GROUP_ITERATIONS):
            label = np.empty(n, dtype=np.int64)
            towards = np.hstack([-2 * centres, np.einsum("ij,ij->i", centres, centres)[:, None]]).T
            for start in range(0, n, 4096):  # (block x groups) distances at a time
                label[start:start + 4096] = (lifted[start:start + 4096] @ towards).argmin(axis=1)
            sizes = np.bincount(label, minlength=count)
            sums = sp.csr_array((np.ones(n), (label, np.arange(n))), shape=(count, n)) @ vectors
            centres = np.where(sizes[:, None] > 0, sums / np.maximum(sizes, 1)[:, None], centres)
        order = np.argsort(label, kind="stable")
        ordered = label[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        indptr = np.r_[starts, n].astype(np.int64)
        side = np.ascontiguousarray(vectors[order])
        high = np.maximum.reduceat(side, starts, axis=0)
        low = np.minimum.reduceat(side, starts, axis=0)
        box = np.ascontiguousarray(np.vstack([high.T, low.T]), dtype=self.dtype)
        corner = float(np.sqrt((np.maximum(np.abs(high), np.abs(low)) ** 2).sum(axis=1)).max())
        position = np.empty(n, dtype=np.int64)
        position[order] = np.arange(n)
        group_of = np.repeat(np.arange(indptr.size - 1, dtype=np.int32), np.diff(indptr))[position]
        root_box = np.concatenate([box[:width].max(axis=1), box[width:].min(axis=1)]).astype(np.float64)
        return indptr, order.astype(np.int64), side.astype(self.dtype), box, corner, position, group_of, root_box

    def _group_bounds(self, users, lazy=False):
        """``(bounds, slack, groups)`` for the two-level kernel: each group's bound for each
        user row (rows, groups; no columns if ``lazy``: the kernel computes a row's where
        it needs them), the items' bounds' rounding allowance per row, and the kernel's
        ``groups`` tuple (with the group bounds' allowance, the rows' bound vectors, the
        boxes and each row's bound of the box of every item)."""
        indptr, order, item_side, box, corner, position, group_of, root_box = self.groups
        side, norms = self._bound_side(users)
        plus, minus = np.maximum(side, 0), np.minimum(side, 0)
        width = side.shape[1]
        root = plus @ root_box[:width] + minus @ root_box[width:]
        if lazy:
            bounds = np.empty((side.shape[0], 0), dtype=self.dtype)
        else:
            bounds = np.hstack([plus, minus]).astype(self.dtype) @ box
        # the box product's terms, 2 (head + 1) of them, each within |u| times the largest corner
        box_slack = SLACK_ULPS * (2 * self.head_dims + 6) * np.finfo(self.dtype).eps * norms * corner
        groups = (box_slack, side.astype(self.dtype), item_side, indptr, order, position, group_of, box, root)
        return bounds, self._slack(norms), groups

    def row_bytes(self):
        """The bytes of bounds ``topk`` holds per user row (group bounds where the search
        has two levels, else a bound per item), to size blocks of users by."""
        return self.dtype.itemsize * max(self.groups[0].size - 1 if self._two_levels() else self.n_items, 1)

    def _two_levels(self):
        """Whether searches take the groups first (see the module)."""
        return GROUPED and self.groups is not None

    def probe_rows(self, n_users):
        """Which of ``n_users`` users ``pruning_pays`` should look at: evenly spaced, at
        most 256 and within ``PROBE_SCORES`` pairs."""
        rows = max(1, min(n_users, 256, PROBE_SCORES // max(self.n_items, 1)))
        return np.linspace(0, n_users - 1, rows).astype(np.int64) if n_users else np.zeros(0, dtype=np.int64)

    def pruning_pays(self, users, k=10):
        """Whether the bounds prune enough, on these users, for the search to beat the
        whole product (at most ``MAX_EXACT_SHARE`` of the scores computed exactly)."""
        _, _, n_exact = self.topk(users, k)
        return n_exact <= MAX_EXACT_SHARE * max(len(users), 1) * self.n_items

    def _warm_items(self, count):
        """The ``count`` items scored first and their (n_items,) uint8 marks, cached per
        count (read-only: the kernel only reads them)."""
        cache = self.__dict__.setdefault("_warm_cache", {})
        if count not in cache:
            marks = np.zeros(self.n_items, dtype=np.uint8)
            marks[self.prior_order[:count]] = 1
            marks.flags.writeable = False
            cache[count] = (self.prior_order[:count], marks)
        return cache[count]

    @property
    def n_items(self):
        return self.items.shape[0]

    def bounds(self, users):
        """``(bounds, slack)``: upper bounds of ``users @ items.T`` (rows, n_items) in the
        items' dtype, and per row the allowance for their rounding.  The bounds live in
        this thread's scratch: valid until its next call."""
        side, norms = self._bound_side(users)
        bounds = np.matmul(side.astype(self.dtype), self.item_bounds,
                           out=scratch("mips.bounds", (side.shape[0], self.n_items), self.dtype))
        return bounds, self._slack(norms)

    def _bound_side(self, users):
        """The user side of the bounds, (rows, head + 1) in double: rotated head coordinates,
        then the tail norm; and the users' norms."""
        wide = np.asarray(users, dtype=np.float64)
        rotated = wide @ self.rotation
        head = self.head_dims
        side = np.empty((wide.shape[0], head + 1))
        side[:, :head] = rotated[:, :head]
        side[:, head] = np.sqrt(np.einsum("ij,ij->i", rotated[:, head:], rotated[:, head:]))
        return side, np.sqrt(np.einsum("ij,ij->i", wide, wide))

    def _slack(self, norms):
        """Every term of the (head + 1)-product and the roundings of both sides, a few ulps
        each of |u| max|v|, which bounds the sum of the terms' magnitudes."""
        return SLACK_ULPS * (self.head_dims + 4) * np.finfo(self.dtype).eps * norms * self.largest_norm

    def topk(self, users, k, *, dense_mask=None, seen=None, bonus=None, bonus_rows=None, offset=None,
             num_threads=1):
        """The ``k`` best items of each user row: ``(ids, scores, n_exact)``.

        ``users`` (rows, dims) in the items' dtype; ``dense_mask`` None or uint8 (1 | rows,
        n_items), non-zero excluded; ``seen`` None or a CSR ``(indptr, indices)`` of excluded
        items per row with sorted indices; ``bonus`` added to the scores: None, a CSR
        ``(indptr, indices, values)`` (any order, repeats summed), or a ``ProductBonus``
        whose product row for each user row is ``bonus_rows`` (default: the row's number);
        ``offset`` None or a constant per row, added to the returned scores (it cannot change
        the ranking).  Ranked by score descending, ties to the lower id; padded with -1 / -inf.
        ``n_exact`` counts the exact scores computed (rows x n_items without pruning).
        """
        from fastrec._kernels.mips import FIRST_BONUS_COLUMNS, pruned_topk, workspace_bytes

        users = np.ascontiguousarray(users, dtype=self.dtype)
        if users.ndim != 2 or users.shape[1] != self.items.shape[1]:
            raise ValueError(f"users must have shape (rows, {self.items.shape[1]}), got {users.shape}")
        if not np.all(np.isfinite(users)):
            raise ValueError("users contain NaN or infinite values")
        rows, n = users.shape[0], self.n_items
        k = int(k)
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        if dense_mask is not None and np.shape(dense_mask) not in ((1, n), (rows, n)):
            raise ValueError(f"dense_mask must have shape (1, {n}) or ({rows}, {n}), got {np.shape(dense_mask)}")
        if bonus is not None and not isinstance(bonus, ProductBonus):
            bonus, bonus_rows = ProductBonus.from_csr(bonus, rows, n), None
        if bonus is not None and bonus.n_columns != n:
            raise ValueError(f"bonus must have {n} columns, got {bonus.n_columns}")
        bonus_rows = _bonus_rows(bonus, bonus_rows, rows)
        seen_indptr, seen_indices = _pattern(seen, rows, n, "seen")
        ids = np.full((rows, k), -1, dtype=np.int64)
        scores = np.full((rows, k), -np.inf, dtype=self.dtype)
        if rows == 0 or k == 0 or n == 0:
            return ids, scores, 0
        grouped = self._two_levels()
        # a bonus (a blend's kNN) usually outweighs the scores: its best columns, taken first
        # by the two-level search (up to FIRST_BONUS_COLUMNS of them, so for k up to that),
        # raise the threshold more than the prior's warm items
        bonus_leads = grouped and bonus is not None and k <= FIRST_BONUS_COLUMNS
        warm, is_warm = self._warm_items(0 if bonus_leads else min(n, max(2 * k, MIN_WARM)))
        if dense_mask is None:
            dense_mask = self._warm_items(0)[1][None, :]  # nothing marked: no item excluded
        dense_mask = np.ascontiguousarray(dense_mask, dtype=np.uint8)
        terms, means = (bonus.terms, bonus.means) if bonus is not None else ([], ProductBonus.NO_MEANS)
        shift = np.zeros(rows)
        with limit_blas_threads(num_threads):
            if grouped:  # a leading bonus usually spares the group bounds: the kernel makes the few it needs
                bounds, slack, groups = self._group_bounds(users, lazy=bonus_leads)
            else:
                (bounds, slack), groups = self.bounds(users), None
        workspace = scratch("mips.workspace", workspace_bytes(n, int(num_threads)) // 8, np.float64)
        n_exact = pruned_topk(bounds, users, self.items, slack, warm, is_warm, dense_mask, seen_indptr,
                              seen_indices, terms, bonus_rows, *means, ids, scores, shift,
                              workspace.view(np.uint8), int(num_threads), groups)
        if offset is not None:
            shift -= np.asarray(offset, dtype=np.float64).reshape(rows)
        if terms or offset is not None:
            scores = (scores - shift[:, None]).astype(self.dtype)  # -inf padding stays
        return ids, scores, int(n_exact)


class ProductBonus:
    """A bonus to ``InnerProductIndex.topk``'s scores, built per user row in the kernel:
    ``sum_m weight_m * normalise_m(X_m[row] @ T_m)``, each product row normalised over all
    ``n_columns`` columns (``"zscore"``, ``"minmax"`` or None), then optionally items
    whose bonus is the weighted sum of other items' (``means``).

    Parameters
    ----------
    n_columns : int
        The index's number of items (every T's number of columns).
    terms : list of ``(x, t, weight, normalize)``
        Sparse matrices X (rows x m) and T (m x n_columns), any scipy format; cast to one
        value dtype (float32 or float64) and one index dtype per term.
    means : ``(items, weights)``, optional
        ``weights`` (n_columns, len(items)) sparse: item ``items[c]``'s bonus is
        ``weights[:, c] @ bonus`` (its own column of T should be empty); no mean item may
        weigh in another's.

    Every array is checked once, here (the kernel indexes memory with them).
    """

    NO_MEANS = (np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1))

    def __init__(self, n_columns, terms, *, means=None):
        self.n_columns = int(n_columns)
        self.terms = [self._term(x, t, weight, normalize) for x, t, weight, normalize in terms]
        self.n_rows = self.terms[0][2].size - 1 if self.terms else None
        if any(term[2].size - 1 != self.n_rows for term in self.terms):
            raise ValueError("bonus terms must have the same number of rows")
        self.means = self.NO_MEANS if means is None else self._means(*means)

    @classmethod
    def from_csr(cls, bonus, rows, n):
        """A CSR ``(indptr, indices, values)`` bonus (rows x n) as one product term: the
        identity times the bonus."""
        indptr, indices, values = (np.asarray(a) for a in bonus)
        indptr = indptr.astype(np.int64)
        if indptr.shape != (rows + 1,) or indptr[0] != 0 or np.any(np.diff(indptr) < 0) or (
                indptr[-1] > min(indices.size, values.size)):
            raise ValueError(f"bonus: indptr must be {rows + 1} non-decreasing offsets from 0 into the indices")
        end = indptr[-1]
        matrix = sp.csr_array((np.asarray(values[:end], dtype=np.float64), indices[:end], indptr), shape=(rows, n))
        return cls(n, [(sp.eye_array(rows, format="csr"), matrix, 1.0, None)])

    def _term(self, x, t, weight, normalize):
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
        x, t = sp.csr_array(x), sp.csr_array(t)
        if x.shape[1] != t.shape[0] or t.shape[1] != self.n_columns:
            raise ValueError(f"bonus term shapes {x.shape} @ {t.shape} do not give {self.n_columns} columns")
        dtype = np.float32 if x.dtype == t.dtype == np.float32 else np.float64
        index = np.int32 if max(x.shape[1], t.shape[1]) < 2**31 - 1 else np.int64
        arrays = []
        for matrix in (x, t):
            data = np.ascontiguousarray(matrix.data, dtype=dtype)
            indices = np.ascontiguousarray(matrix.indices, dtype=index)
            indptr = np.ascontiguousarray(matrix.indptr, dtype=np.int64)
            if not np.all(np.isfinite(data)):
                raise ValueError("bonus terms contain NaN or infinite values")
            _check_pattern(indptr, indices, matrix.shape[0], matrix.shape[1], "bonus term")
            arrays += [_padded(data), _padded(indices), indptr]
        weight = float(weight)
        if not np.isfinite(weight):
            raise ValueError(f"bonus weight must be finite, got {weight}")
        positive = products_positive(arrays[0][:x.indptr[-1]], arrays[3][:t.indptr[-1]])
        return tuple(arrays) + (NORMALIZATIONS.index(normalize), weight, positive)

    def _means(self, items, weights):
        items = np.ascontiguousarray(items, dtype=np.int64)
        weights = sp.csc_array(weights)
        if weights.shape != (self.n_columns, items.size):
            raise ValueError(f"mean weights must have shape ({self.n_columns}, {items.size}), got {weights.shape}")
        if items.size and (items.min() < 0 or items.max() >= self.n_columns or np.unique(items).size != items.size):
            raise ValueError(f"mean items must be distinct item positions in [0, {self.n_columns})")
        indptr, sources = weights.indptr.astype(np.int64), weights.indices.astype(np.int64)
        if np.isin(sources[:indptr[-1]], items).any():
            raise ValueError("a mean item cannot weigh in another mean item's bonus")
        values = np.asarray(weights.data, dtype=np.float64)
        if not np.all(np.isfinite(values)):
            raise ValueError("mean weights contain NaN or infinite values")
        return _padded(items), indptr, _padded(sources), _padded(values)


def _bonus_rows(bonus, bonus_rows, rows):
    """Each user row's product row in ``bonus`` as int64 (checked), at least one long."""
    if bonus is None or bonus_rows is None:
        if bonus is not None and bonus.n_rows is not None and bonus.n_rows < rows:
            raise ValueError(f"bonus has {bonus.n_rows} rows, fewer than the {rows} user rows")
        return np.arange(max(rows, 1), dtype=np.int64)
    bonus_rows = np.ascontiguousarray(bonus_rows, dtype=np.int64)
    if bonus_rows.shape != (rows,):
        raise ValueError(f"bonus_rows must have shape ({rows},), got {bonus_rows.shape}")
    limit = bonus.n_rows if bonus.n_rows is not None else 0
    if rows and bonus.terms and (bonus_rows.min() < 0 or bonus_rows.max() >= limit):
        raise ValueError(f"bonus_rows must be rows of the bonus terms, in [0, {limit})")
    return _padded(bonus_rows)


def _pattern(pattern, rows, n, name):
    """A CSR ``(indptr, indices)`` over ``rows`` rows and ``n`` columns as int64 arrays,
    checked; None: every row empty."""
    if pattern is None:
        return np.zeros(rows + 1, dtype=np.int64), np.zeros(1, dtype=np.int64)
    indptr, indices = (np.ascontiguousarray(a, dtype=np.int64) for a in pattern)
    _check_pattern(indptr, indices, rows, n, name)
    return indptr, _padded(indices)


def _check_pattern(indptr, indices, rows, n, name):
    """Raise unless ``indptr`` holds ``rows + 1`` non-decreasing offsets from 0 into
    ``indices`` and the indices it covers are in [0, n) (the kernel indexes memory with them)."""
    if (indptr.shape != (rows + 1,) or indptr[0] != 0 or np.any(np.diff(indptr) < 0)
            or indptr[-1] > indices.size):
        raise ValueError(f"{name}: indptr must be {rows + 1} non-decreasing offsets from 0 into the indices")
    used = indices[:indptr[-1]]
    if used.size and (used.min() < 0 or used.max() >= n):
        raise ValueError(f"{name}: indices must be positions in [0, {n})")


def products_positive(x_values, t_values):
    """Whether every product x * t of the two value arrays is > 0 in double: all positive,
    none small enough to underflow to 0.  A sparse product's touched columns then never
    sum to 0, so the product kernels can tell them by value (``product_row``'s by_value)."""
    smallest = [float(np.min(v, initial=np.inf)) for v in (x_values, t_values)]
    return min(smallest) > 0 and smallest[0] * smallest[1] >= np.finfo(np.float64).tiny


def _padded(values):
    """``values``, or one zero if it is empty (the kernel takes element 0's address)."""
    return values if values.size else np.zeros(1, dtype=values.dtype)


def score_moments(items):
    """``(mean, covariance)`` of the item vectors (population), for ``row_moments``."""
    wide = np.asarray(items, dtype=np.float64)
    mean = wide.mean(axis=0) if len(wide) else np.zeros(wide.shape[1])
    centred = wide - mean
    return mean, centred.T @ centred / max(len(wide), 1)


def row_moments(users, moments):
    """Mean and standard deviation of each user's scores ``users @ items.T`` over all
    items, in closed form from ``score_moments(items)``: O(dims^2) per user, no product."""
    mean, covariance = moments
    users = np.asarray(users, dtype=np.float64)
    variance = np.einsum("ij,ij->i", users @ covariance, users)
    return users @ mean, np.sqrt(np.maximum(variance, 0.0))
