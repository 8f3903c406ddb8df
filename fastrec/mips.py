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
"""
import numpy as np

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
        wide = np.asarray(users, dtype=np.float64)
        rotated = wide @ self.rotation
        head = self.head_dims
        side = np.empty((wide.shape[0], head + 1))
        side[:, :head] = rotated[:, :head]
        side[:, head] = np.sqrt(np.einsum("ij,ij->i", rotated[:, head:], rotated[:, head:]))
        bounds = np.matmul(side.astype(self.dtype), self.item_bounds,
                           out=scratch("mips.bounds", (wide.shape[0], self.n_items), self.dtype))
        norms = np.sqrt(np.einsum("ij,ij->i", wide, wide))
        # every term of the (head + 1)-product and the roundings of both sides, a few ulps
        # each of |u| max|v|, which bounds the sum of the terms' magnitudes
        slack = SLACK_ULPS * (head + 4) * np.finfo(self.dtype).eps * norms * self.largest_norm
        return bounds, slack

    def topk(self, users, k, *, dense_mask=None, seen=None, bonus=None, num_threads=1):
        """The ``k`` best items of each user row: ``(ids, scores, n_exact)``.

        ``users`` (rows, dims) in the items' dtype; ``dense_mask`` None or uint8 (1 | rows,
        n_items), non-zero excluded; ``seen`` None or a CSR ``(indptr, indices)`` of excluded
        items per row with sorted indices; ``bonus`` None or a CSR ``(indptr, indices,
        values)`` added to the scores (any order, repeats summed), optionally with a fourth
        array of row lengths when rows use only the start of their room.  Ranked by score
        descending, ties to the lower id; padded with -1 / -inf.  ``n_exact`` counts the
        exact scores computed (rows x n_items without pruning).
        """
        from fastrec._kernels.mips import pruned_topk

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
        ids = np.full((rows, k), -1, dtype=np.int64)
        scores = np.full((rows, k), -np.inf, dtype=self.dtype)
        if rows == 0 or k == 0 or n == 0:
            return ids, scores, 0
        with limit_blas_threads(num_threads):
            bounds, slack = self.bounds(users)
        warm, is_warm = self._warm_items(min(n, max(2 * k, MIN_WARM)))
        if dense_mask is None:
            dense_mask = self._warm_items(0)[1][None, :]  # nothing marked: no item excluded
        seen_indptr, seen_indices = _pattern(seen, rows, n, "seen")
        if bonus is None:
            bonus_indptr, bonus_indices = _pattern(None, rows, n, "bonus")
            bonus_values, bonus_lengths = np.zeros(1), np.zeros(rows, dtype=np.int64)
        else:
            bonus_indptr, bonus_indices, bonus_values, bonus_lengths = _bonus(bonus, rows, n)
        n_exact = pruned_topk(bounds, users, self.items, slack, warm, is_warm,
                              np.ascontiguousarray(dense_mask, dtype=np.uint8), seen_indptr, seen_indices,
                              bonus_indptr, bonus_lengths, bonus_indices, bonus_values, ids, scores,
                              int(num_threads))
        return ids, scores, int(n_exact)


def _pattern(pattern, rows, n, name, lengths=None):
    """A CSR ``(indptr, indices)`` over ``rows`` rows and ``n`` columns as int64 arrays,
    checked (the kernel indexes memory with them); None: every row empty.  With
    ``lengths``, row r uses only the first ``lengths[r]`` entries of its room."""
    if pattern is None:
        return np.zeros(rows + 1, dtype=np.int64), np.zeros(1, dtype=np.int64)
    indptr, indices = (np.ascontiguousarray(a, dtype=np.int64) for a in pattern)
    if (indptr.shape != (rows + 1,) or indptr[0] != 0 or np.any(np.diff(indptr) < 0)
            or indptr[-1] > indices.size):
        raise ValueError(f"{name}: indptr must be {rows + 1} non-decreasing offsets from 0 into the indices")
    used = indices[:indptr[-1]] if lengths is None else indices[row_slots(indptr[:-1], lengths)]
    if used.size and (used.min() < 0 or used.max() >= n):
        raise ValueError(f"{name}: indices must be item positions in [0, {n})")
    return indptr, _padded(indices)


def row_slots(starts, lengths):
    """Positions ``starts[r], ..., starts[r] + lengths[r] - 1`` of every row, concatenated
    (the used entries of CSR rows that fill only the start of their room)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    before = np.cumsum(lengths) - lengths
    return np.repeat(np.asarray(starts, dtype=np.int64) - before, lengths) + np.arange(int(lengths.sum()))


def _bonus(bonus, rows, n):
    """``InnerProductIndex.topk``'s bonus as checked kernel arrays: (indptr, indices,
    values, lengths)."""
    indptr = np.ascontiguousarray(bonus[0], dtype=np.int64)
    lengths = (np.diff(indptr) if len(bonus) < 4 else np.ascontiguousarray(bonus[3], dtype=np.int64))
    if lengths.shape != (rows,) or indptr.shape != (rows + 1,) or np.any(lengths < 0) or np.any(
            lengths > np.diff(indptr)):
        raise ValueError("bonus lengths must be one per row, within each row's room")
    indptr, indices = _pattern(bonus[:2], rows, n, "bonus", lengths)
    values = np.ascontiguousarray(bonus[2], dtype=np.float64)
    if values.shape[0] < indptr[-1]:
        raise ValueError("bonus values must be one per index")
    return indptr, indices, _padded(values), lengths


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
