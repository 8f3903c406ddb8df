"""Train/test splits of an :class:`~fastrec.data.Interactions`.

Every split works on the stored entries (the (user, item) interactions) and builds
both halves with :meth:`Interactions.select`, so train and test keep the full id
universe: they share the id maps and the shape (n_users x n_items), and a model
fitted on ``train`` can be scored on ``test`` without any re-indexing.

* :func:`train_test_split` -- a random fraction (or count) of the entries.
* :func:`leave_k_out` -- per user, the k latest (or k random) entries.
* :func:`temporal_split` -- a global time cut.
* :class:`KFold` -- k-fold cross-validation over the entries.

Each returns (or yields) a :class:`TrainTestSplit`, which unpacks as
``train, test = split`` and reports the *cold* users and items: those with entries
in test but none in train.  They are counted, never dropped; evaluation code
decides what to do with them.

All splits are vectorised (their cost is a few passes over the entries and at most
one sort) and deterministic for a given ``random_state`` (None, an int, a
``SeedSequence`` or a ``numpy.random.Generator``).  A scipy sparse users x items
matrix is accepted wherever an Interactions is.
"""
import itertools
import numbers

import numpy as np

from fastrec._checks import check_choice, check_positive_int, check_random_state
from fastrec.data import Interactions, as_interactions

__all__ = ["TrainTestSplit", "train_test_split", "leave_k_out", "temporal_split", "KFold",
           "cross_validate", "sample_negatives"]

LEAVE_K_OUT_ORDERS = ("time", "random")


class TrainTestSplit:
    """A train/test pair over the same id universe, with a report on cold ids.

    Unpacks as ``train, test = split``.

    Attributes
    ----------
    train, test : Interactions
        Disjoint subsets of the data's entries; same id maps and shape.
    cold_users, cold_items : ndarray
        Raw ids of the users / items that have entries in ``test`` but none in
        ``train`` (sorted).  They stay in ``test``.
    n_cold_users, n_cold_items : int
    skipped_users : ndarray or None
        :func:`leave_k_out` only: raw ids of the users kept entirely in train because
        they have too few entries.  None for the other splits.
    n_skipped_users : int or None
        ``len(skipped_users)``, or None when not applicable.
    cutoff : scalar or None
        :func:`temporal_split` only: the timestamp from which entries went to test.
    """

    __slots__ = ("train", "test", "cold_users", "cold_items", "skipped_users", "cutoff")

    def __init__(self, train, test, *, skipped_users=None, cutoff=None):
        for name, value in (("train", train), ("test", test)):
            if not isinstance(value, Interactions):
                raise TypeError(f"{name} must be a fastrec.Interactions, got {type(value).__name__}")
        if train.shape != test.shape or not train.same_ids(test):
            raise ValueError(
                "train and test must share their user and item ids "
                f"(got shapes {train.shape} and {test.shape}); build them with data.select()"
            )
        self.train = train
        self.test = test
        cold_users = (test.user_counts > 0) & (train.user_counts == 0)
        cold_items = (test.item_counts > 0) & (train.item_counts == 0)
        self.cold_users = _frozen(train.user_ids[cold_users])
        self.cold_items = _frozen(train.item_ids[cold_items])
        self.skipped_users = None if skipped_users is None else _frozen(np.asarray(skipped_users))
        self.cutoff = cutoff

    @property
    def n_cold_users(self):
        return int(self.cold_users.size)

    @property
    def n_cold_items(self):
        return int(self.cold_items.size)

    @property
    def n_skipped_users(self):
        return None if self.skipped_users is None else int(self.skipped_users.size)

    def __iter__(self):
        return iter((self.train, self.test))

    def __repr__(self):
        n_train, n_test = self.train.nnz, self.test.nnz
        share = n_test / (n_train + n_test) if n_train + n_test else 0.0
        n_users, n_items = self.train.shape
        text = (f"<TrainTestSplit: {n_train} train + {n_test} test entries ({share:.1%} test) "
                f"over {n_users} users x {n_items} items; cold: {_plural(self.n_cold_users, 'user')}, "
                f"{_plural(self.n_cold_items, 'item')}")
        if self.skipped_users is not None:
            text += f"; {_plural(self.n_skipped_users, 'user')} skipped (too few entries)"
        if self.cutoff is not None:
            text += f"; cutoff {self.cutoff}"
        return text + ">"


def train_test_split(data, test_size=0.2, *, random_state=None):
    """Split the entries uniformly at random.

    Parameters
    ----------
    data : Interactions or scipy sparse matrix
    test_size : float in (0, 1) or int in [1, nnz - 1]
        The fraction of entries in test (rounded to the nearest count, and kept
        between 1 and nnz - 1 so neither side is empty), or their exact number.
    random_state : None, int, SeedSequence or numpy.random.Generator

    Returns
    -------
    TrainTestSplit
    """
    data = as_interactions(data)
    n_test = _n_test(test_size, data.nnz)
    rng = check_random_state(random_state)
    test = np.zeros(data.nnz, dtype=bool)
    test[rng.choice(data.nnz, size=n_test, replace=False, shuffle=False)] = True
    return _split(data, test)


def leave_k_out(data, k=1, *, by="time", min_train=1, random_state=None):
    """Per user, put ``k`` entries in test and the rest in train.

    Parameters
    ----------
    data : Interactions or scipy sparse matrix
    k : int >= 1
        Test entries per user.
    by : {"time", "random"}
        ``"time"``: each user's k latest entries by timestamp (the data must have
        timestamps).  Entries tied on the timestamp are ordered at random (from
        ``random_state``), not by position: when a tie straddles the k-th latest
        place, the entries that go to test are drawn uniformly among the tied ones.
        So each user's test timestamps are >= all of their train timestamps.
        ``"random"``: k entries drawn uniformly per user.
    min_train : int >= 0
        Users with fewer than ``k + min_train`` entries (but at least one) stay
        entirely in train and are reported as skipped.  With ``min_train=0`` a user
        with exactly k entries goes wholly to test and shows up as a cold user.
    random_state : None, int, SeedSequence or numpy.random.Generator

    Returns
    -------
    TrainTestSplit
        With ``skipped_users`` / ``n_skipped_users`` set.

    Raises
    ------
    ValueError
        Bad ``k``, ``min_train`` or ``by``; ``by="time"`` on data without timestamps;
        no user having ``k + min_train`` entries (test would be empty); every entry
        going to test (possible only with ``min_train=0``).
    """
    data = as_interactions(data)
    k = check_positive_int(k, "k")
    min_train = check_positive_int(min_train, "min_train", minimum=0)
    check_choice(by, "by", LEAVE_K_OUT_ORDERS)
    if by == "time" and data.timestamps is None:
        raise ValueError(
            "leave_k_out(by='time') needs timestamps, but the data has none; "
            "build the Interactions with timestamps or pass by='random'"
        )
    rng = check_random_state(random_state)

    counts = data.user_counts
    eligible = counts >= k + min_train
    if not eligible.any():
        raise ValueError(
            f"no user has k + min_train = {k + min_train} entries or more (the most is "
            f"{int(counts.max())}); the test set would be empty"
        )
    skipped = data.user_ids[(counts > 0) & ~eligible]
    entry_users = data.entry_users.astype(np.int64, copy=False)  # shifted into 63-bit keys
    user_bits = _bit_width(data.n_users - 1)

    if by == "time":
        codes, time_bits = _time_codes(data.timestamps, 63 - user_bits)
        # one sort of (user, time) keys: each user's block ascends, so the k-th largest
        # time code of user u sits k places before the end of u's block
        ordered = np.sort((entry_users << time_bits) | codes)
        users = np.flatnonzero(eligible)
        threshold = np.zeros(data.n_users, dtype=np.int64)
        threshold[users] = ordered[data.csr.indptr[users + 1] - k] & ((1 << time_bits) - 1)
        entry_threshold = threshold[entry_users]
        in_play = eligible[entry_users]
        test = in_play & (codes > entry_threshold)  # surely in test: strictly later
        tied = np.flatnonzero(in_play & (codes == entry_threshold))
        need = k - np.bincount(entry_users[test], minlength=data.n_users)
    else:
        test = np.zeros(data.nnz, dtype=bool)
        tied = np.flatnonzero(eligible[entry_users])
        need = np.where(eligible, k, 0)

    # Draw need[u] of user u's candidate entries uniformly; users whose candidates are
    # all needed (the usual case for by="time") take them all without drawing.
    cand_users = entry_users[tied]
    n_cand = np.bincount(cand_users, minlength=data.n_users)
    take_all = need[cand_users] == n_cand[cand_users]
    test[tied[take_all]] = True
    tied, cand_users = tied[~take_all], cand_users[~take_all]
    if tied.size:
        test[tied[_draw_per_group(cand_users, need, rng, user_bits)]] = True
    if test.all():
        raise ValueError(
            f"every user has exactly k = {k} entries or is empty, so with min_train=0 every "
            "entry would go to test and train would be empty; lower k or raise min_train"
        )
    return _split(data, test, skipped_users=skipped)


def temporal_split(data, test_size=0.2, *, cutoff=None):
    """A global time cut: entries with timestamp >= ``cutoff`` go to test.

    Parameters
    ----------
    data : Interactions or scipy sparse matrix
        Must have timestamps.
    test_size : float in (0, 1) or int in [1, nnz - 1]
        Used when ``cutoff`` is None: the cutoff becomes the timestamp of rank
        ``nnz - n_test`` in ascending order (0-based), where ``n_test`` is the
        requested test size (as in :func:`train_test_split`); that is the
        (1 - test_size) quantile, taking the observed value at or above it.
        Ignored when ``cutoff`` is given.
    cutoff : number or datetime-like, optional
        The first timestamp that belongs to test (numpy/pandas/datetime values or
        ISO strings for datetime64 timestamps).

    Ties at the cutoff are never split: every entry stamped exactly ``cutoff`` goes
    to test, so all test timestamps are >= all train timestamps and the test side
    may be larger than ``test_size`` when many entries share the cutoff timestamp.

    Returns
    -------
    TrainTestSplit
        With ``cutoff`` set to the cut used.

    Raises
    ------
    ValueError
        No timestamps; bad ``test_size``; a cut that leaves train or test empty.
    TypeError
        A ``cutoff`` of the wrong kind for the timestamps.
    """
    data = as_interactions(data)
    ts = data.timestamps
    if ts is None:
        raise ValueError(
            "temporal_split needs timestamps, but the data has none; build the "
            "Interactions with timestamps or use train_test_split / leave_k_out(by='random')"
        )
    is_datetime = ts.dtype.kind == "M"
    if cutoff is None:
        n_test = _n_test(test_size, data.nnz)
        kth = data.nnz - n_test
        values = ts.view(np.int64) if is_datetime else ts  # partition is faster on ints
        cut = np.partition(values, kth)[kth]
        cutoff = cut.view(ts.dtype) if is_datetime else cut
        test = ts >= cutoff
        if test.all():
            raise ValueError(
                f"temporal_split with test_size={test_size!r}: the cutoff {cutoff} is also the "
                "earliest timestamp, so train would be empty (too many entries share it); "
                "pass a smaller test_size or an explicit cutoff"
            )
    else:
        cutoff = _check_cutoff(cutoff, is_datetime)
        test = ts >= cutoff
        if test.all():
            raise ValueError(
                f"cutoff={cutoff!r} is at or before the earliest timestamp ({ts.min()}); "
                "train would be empty"
            )
        if not test.any():
            raise ValueError(
                f"cutoff={cutoff!r} is after the latest timestamp ({ts.max()}); test would be empty"
            )
    return _split(data, test, cutoff=cutoff)


class KFold:
    """K-fold cross-validation over the entries.

    Every entry lands in exactly one test fold; fold sizes differ by at most one.

    Parameters
    ----------
    n_splits : int >= 2
    shuffle : bool
        True (default): entries are assigned to folds at random.  False: folds are
        contiguous runs of entries in CSR order, i.e. blocks of consecutive users, so
        most test users are cold -- rarely what a recommender evaluation wants.
    random_state : None, int, SeedSequence or numpy.random.Generator
        Only with ``shuffle=True``.  With an int, every call to :meth:`split` gives
        the same folds; with a Generator, each call draws new ones.
    """

    def __init__(self, n_splits=5, *, shuffle=True, random_state=None):
        self.n_splits = check_positive_int(n_splits, "n_splits", minimum=2)
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be True or False, got {shuffle!r}")
        if not shuffle and random_state is not None:
            raise ValueError(
                f"random_state={random_state!r} has no effect with shuffle=False; "
                "leave it as None or pass shuffle=True"
            )
        check_random_state(random_state)  # validate now, draw in split()
        self.shuffle = bool(shuffle)
        self.random_state = random_state

    def get_n_splits(self, data=None):
        """The number of folds (``data`` is accepted for API symmetry and ignored)."""
        return self.n_splits

    def split(self, data):
        """Yield one :class:`TrainTestSplit` per fold, in fold order.

        Raises ValueError at call time if ``n_splits`` exceeds the number of entries.
        """
        data = as_interactions(data)
        nnz = data.nnz
        if self.n_splits > nnz:
            raise ValueError(
                f"n_splits={self.n_splits} is greater than the number of entries ({nnz})"
            )
        sizes = np.full(self.n_splits, nnz // self.n_splits, dtype=np.int64)
        sizes[: nnz % self.n_splits] += 1
        fold_ids = np.repeat(np.arange(self.n_splits, dtype=np.min_scalar_type(self.n_splits)), sizes)
        if self.shuffle:
            fold = np.empty_like(fold_ids)
            fold[check_random_state(self.random_state).permutation(nnz)] = fold_ids
        else:
            fold = fold_ids
        return self._folds(data, fold)

    def _folds(self, data, fold):
        for f in range(self.n_splits):
            yield _split(data, fold == f)

    def __repr__(self):
        return (f"KFold(n_splits={self.n_splits}, shuffle={self.shuffle}, "
                f"random_state={self.random_state!r})")


def cross_validate(model, data, cv=5, *, k=(10,), random_state=None, num_threads=None):
    """Evaluate a fresh copy of ``model`` on every fold: a :class:`CrossValidationResult`.

    ``cv``: the number of folds (shuffled :class:`KFold` with ``random_state``) or any
    splitter with a ``split(data)`` method.  Each fold fits ``type(model)(**params)``
    on its training part and scores it with :func:`fastrec.evaluate` (``k`` cut-offs).
    """
    from fastrec.evaluation import evaluate

    data = as_interactions(data)
    splitter = KFold(cv, random_state=random_state) if isinstance(cv, numbers.Integral) else cv
    if isinstance(splitter, (str, bytes)) or not callable(getattr(splitter, "split", None)):
        raise TypeError(f"cv must be a number of folds or a splitter with split(data), got {cv!r}")
    folds = []
    for split in splitter.split(data):
        fresh = type(model)(**model.get_params())
        folds.append(evaluate(fresh, split.train, split.test, k=k, num_threads=num_threads,
                              name=repr(model)).to_dict())
    return CrossValidationResult(repr(model), folds)


class CrossValidationResult:
    """Per-fold metrics (``folds``) and their mean and standard deviation."""

    def __init__(self, model_name, folds):
        self.model_name = model_name
        self.folds = folds

    def _numeric_keys(self):
        return [key for key, value in self.folds[0].items()
                if isinstance(value, numbers.Real) and not isinstance(value, bool)]

    def mean(self):
        return {key: float(np.mean([fold[key] for fold in self.folds])) for key in self._numeric_keys()}

    def std(self):
        return {key: float(np.std([fold[key] for fold in self.folds])) for key in self._numeric_keys()}

    def to_dict(self):
        return {"model": self.model_name, "n_folds": len(self.folds), "mean": self.mean(),
                "std": self.std(), "folds": self.folds}

    def to_frame(self):
        """One row per fold (pandas)."""
        import pandas as pd

        return pd.DataFrame(self.folds).rename_axis("fold")

    def __getitem__(self, key):
        return self.mean()[key]

    def __repr__(self):
        return f"<CrossValidationResult {self.model_name}: {len(self.folds)} folds>"


# --------------------------------------------------------------------------- helpers
def _split(data, test, **report):
    return TrainTestSplit(data.select(~test), data.select(test), **report)


def _frozen(arr):
    arr.flags.writeable = False
    return arr


def _plural(n, word):
    return f"{n} {word}{'' if n == 1 else 's'}"


def _bit_width(n):
    """Bits needed to hold the non-negative int ``n``."""
    return int(n).bit_length()


def _n_test(test_size, nnz):
    """The number of test entries for a fractional or absolute ``test_size``."""
    if isinstance(test_size, (bool, np.bool_)) or not isinstance(test_size, numbers.Real):
        raise TypeError(
            f"test_size must be a float in (0, 1) or an int count, got {test_size!r}"
        )
    if nnz < 2:
        raise ValueError(f"cannot split {nnz} entry: train and test need one entry each")
    if isinstance(test_size, numbers.Integral):
        if not 1 <= test_size <= nnz - 1:
            raise ValueError(
                f"test_size must be in [1, {nnz - 1}] when an int (a count of entries), "
                f"got {test_size}"
            )
        return int(test_size)
    test_size = float(test_size)
    if not 0.0 < test_size < 1.0:  # also rejects NaN
        raise ValueError(
            f"test_size must be in (0, 1) when a float (a fraction of entries), got {test_size}"
        )
    return min(max(int(np.floor(test_size * nnz + 0.5)), 1), nnz - 1)


def _check_cutoff(cutoff, is_datetime):
    """An explicit cutoff comparable with the timestamps."""
    if is_datetime:
        if isinstance(cutoff, (numbers.Number, np.bool_)):
            raise TypeError(
                f"cutoff must be datetime-like (the timestamps are datetime64), got {cutoff!r}"
            )
        try:
            value = np.datetime64(cutoff)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"cutoff must be datetime-like (the timestamps are datetime64), got {cutoff!r}: {exc}"
            ) from None
        if np.isnat(value):
            raise ValueError(f"cutoff must not be NaT, got {cutoff!r}")
        return value
    if isinstance(cutoff, (bool, np.bool_)) or not isinstance(cutoff, numbers.Real):
        raise TypeError(f"cutoff must be a number (the timestamps are numeric), got {cutoff!r}")
    if not np.isfinite(cutoff):
        raise ValueError(f"cutoff must be finite, got {cutoff!r}")
    return cutoff


def _time_codes(ts, budget):
    """``(codes, bits)``: order-preserving int64 codes of the timestamps in [0, 2**bits).

    Equal timestamps get equal codes and ``bits <= budget``.  Integer-valued data
    (ints, datetime64, whole-number floats) is shifted to start at 0 and divided by
    the common step when needed, in O(n); otherwise the codes are dense ranks (a sort).
    """
    ints = None
    kind = ts.dtype.kind
    if kind == "M":
        ints = ts.view(np.int64)
    elif kind == "i" or (kind == "u" and ts.max() <= np.iinfo(np.int64).max):
        ints = ts.astype(np.int64, copy=False)
    elif kind == "f" and np.abs(ts).max() < 2.0**62 and np.array_equal(ts, np.trunc(ts)):
        ints = ts.astype(np.int64)
    if ints is not None:
        low = int(ints.min())
        span = int(ints.max()) - low
        if span < 2**63:
            codes = ints - np.int64(low)
            if _bit_width(span) > budget:
                step = int(np.gcd.reduce(codes))
                if step > 1:
                    codes //= step
                    span //= step
            if _bit_width(span) <= budget:
                return codes, _bit_width(span)
    order = np.argsort(ts)  # ties get one code, so stability does not matter
    ordered = ts[order]
    new_value = np.empty(ts.size, dtype=np.int64)
    new_value[0] = 0
    np.not_equal(ordered[1:], ordered[:-1], out=new_value[1:], casting="unsafe")
    codes = np.empty(ts.size, dtype=np.int64)
    codes[order] = np.cumsum(new_value)
    return codes, _bit_width(codes[order[-1]])


def _draw_per_group(groups, need, rng, group_bits):
    """A mask choosing ``need[g]`` members of each group uniformly at random.

    ``groups`` is non-decreasing (entries in CSR order); each group must have at
    least ``need[g]`` members.  One sort of (group, random rank) keys.
    """
    n = groups.size
    rank_bits = _bit_width(n - 1)
    if group_bits + rank_bits > 63:  # pragma: no cover - needs ~2**40 entries
        raise ValueError("too many entries to draw from")
    ranks = rng.permutation(n)
    ordered = np.sort((groups << rank_bits) | ranks)
    sizes = np.bincount(groups, minlength=need.size)
    starts = np.cumsum(sizes) - sizes
    present = np.flatnonzero(sizes)
    limit = np.full(need.size, -1, dtype=np.int64)
    limit[present] = ordered[starts[present] + need[present] - 1] & ((1 << rank_bits) - 1)
    return ranks <= limit[groups]


# ------------------------------------------------------------- sampled evaluation
NEGATIVE_BLOCK_DRAWS = 2**16  # first-round draws per block of rows (small blocks stay in cache)


def sample_negatives(train, test, n_negatives=100, *, random_state=None):
    """Per test interaction, the held-out item and ``n_negatives`` sampled negatives.

    The candidate lists of the sampled protocol of He et al. (2017, "Neural
    Collaborative Filtering"): after :func:`leave_k_out`, each held-out item is ranked
    among items the user never interacted with.  See
    :func:`fastrec.evaluation.evaluate_sampled`.

    Parameters
    ----------
    train, test : Interactions
        Sharing their id maps (as the splits of this module produce).
    n_negatives : int >= 0
    random_state : None, int, SeedSequence or numpy.random.Generator

    Returns
    -------
    users : int64 array (n_rows,)
        The user index of each row: one row per test interaction, in CSR order (users
        ascending), so a leave-k-out split gives k rows per test user.
    candidates : int64 array (n_rows, 1 + n_negatives)
        Item indices: column 0 the held-out item, columns 1.. distinct items the user
        has in neither ``train`` nor ``test``, drawn uniformly without replacement
        (independently for each row) and in the order drawn.

    Raises
    ------
    ValueError
        train and test with different id maps; a test user with fewer than
        ``n_negatives`` items outside their train and test interactions.

    Notes
    -----
    Vectorised rejection sampling in rounds: each pending row draws items uniformly
    with replacement (about as many as it still needs, scaled by the share of items
    it may take); a draw is rejected when the (user, item) key is among the sorted
    train or test keys (``searchsorted``), or repeats an item the row already holds or
    drew earlier.  Rows keep their first accepted draws, which is a uniform sample
    without replacement; the rows that are still short draw again.  Deterministic for
    a given ``random_state``.
    """
    train = as_interactions(train, "train")
    test = as_interactions(test, "test")
    if not train.same_ids(test):
        raise ValueError("train and test must share id maps; build them with fastrec.model_selection")
    n_negatives = check_positive_int(n_negatives, "n_negatives", minimum=0)
    rng = check_random_state(random_state)
    n_items = test.n_items
    users = test.entry_users.astype(np.int64)
    candidates = np.empty((users.size, 1 + n_negatives), dtype=np.int64)
    candidates[:, 0] = test.csr.indices
    if not users.size or not n_negatives:
        return users, candidates

    # sorted (user, item) keys of every entry in train or test, each once
    seen_keys = np.sort(np.concatenate([_entry_keys(train), _entry_keys(test)]), kind="stable")
    seen_keys = seen_keys[np.r_[True, seen_keys[1:] != seen_keys[:-1]]]
    user_bounds = np.searchsorted(seen_keys, np.arange(test.n_users + 1, dtype=np.int64) * n_items)
    available = n_items - np.diff(user_bounds)
    short = np.flatnonzero((test.user_counts > 0) & (available < n_negatives))
    if short.size:
        first = short[0]
        raw = test.user_ids[first]
        raw = raw.item() if isinstance(raw, np.generic) else raw
        others = f" (and {_plural(short.size - 1, 'other user')})" if short.size > 1 else ""
        raise ValueError(
            f"user {raw!r} has only {_plural(int(available[first]), 'item')} in neither "
            f"train nor test{others}, fewer than n_negatives={n_negatives}; lower n_negatives"
        )

    row_available = available[users]
    # blocks of rows with about NEGATIVE_BLOCK_DRAWS first-round draws bound the memory
    first_draws = _draw_counts(np.full(users.size, n_negatives), row_available, n_items)
    block = (np.cumsum(first_draws) - first_draws) // NEGATIVE_BLOCK_DRAWS
    block_bounds = np.r_[0, np.flatnonzero(block[1:] != block[:-1]) + 1, users.size]
    for start, stop in itertools.pairwise(block_bounds):
        # the block's users are contiguous: search only their keys (cache-friendly)
        keys = seen_keys[user_bounds[users[start]]:user_bounds[users[stop - 1] + 1]]
        _draw_negatives(candidates[start:stop, 1:], users[start:stop], row_available[start:stop],
                        keys, n_items, rng)
    return users, candidates


def _entry_keys(data):
    """Sorted int64 keys ``user * n_items + item`` of the stored entries."""
    keys = data.entry_users.astype(np.int64) * data.n_items + data.csr.indices
    if keys.size > 1 and (keys[1:] < keys[:-1]).any():  # unsorted column indices
        keys.sort()
    return keys


def _member(sorted_keys, keys):
    """Boolean mask: which ``keys`` occur in ``sorted_keys``."""
    if not sorted_keys.size:
        return np.zeros(keys.shape, dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), sorted_keys.size - 1)
    return sorted_keys[pos] == keys


def _draw_counts(need, remaining, n_items):
    """Uniform draws over ``n_items`` that give a row ``need`` new items, nearly always.

    k draws hit about ``remaining * (1 - exp(-k / n_items))`` distinct items of the
    row's ``remaining`` ones; solve for k aiming at ``need`` plus two standard
    deviations (so few rows need a second round), with the share capped at 0.95 (a
    row needing all its remaining items then takes a few rounds).
    """
    target = need + 2.0 * np.sqrt(need) + 2.0
    share = np.minimum(target / np.maximum(remaining, 1), 0.95)
    return np.ceil(n_items * -np.log1p(-share)).astype(np.int64) + 1


def _draw_negatives(out, users, available, seen_keys, n_items, rng):
    """Fill ``out`` (rows x n_negatives) with distinct items outside each row user's ``seen_keys``."""
    n_rows, n_negatives = out.shape
    filled = np.zeros(n_rows, dtype=np.int64)
    pending = np.arange(n_rows)
    while pending.size:
        need = n_negatives - filled[pending]
        counts = _draw_counts(need, available[pending] - filled[pending], n_items)
        draw_rows = np.repeat(pending, counts)
        items = rng.integers(0, n_items, size=draw_rows.size)
        # the row's items so far, then this round's draws; a stable sort of (row, item)
        # keys puts a repeat after its first occurrence, and sorts the user keys within
        # each row (rows ascend by user), which speeds up the seen lookup
        held = np.flatnonzero(np.arange(n_negatives) < filled[pending, None])
        held_rows = pending[held // n_negatives]
        rows = np.concatenate([held_rows, draw_rows])
        all_items = np.concatenate([out[held_rows, held % n_negatives], items])
        order = np.argsort(rows * n_items + all_items, kind="stable")
        ordered_rows, ordered_items = rows[order], all_items[order]
        bad = np.empty(rows.size, dtype=bool)
        bad[order] = _member(seen_keys, users[ordered_rows] * n_items + ordered_items)
        bad[order[1:]] |= (ordered_rows[1:] == ordered_rows[:-1]) & (ordered_items[1:] == ordered_items[:-1])
        keep = ~bad[held.size:]
        # rank of each kept draw among its row's kept draws, in draw order
        kept_before = np.cumsum(keep) - keep
        row_starts = np.cumsum(counts) - counts
        rank = kept_before - np.repeat(kept_before[row_starts], counts)
        take = keep & (rank < np.repeat(need, counts))
        out[draw_rows[take], filled[draw_rows[take]] + rank[take]] = items[take]
        filled += np.bincount(draw_rows[take], minlength=n_rows)
        pending = pending[filled[pending] < n_negatives]
