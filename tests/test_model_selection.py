"""Tests for fastrec.model_selection: splits are partitions, reproducible, and honest."""
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

from fastrec.data import Interactions
from fastrec.model_selection import (
    KFold,
    TrainTestSplit,
    leave_k_out,
    temporal_split,
    train_test_split,
)
from fastrec.testing import make_interactions


# ----------------------------------------------------------------------------- helpers
def entry_keys(data):
    """One int per stored entry: row * n_items + column (comparable across shared ids)."""
    return data.entry_users.astype(np.int64) * data.n_items + data.csr.indices


def expected_n_test(fraction, nnz):
    """Nearest count, kept in [1, nnz - 1]."""
    return min(max(int(np.floor(fraction * nnz + 0.5)), 1), nnz - 1)


def assert_partition(data, split):
    """train and test are disjoint, together hold every entry, and keep values/timestamps."""
    train, test = split
    assert train.shape == test.shape == data.shape
    assert train.same_ids(test) and train.same_ids(data)
    assert train.nnz + test.nnz == data.nnz
    assert train.nnz > 0 and test.nnz > 0
    keys = np.concatenate([entry_keys(train), entry_keys(test)])
    order = np.argsort(keys)
    np.testing.assert_array_equal(keys[order], entry_keys(data))  # disjoint and complete
    values = np.concatenate([train.values, test.values])[order]
    np.testing.assert_array_equal(values, data.values)
    if data.timestamps is not None:
        ts = np.concatenate([train.timestamps, test.timestamps])[order]
        np.testing.assert_array_equal(ts, data.timestamps)
    assert train.is_implicit == test.is_implicit == data.is_implicit


def per_user_times(data):
    """{user index: array of timestamps}."""
    bounds = data.csr.indptr
    return {u: data.timestamps[bounds[u]:bounds[u + 1]] for u in range(data.n_users)}


def same_split(a, b):
    return (np.array_equal(entry_keys(a.test), entry_keys(b.test))
            and np.array_equal(entry_keys(a.train), entry_keys(b.train)))


def hand_built():
    """Users a..d, items x..z; c and item z only appear late, d has a single entry."""
    users = ["a", "a", "a", "b", "b", "b", "c", "c", "d"]
    items = ["x", "y", "w", "x", "y", "w", "z", "x", "y"]
    times = [1, 2, 3, 1, 5, 6, 7, 8, 2]
    return Interactions.from_arrays(users, items, [5, 4, 3, 2, 1, 2, 3, 4, 5], times)


@pytest.fixture
def data():
    return make_interactions(60, 40, 0.15, empty_users=3, empty_items=2, seed=3)


# ------------------------------------------------------------------- TrainTestSplit
def test_split_result_unpacks_and_reports():
    d = hand_built()
    split = temporal_split(d, cutoff=7)
    train, test = split
    assert train is split.train and test is split.test
    assert test.nnz == 2 and train.nnz == 7
    # c has entries only in test, z appears only in test; both stay in test
    assert list(split.cold_users) == ["c"] and split.n_cold_users == 1
    assert list(split.cold_items) == ["z"] and split.n_cold_items == 1
    assert test.user_counts[d.user_index("c")] == 2
    assert test.item_counts[d.item_index("z")] == 1
    assert split.cutoff == 7
    assert split.skipped_users is None and split.n_skipped_users is None
    text = repr(split)
    assert "7 train + 2 test entries" in text and "cold: 1 user, 1 item" in text
    assert "4 users x 4 items" in text and "cutoff 7" in text


def test_split_result_counts_cold_items_not_users():
    d = hand_built()
    test = np.zeros(d.nnz, dtype=bool)
    test[0] = True  # (a, w): a stays warm, w still has (b, w) in train
    split = TrainTestSplit(d.select(~test), d.select(test))
    assert split.n_cold_users == 0 and split.n_cold_items == 0
    test[3] = True  # (b, w) too: item w is now cold
    split = TrainTestSplit(d.select(~test), d.select(test))
    assert list(split.cold_items) == ["w"] and split.n_cold_users == 0
    assert "cold: 0 users, 1 item" in repr(split)


def test_split_result_rejects_mismatched_halves():
    d = hand_built()
    other = make_interactions(5, 5)
    with pytest.raises(ValueError, match="share their user and item ids"):
        TrainTestSplit(d, other)
    with pytest.raises(TypeError, match="test must be a fastrec.Interactions"):
        TrainTestSplit(d, d.csr)


# ------------------------------------------------------------------ train_test_split
@pytest.mark.parametrize("test_size, expected", [(0.2, None), (0.5, None), (1, 1), (37, 37)])
def test_train_test_split_partitions(data, test_size, expected):
    split = train_test_split(data, test_size, random_state=0)
    assert_partition(data, split)
    if expected is None:
        expected = expected_n_test(test_size, data.nnz)
    assert split.test.nnz == expected


@pytest.mark.parametrize("nnz, fraction, expected", [(10, 0.3, 3), (10, 0.2, 2), (10, 0.01, 1),
                                                     (10, 0.99, 9), (3, 0.5, 2), (2, 0.5, 1)])
def test_train_test_split_rounds_to_nearest_and_keeps_both_sides(nnz, fraction, expected):
    d = Interactions.from_arrays(np.arange(nnz), np.zeros(nnz, dtype=int))
    assert train_test_split(d, fraction, random_state=1).test.nnz == expected


def test_train_test_split_reproducible(data):
    a = train_test_split(data, random_state=7)
    b = train_test_split(data, random_state=7)
    c = train_test_split(data, random_state=8)
    assert same_split(a, b)
    assert not same_split(a, c)
    gen = np.random.default_rng(7)
    assert same_split(train_test_split(data, random_state=gen),
                      train_test_split(data, random_state=np.random.default_rng(7)))


def test_train_test_split_reports_cold_users():
    # 30 users with one entry each: most of those drawn into test are cold
    d = Interactions.from_arrays(np.arange(30), np.arange(30) % 4)
    split = train_test_split(d, 10, random_state=0)
    assert_partition(d, split)
    np.testing.assert_array_equal(split.cold_users, np.sort(d.user_ids[split.test.user_counts > 0]))
    assert split.n_cold_users == 10


def test_train_test_split_accepts_sparse_matrix():
    m = sp.random_array((20, 15), density=0.3, format="csr", rng=np.random.default_rng(0))
    split = train_test_split(m, 0.25, random_state=0)
    assert split.train.shape == (20, 15)
    assert split.train.nnz + split.test.nnz == m.nnz


@pytest.mark.parametrize("bad, error, message", [
    (0.0, ValueError, r"test_size must be in \(0, 1\) when a float .*got 0.0"),
    (1.0, ValueError, r"test_size must be in \(0, 1\) when a float .*got 1.0"),
    (-0.2, ValueError, r"test_size must be in \(0, 1\) when a float .*got -0.2"),
    (float("nan"), ValueError, r"test_size must be in \(0, 1\) when a float .*got nan"),
    (0, ValueError, r"test_size must be in \[1, 8\] when an int .*got 0"),
    (9, ValueError, r"test_size must be in \[1, 8\] when an int .*got 9"),
    ("0.2", TypeError, r"test_size must be a float in \(0, 1\) or an int count, got '0.2'"),
    (True, TypeError, r"test_size must be a float .*got True"),
])
def test_train_test_split_validates_test_size(bad, error, message):
    with pytest.raises(error, match=message):
        train_test_split(hand_built(), bad)


def test_train_test_split_errors():
    with pytest.raises(ValueError, match="cannot split 1 entry"):
        train_test_split(Interactions.from_arrays([1], [2]), 0.5)
    with pytest.raises(TypeError, match="data must be a fastrec.Interactions or a scipy.sparse"):
        train_test_split(np.ones((3, 3)))
    with pytest.raises(ValueError, match="random_state must be a non-negative int, got -1"):
        train_test_split(hand_built(), random_state=-1)


# ----------------------------------------------------------------------- leave_k_out
@pytest.mark.parametrize("by", ["time", "random"])
@pytest.mark.parametrize("k, min_train", [(1, 1), (3, 1), (2, 4), (2, 0)])
def test_leave_k_out_counts_per_user(data, by, k, min_train):
    split = leave_k_out(data, k, by=by, min_train=min_train, random_state=0)
    assert_partition(data, split)
    counts = data.user_counts
    eligible = counts >= k + min_train
    np.testing.assert_array_equal(split.test.user_counts, np.where(eligible, k, 0))
    np.testing.assert_array_equal(split.train.user_counts, np.where(eligible, counts - k, counts))
    skipped = (counts > 0) & ~eligible
    np.testing.assert_array_equal(split.skipped_users, data.user_ids[skipped])
    assert split.n_skipped_users == skipped.sum()
    assert split.n_cold_users == (np.sum(counts[eligible] == k) if min_train == 0 else 0)


def test_leave_k_out_by_time_takes_the_latest(data):
    split = leave_k_out(data, 3, by="time", random_state=0)
    train_times, test_times = per_user_times(split.train), per_user_times(split.test)
    for u, times in per_user_times(data).items():
        if times.size >= 4:
            # make_interactions timestamps are distinct: exactly the 3 latest go to test
            np.testing.assert_array_equal(np.sort(test_times[u]), np.sort(times)[-3:])
            assert test_times[u].min() > train_times[u].max()


def test_leave_k_out_by_time_ties_are_random_but_reproducible():
    # one user, six entries, the latest four tied: k=2 must draw 2 of those 4
    d = Interactions.from_arrays(np.zeros(6, int), np.arange(6), timestamps=[1, 2, 9, 9, 9, 9])
    chosen = set()
    for seed in range(60):
        split = leave_k_out(d, 2, random_state=seed)
        items = tuple(split.test.item_ids[split.test.csr.indices])
        assert len(items) == 2 and set(items) <= {2, 3, 4, 5}
        assert split.test.timestamps.min() >= split.train.timestamps.max()
        chosen.add(items)
        again = leave_k_out(d, 2, random_state=seed)
        assert same_split(split, again)
    assert len(chosen) == 6  # every pair of the 4 tied entries shows up


def test_leave_k_out_by_time_partial_ties():
    # latest entry unique, then a 3-way tie for the 2nd place: k=2 takes t=9 and one t=5
    d = Interactions.from_arrays(np.zeros(5, int), np.arange(5), timestamps=[1, 5, 5, 9, 5])
    for seed in range(10):
        test = leave_k_out(d, 2, random_state=seed).test
        np.testing.assert_array_equal(np.sort(test.timestamps), [5, 9])


@pytest.mark.parametrize("make_ts", [
    lambda rng, n: rng.integers(-5, 5, n) * 10**17,                  # int64, wide span, common step
    lambda rng, n: rng.integers(0, 3, n).astype(np.uint8),
    lambda rng, n: rng.random(n) * 1e9,                                # fractional floats
    lambda rng, n: rng.integers(0, 4, n).astype(float) - 0.5,
    lambda rng, n: (rng.integers(0, 10**6, n) * 10**9).astype("datetime64[ns]"),
    lambda rng, n: np.array([np.iinfo(np.int64).min, np.iinfo(np.int64).max])[rng.integers(0, 2, n)],
], ids=["int64-wide", "uint8", "float", "float-ties", "datetime64", "int64-extremes"])
def test_leave_k_out_by_time_timestamp_kinds(make_ts):
    rng = np.random.default_rng(0)
    base = make_interactions(30, 20, 0.3, seed=1)
    users, items, ratings, _ = base.to_arrays()
    d = Interactions.from_arrays(users, items, ratings, make_ts(rng, base.nnz))
    split = leave_k_out(d, 2, random_state=0)
    assert_partition(d, split)
    train_times, test_times = per_user_times(split.train), per_user_times(split.test)
    for u, times in per_user_times(d).items():
        if times.size >= 3:
            np.testing.assert_array_equal(np.sort(test_times[u]), np.sort(times)[-2:])
            assert test_times[u].min() >= train_times[u].max()


def test_leave_k_out_by_random_draws_uniformly():
    d = Interactions.from_arrays(np.zeros(5, int), np.arange(5))
    picks = np.zeros(5, int)
    for seed in range(200):
        test = leave_k_out(d, 1, by="random", random_state=seed).test
        picks[test.csr.indices] += 1
    assert picks.sum() == 200 and picks.min() > 20


@pytest.mark.parametrize("by", ["time", "random"])
def test_leave_k_out_reproducible(by):
    base = make_interactions(40, 30, 0.3, seed=2)
    users, items, ratings, ts = base.to_arrays()
    d = Interactions.from_arrays(users, items, ratings, ts // 50)  # many ties
    a = leave_k_out(d, 2, by=by, random_state=3)
    assert same_split(a, leave_k_out(d, 2, by=by, random_state=3))
    assert not same_split(a, leave_k_out(d, 2, by=by, random_state=4))


def test_leave_k_out_skips_and_reports_small_users():
    d = hand_built()  # counts: a 3, b 3, c 2, d 1
    split = leave_k_out(d, 2, min_train=1)
    assert list(split.skipped_users) == ["c", "d"] and split.n_skipped_users == 2
    assert list(split.test.user_counts) == [2, 2, 0, 0]
    assert list(split.train.user_counts) == [1, 1, 2, 1]
    assert "2 users skipped" in repr(split)
    # by time: a keeps t=1, b keeps t=1
    np.testing.assert_array_equal(split.train.timestamps, [1, 1, 8, 7, 2])  # CSR order
    # min_train=0: c goes wholly to test and is reported cold, d still skipped
    split = leave_k_out(d, 2, min_train=0)
    assert list(split.cold_users) == ["c"] and list(split.skipped_users) == ["d"]


def test_leave_k_out_ignores_users_without_entries(data):
    split = leave_k_out(data, 1, random_state=0)
    assert data.user_counts[-3:].sum() == 0
    assert not np.isin(data.user_ids[-3:], split.skipped_users).any()


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(k=0), ValueError, "k must be >= 1, got 0"),
    (dict(k=1.5), TypeError, "k must be an int, got 1.5"),
    (dict(min_train=-1), ValueError, "min_train must be >= 0, got -1"),
    (dict(by="latest"), ValueError, r"by must be one of 'time', 'random'; got 'latest'"),
    (dict(k=3, min_train=2), ValueError, r"no user has k \+ min_train = 5 entries or more \(the most is 3\)"),
])
def test_leave_k_out_validates(kwargs, error, message):
    with pytest.raises(error, match=message):
        leave_k_out(hand_built(), **kwargs)


def test_leave_k_out_never_empties_train():
    d = Interactions.from_arrays([1, 1, 2, 2], [1, 2, 1, 2], timestamps=[1, 2, 3, 4])
    with pytest.raises(ValueError, match="every entry would go to test and train would be empty"):
        leave_k_out(d, 2, min_train=0)


def test_leave_k_out_by_time_needs_timestamps():
    m = sp.csr_array(np.eye(4) + np.roll(np.eye(4), 1, axis=1))
    with pytest.raises(ValueError, match=r"leave_k_out\(by='time'\) needs timestamps"):
        leave_k_out(m)
    split = leave_k_out(m, by="random", random_state=0)
    assert list(split.test.user_counts) == [1, 1, 1, 1]


# -------------------------------------------------------------------- temporal_split
def test_temporal_split_cuts_globally(data):
    split = temporal_split(data, 0.25)
    assert_partition(data, split)
    # make_interactions timestamps are distinct, so the size is exact
    assert split.test.nnz == expected_n_test(0.25, data.nnz)
    assert split.test.timestamps.min() == split.cutoff > split.train.timestamps.max()


def test_temporal_split_ties_at_cutoff_go_to_test():
    d = Interactions.from_arrays(np.arange(10), np.zeros(10, int),
                                 timestamps=[0, 1, 2, 3, 4, 5, 5, 5, 5, 9])
    split = temporal_split(d, 0.2)  # 2 entries asked for; the cutoff 5 is shared by 4
    assert split.cutoff == 5
    np.testing.assert_array_equal(np.sort(split.test.timestamps), [5, 5, 5, 5, 9])
    assert split.test.nnz == 5
    assert temporal_split(d, 1).test.nnz == 1  # cutoff 9: no tie


def test_temporal_split_explicit_cutoff():
    d = hand_built()
    split = temporal_split(d, cutoff=5.5)
    assert split.cutoff == 5.5
    np.testing.assert_array_equal(np.sort(split.test.timestamps), [6, 7, 8])
    assert_partition(d, split)


def test_temporal_split_datetime_timestamps():
    d = hand_built()
    users, items, ratings, ts = d.to_arrays()
    dates = np.datetime64("2024-01-01") + ts.astype("timedelta64[D]")
    dd = Interactions.from_arrays(users, items, ratings, dates)
    split = temporal_split(dd, cutoff="2024-01-08")
    np.testing.assert_array_equal(np.sort(split.test.timestamps),
                                  np.array(["2024-01-08", "2024-01-09"], dtype="datetime64[D]"))
    assert split.cutoff == np.datetime64("2024-01-08") and list(split.cold_users) == ["c"]
    auto = temporal_split(dd, 3)
    assert auto.cutoff == np.datetime64("2024-01-07") and auto.test.nnz == 3
    assert isinstance(auto.cutoff, np.datetime64)
    with pytest.raises(TypeError, match="cutoff must be datetime-like .*got 5"):
        temporal_split(dd, cutoff=5)
    with pytest.raises(TypeError, match="cutoff must be datetime-like .*got 'soon'"):
        temporal_split(dd, cutoff="soon")


def test_temporal_split_errors():
    d = hand_built()
    with pytest.raises(ValueError,
                       match=r"cutoff=1 is at or before the earliest timestamp \(1\); train would be empty"):
        temporal_split(d, cutoff=1)
    with pytest.raises(ValueError,
                       match=r"cutoff=9 is after the latest timestamp \(8\); test would be empty"):
        temporal_split(d, cutoff=9)
    with pytest.raises(TypeError, match="cutoff must be a number .*got '5'"):
        temporal_split(d, cutoff="5")
    with pytest.raises(ValueError, match="cutoff must be finite, got nan"):
        temporal_split(d, cutoff=float("nan"))
    with pytest.raises(ValueError, match=r"test_size must be in \(0, 1\) when a float .*got 1.5"):
        temporal_split(d, 1.5)
    with pytest.raises(ValueError, match="temporal_split needs timestamps, but the data has none"):
        temporal_split(sp.csr_array(np.eye(3)))
    flat = Interactions.from_arrays(np.arange(4), np.arange(4), timestamps=[3, 3, 3, 3])
    with pytest.raises(ValueError,
                       match="the cutoff 3 is also the earliest timestamp, so train would be empty"):
        temporal_split(flat, 0.5)


# ----------------------------------------------------------------------------- KFold
@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("n_splits", [2, 3, 7])
def test_kfold_partitions_the_entries(data, n_splits, shuffle):
    cv = KFold(n_splits, shuffle=shuffle, random_state=0 if shuffle else None)
    assert cv.get_n_splits() == cv.get_n_splits(data) == n_splits
    folds = list(cv.split(data))
    assert len(folds) == n_splits
    seen = np.zeros(data.nnz, dtype=int)
    all_keys = entry_keys(data)
    for fold in folds:
        assert isinstance(fold, TrainTestSplit)
        assert_partition(data, fold)
        seen[np.searchsorted(all_keys, entry_keys(fold.test))] += 1
    np.testing.assert_array_equal(seen, 1)  # every entry in exactly one test fold
    sizes = [f.test.nnz for f in folds]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == data.nnz


def test_kfold_without_shuffle_is_contiguous():
    d = hand_built()
    folds = list(KFold(3, shuffle=False).split(d))
    got = [np.searchsorted(entry_keys(d), entry_keys(f.test)) for f in folds]
    np.testing.assert_array_equal(np.concatenate(got), np.arange(d.nnz))
    assert [g.size for g in got] == [3, 3, 3]


def test_kfold_reproducible(data):
    def tests(cv):
        return [entry_keys(f.test) for f in cv.split(data)]

    a = tests(KFold(4, random_state=1))
    cv = KFold(4, random_state=1)
    assert all(np.array_equal(x, y) for x, y in zip(a, tests(cv)))
    assert all(np.array_equal(x, y) for x, y in zip(a, tests(cv)))  # split() twice: same folds
    assert not all(np.array_equal(x, y) for x, y in zip(a, tests(KFold(4, random_state=2))))


def test_kfold_leave_one_out_and_repr():
    d = hand_built()
    folds = list(KFold(d.nnz, random_state=0).split(d))
    assert [f.test.nnz for f in folds] == [1] * d.nnz
    assert repr(KFold(3, random_state=5)) == "KFold(n_splits=3, shuffle=True, random_state=5)"


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(n_splits=1), ValueError, "n_splits must be >= 2, got 1"),
    (dict(n_splits=2.0), TypeError, "n_splits must be an int, got 2.0"),
    (dict(shuffle="yes"), TypeError, "shuffle must be True or False, got 'yes'"),
    (dict(shuffle=False, random_state=0), ValueError, "random_state=0 has no effect with shuffle=False"),
    (dict(random_state="seed"), TypeError, "random_state must be None, an int"),
])
def test_kfold_validates(kwargs, error, message):
    with pytest.raises(error, match=message):
        KFold(**kwargs)


def test_kfold_too_many_splits():
    with pytest.raises(ValueError, match=r"n_splits=10 is greater than the number of entries \(9\)"):
        KFold(10).split(hand_built())  # raised at call time, not on first iteration


# ---------------------------------------------------------------- property-based tests
@st.composite
def small_interactions(draw):
    """2..60 distinct (user, item) pairs, timestamps from a small range (many ties)."""
    n_users = draw(st.integers(1, 8))
    n_items = draw(st.integers(2, 10))
    pairs = draw(st.lists(st.tuples(st.integers(0, n_users - 1), st.integers(0, n_items - 1)),
                          min_size=2, max_size=60, unique=True))
    users, items = np.array(pairs).T
    times = draw(st.lists(st.integers(0, draw(st.integers(0, 20))),
                          min_size=len(pairs), max_size=len(pairs)))
    return Interactions.from_arrays(users, items, timestamps=times)


@given(small_interactions(), st.integers(1, 4), st.integers(0, 3),
       st.sampled_from(["time", "random"]), st.integers(0, 2**32))
def test_leave_k_out_properties(d, k, min_train, by, seed):
    counts = d.user_counts
    eligible = counts >= k + min_train
    if not eligible.any():
        with pytest.raises(ValueError, match="no user has"):
            leave_k_out(d, k, by=by, min_train=min_train, random_state=seed)
        return
    if np.all(counts[counts > 0] == k) and min_train == 0:
        with pytest.raises(ValueError, match="train would be empty"):
            leave_k_out(d, k, by=by, min_train=min_train, random_state=seed)
        return
    split = leave_k_out(d, k, by=by, min_train=min_train, random_state=seed)
    assert_partition(d, split)
    np.testing.assert_array_equal(split.test.user_counts, np.where(eligible, k, 0))
    assert split.n_skipped_users == np.sum((counts > 0) & ~eligible)
    if by == "time":
        train_times, test_times = per_user_times(split.train), per_user_times(split.test)
        for u, times in per_user_times(d).items():
            if eligible[u]:
                np.testing.assert_array_equal(np.sort(test_times[u]), np.sort(times)[-k:])
                if train_times[u].size:
                    assert test_times[u].min() >= train_times[u].max()
    assert same_split(split, leave_k_out(d, k, by=by, min_train=min_train, random_state=seed))


@given(small_interactions(), st.floats(0.01, 0.99), st.integers(0, 2**32))
def test_random_splits_properties(d, fraction, seed):
    split = train_test_split(d, fraction, random_state=seed)
    assert_partition(d, split)
    assert split.test.nnz == expected_n_test(fraction, d.nnz)
    assert abs(split.test.nnz - fraction * d.nnz) <= 0.5 + 1e-9 or split.test.nnz in (1, d.nnz - 1)
    cold = (split.test.user_counts > 0) & (split.train.user_counts == 0)
    np.testing.assert_array_equal(split.cold_users, d.user_ids[cold])
    n_splits = min(d.nnz, 3)
    if n_splits >= 2:
        seen = np.zeros(d.nnz, dtype=int)
        for fold in KFold(n_splits, random_state=seed).split(d):
            assert fold.train.nnz + fold.test.nnz == d.nnz
            seen[np.searchsorted(entry_keys(d), entry_keys(fold.test))] += 1
        np.testing.assert_array_equal(seen, 1)


@given(small_interactions(), st.floats(0.01, 0.99))
def test_temporal_split_properties(d, fraction):
    ts = d.timestamps
    n_test = expected_n_test(fraction, d.nnz)
    cutoff = np.sort(ts)[d.nnz - n_test]
    if cutoff == ts.min():  # ties reach back to the earliest timestamp: train would be empty
        with pytest.raises(ValueError, match="train would be empty"):
            temporal_split(d, fraction)
        return
    split = temporal_split(d, fraction)
    assert_partition(d, split)
    assert split.cutoff == cutoff
    assert split.test.timestamps.min() == cutoff > split.train.timestamps.max()
    assert split.test.nnz == np.sum(ts >= cutoff) >= n_test


def test_cross_validate_fits_a_fresh_model_per_fold():
    import fastrec
    from fastrec.model_selection import KFold, cross_validate

    data = fastrec.datasets.synthetic(200, 80, 4000, seed=1)
    model = fastrec.Baseline()
    result = cross_validate(model, data, cv=3, k=(5,), random_state=0)
    assert not hasattr(model, "interactions_")  # the caller's model is left unfitted
    assert len(result.folds) == 3 and result.to_dict()["n_folds"] == 3
    rmses = [fold["rmse"] for fold in result.folds]
    assert result["rmse"] == pytest.approx(np.mean(rmses)) and 0.5 < result["rmse"] < 1.5
    assert result.std()["rmse"] == pytest.approx(np.std(rmses))
    again = cross_validate(model, data, cv=KFold(3, random_state=0), k=(5,))
    assert [f["rmse"] for f in again.folds] == rmses  # the same folds, the same numbers
    pytest.importorskip("pandas")
    assert len(result.to_frame()) == 3
    with pytest.raises(TypeError, match="number of folds or a splitter"):
        cross_validate(model, data, cv="five")
