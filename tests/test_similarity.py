"""Sparse similarity: the kernel against the SciPy reference, peers, properties and validation."""
import numpy as np
import pytest
import scipy.sparse as sp

import fastrec
from fastrec import Interactions
from fastrec.similarity import (METRICS, content_similarity, item_similarity, topk_arrays,
                                user_similarity)
from fastrec.testing import (assert_surprise_similarities_equal, assert_topk_equal,
                             make_interactions, surprise_trainset)

ALL = sorted(METRICS)


@pytest.fixture(autouse=True)
def running_top_k(monkeypatch):
    """Top-k here goes through the running top-k kernel (similarity_topk), as on
    problems too large for all pairs; test_top_k_from_all_pairs_is_the_running_top_k
    checks the all-pairs route small problems take against it."""
    from fastrec import similarity as module

    monkeypatch.setattr(module, "TOPK_FROM_ALL_PAIRS_BYTES", 0)


def both(fn, data, metric, k, **kwargs):
    got = fn(data, metric, k, backend="compiled", **kwargs)
    expected = fn(data, metric, k, backend="numpy", **kwargs)
    return got, expected


@pytest.mark.parametrize("metric", ALL)
@pytest.mark.parametrize("k", [3, None])
@pytest.mark.parametrize("fn", [item_similarity, user_similarity], ids=["item", "user"])
def test_similarity_matches_reference(fn, metric, k, dtype, seed):
    data = make_interactions(50, 40, 0.15, empty_users=3, empty_items=4, seed=seed)
    got, expected = both(fn, data, metric, k, dtype=dtype, num_threads=2)
    assert got.dtype == dtype and got.shape == expected.shape
    assert_topk_equal(topk_arrays(got), topk_arrays(expected), dtype=dtype)


@pytest.mark.parametrize("metric", ["msd", "corated_cosine", "pearson", "pearson_baseline"])
@pytest.mark.parametrize("k", [3, None])
@pytest.mark.parametrize("fn", [item_similarity, user_similarity], ids=["item", "user"])
def test_half_star_ratings_match_reference(fn, metric, k, dtype):
    """Half stars (0.5 .. 5, as in the larger MovieLens sets) take the packed sums."""
    data = make_interactions(60, 45, 0.3, empty_users=2, empty_items=3, seed=5)
    users, items, ratings, _ = data.to_arrays()
    halves = np.random.default_rng(5).integers(1, 11, ratings.size) / 2
    data = Interactions.from_arrays(users, items, halves, user_ids=np.arange(60),
                                    item_ids=np.arange(45))
    got, expected = both(fn, data, metric, k, dtype=dtype, num_threads=2)
    assert got.nnz > 0
    assert_topk_equal(topk_arrays(got), topk_arrays(expected), dtype=dtype)


@pytest.mark.parametrize("metric", ["cosine", "pearson", "jaccard", "msd"])
def test_int64_indices_give_the_int32_result(metric, dtype):
    """Interactions picks int32 when it fits; the int64 kernel (huge data) must agree."""
    from fastrec import similarity as module

    data = make_interactions(30, 20, 0.3)
    by_user = sp.csr_array(data.csr, dtype=dtype)
    by_item = by_user.tocsc()
    results = {}
    for index_dtype in (np.int32, np.int64):
        parts = [(m.data, m.indices.astype(index_dtype), m.indptr.astype(index_dtype))
                 for m in (by_item, by_user)]
        results[index_dtype] = module._run_kernel(parts, 20, module.METRICS[metric], 0.0, 1, 4,
                                                  np.dtype(dtype), 2, np.dtype(index_dtype))
    assert results[np.int64].indices.dtype == np.int64 and results[np.int64].data.dtype == dtype
    np.testing.assert_array_equal(results[np.int64].indices, results[np.int32].indices)
    np.testing.assert_array_equal(results[np.int64].data, results[np.int32].data)
    assert results[np.int32].nnz > 0


@pytest.mark.parametrize("metric", ["cosine", "msd", "pearson_baseline"])
def test_shrinkage_and_min_support_match_reference(metric):
    data = make_interactions(40, 30, 0.3, seed=3)
    got, expected = both(item_similarity, data, metric, 6, shrinkage=7.5, min_support=3,
                         dtype=np.float64)
    assert_topk_equal(topk_arrays(got), topk_arrays(expected))


@pytest.mark.parametrize("metric", ["cosine", "jaccard", "pearson"])
def test_many_candidates_and_ties_match_reference(metric):
    """Rows with far more candidates than k (the pre-filtered selection path), many of
    them tied, and a fully dense block where every row touches every other row."""
    sparse = make_interactions(400, 300, 0.05, implicit=metric != "pearson", seed=7)
    dense = make_interactions(6, 5, 1.0, seed=8)
    for data, k in ((sparse, 10), (sparse, 40), (dense, 2)):
        for fn in (item_similarity, user_similarity):
            got, expected = both(fn, data, metric, k, dtype=np.float64)
            assert_topk_equal(topk_arrays(got), topk_arrays(expected))


@pytest.mark.parametrize("metric", ["cosine", "jaccard", "msd", "pearson"])
def test_past_cache_size_matches_reference(metric):
    """Data whose X^T outgrows a core's cache: the kernels prefetch its rows whole."""
    from fastrec._kernels import similarity as kernels

    implicit = metric in ("cosine", "jaccard")
    many_users = make_interactions(4000, 300, 0.2, implicit=implicit, seed=11)
    many_items = make_interactions(300, 4000, 0.2, implicit=implicit, seed=12)
    for fn, data in ((item_similarity, many_users), (user_similarity, many_items)):
        assert data.nnz * (4 + 1) > kernels.PREFETCH_WHOLE_ROWS_BYTES  # also with 1-byte codes
        for k in (20, None):
            got, expected = both(fn, data, metric, k, num_threads=2)
            assert_topk_equal(topk_arrays(got), topk_arrays(expected), dtype=np.float32)


@pytest.mark.parametrize("metric", ["msd", "pearson", "corated_cosine", "jaccard", "cosine"])
def test_top_k_from_all_pairs_is_the_running_top_k(monkeypatch, metric, index_dtype):
    """Small problems take their top k as the first k of every pair's sorted rows:
    the same arrays, bit for bit, as the running top-k kernel, for k from 1 to past the
    row length, both orientations, both dtypes, int32 and int64 ids, shrinkage with
    min_support, 1 or 2 threads."""
    from fastrec import similarity as module

    data = make_interactions(120, 90, 0.12, empty_users=2, empty_items=3,
                             implicit=metric in ("jaccard", "cosine"), seed=21)
    spec = module.METRICS[metric]
    by_user = sp.csr_array(data.csr, dtype=np.float64, copy=True)
    if metric == "cosine":  # the kernel sees unit-length rows (as the wrapper scales them)
        by_user.data /= np.sqrt((by_user.data ** 2).sum())
    by_item = by_user.tocsc()
    for x, t in ((by_item, by_user), (by_user, by_item)):
        n = x.shape[1] if x is by_item else x.shape[0]
        for k, dtype, threads, shrinkage, min_support in ((1, np.float64, 2, 0.0, 1),
                                                          (7, np.float32, 1, 0.0, 1),
                                                          (40, np.float64, 2, 5.0, 3),
                                                          (500, np.float32, 2, 0.0, 1)):
            parts = [(m.data.astype(dtype), m.indices.astype(index_dtype),
                      m.indptr.astype(index_dtype)) for m in (x, t)]
            runs = []
            for budget in (0, 2**30):  # the running top k, then the first k of all pairs
                monkeypatch.setattr(module, "TOPK_FROM_ALL_PAIRS_BYTES", budget)
                monkeypatch.setattr(module, "TOPK_FROM_ALL_PAIRS_MIN_UPDATES", 0.0)
                runs.append(module._run_kernel(parts, n, spec, shrinkage, max(min_support, spec.min_support_floor),
                                               k, np.dtype(dtype), threads, np.dtype(index_dtype)))
            running, from_all = runs
            assert running.nnz > 0 and from_all.indices.dtype == running.indices.dtype
            np.testing.assert_array_equal(from_all.indptr, running.indptr)
            np.testing.assert_array_equal(from_all.indices, running.indices)
            np.testing.assert_array_equal(from_all.data, running.data)


def test_k_none_with_a_counting_pass(monkeypatch):
    """k=None counts first when the output room would exceed the budget: same result."""
    from fastrec import similarity as module

    data = make_interactions(60, 40, 0.2, seed=9)
    one_pass = item_similarity(data, "pearson", None)
    monkeypatch.setattr(module, "FULL_PASS_BYTES", 0)
    two_passes = item_similarity(data, "pearson", None)
    np.testing.assert_array_equal(one_pass.indptr, two_passes.indptr)
    np.testing.assert_array_equal(one_pass.indices, two_passes.indices)
    np.testing.assert_array_equal(one_pass.data, two_passes.data)



@pytest.mark.parametrize("metric", ["cosine", "pearson", "jaccard", "msd"])
def test_pairs_scored_once_or_twice_agree(monkeypatch, metric):
    """Top-k scores each pair once (per-thread buffers) or from both rows, by a cost
    heuristic; k=None always scores pairs once.  Every way gives the reference result,
    bit for bit the same, for any num_threads."""
    from fastrec import similarity as module

    data = make_interactions(300, 200, 0.08, implicit=metric in ("cosine", "jaccard"), seed=11)
    for fn in (item_similarity, user_similarity):
        for k in (1, 7, None):
            expected = fn(data, metric, k, backend="numpy", dtype=np.float64)
            results = []
            for once in (True, False):
                monkeypatch.setattr(module, "MIRROR_TOP_MIN_UPDATES", 0.0 if once else np.inf)
                results += [fn(data, metric, k, dtype=np.float64, num_threads=threads)
                            for threads in (1, 2, 3)]
            assert_topk_equal(topk_arrays(results[0]), topk_arrays(expected))
            for other in results[1:]:
                np.testing.assert_array_equal(other.indptr, results[0].indptr)
                np.testing.assert_array_equal(other.indices, results[0].indices)
                np.testing.assert_array_equal(other.data, results[0].data)



@pytest.mark.parametrize("metric", ["jaccard", "cosine", "pearson", "msd"])
def test_long_rows_are_stored_in_rank_order(metric, dtype):
    """k=None rows are sorted by a bucket pass plus an insertion pass (a quicksort when a
    bucket is crowded): stored order is score descending, ties to the lower id, as the
    reference; msd on 1-5 ratings has many exact ties."""
    data = make_interactions(500, 320, 0.3, implicit=metric in ("jaccard", "cosine"), seed=12)
    for fn in (item_similarity, user_similarity):
        got, expected = both(fn, data, metric, None, dtype=dtype, num_threads=2)
        assert np.diff(got.indptr).max() >= 256
        rows = np.repeat(np.arange(got.shape[0]), np.diff(got.indptr))
        order = np.lexsort((got.indices, -got.data.astype(np.float64), rows))
        np.testing.assert_array_equal(order, np.arange(got.nnz))
        assert_topk_equal(topk_arrays(got), topk_arrays(expected), dtype=dtype)


def _own_pairs(rows, rng, values):
    """Random lower-triangle pairs (a, b < a), each row's b ascending, scores from values()."""
    counts = [int(rng.integers(0, a + 1)) for a in range(rows)]
    ids = [np.sort(rng.choice(a, count, replace=False)) for a, count in enumerate(counts)]
    return np.array(counts, dtype=np.int64), ids, [values(count) for count in counts]


def _mirror_reference(counts, ids, scores):
    """What mirror_rows must give: both (a, b) and (b, a), rows by score desc then id."""
    rows = np.concatenate([np.repeat(np.arange(counts.size), counts), np.concatenate(ids)])
    cols = np.concatenate([np.concatenate(ids), np.repeat(np.arange(counts.size), counts)])
    vals = np.concatenate(scores * 2)
    order = np.lexsort((cols, -vals.astype(np.float64), rows))
    indptr = np.concatenate(([0], np.cumsum(np.bincount(rows, minlength=counts.size))))
    return indptr, cols[order], vals[order]


@pytest.mark.parametrize("kind", ["ties", "spread", "crowded", "extreme"])
def test_mirror_rows_matches_a_lexsort(kind, dtype, index_dtype):
    """The hand-over and row sort of k=None, alone: exact ties (kept in id order), spread
    scores, one bucket crowded by an outlier (the quicksort fallback, then 16-bit keys for
    the rows after), and a score range too wide for the bucket map; any number of threads
    gives the same arrays."""
    from fastrec._kernels.similarity import mirror_rows

    rng = np.random.default_rng(3)
    if kind == "ties":
        values = lambda m: rng.integers(1, 4, m).astype(dtype) / 4
    elif kind == "spread":
        values = lambda m: rng.standard_normal(m).astype(dtype)
    elif kind == "crowded":  # ascending near-equal scores below one large score
        values = lambda m: np.concatenate(([1e6], 1 + np.arange(m - 1) * 1e-4))[:m].astype(dtype)
    else:
        big = np.finfo(dtype).max  # float64: hi - lo overflows
        values = lambda m: rng.choice(np.array([-big, big, 0.5, 0.25], dtype=dtype), m)
    counts, ids, scores = _own_pairs(300, rng, values)
    slots = np.concatenate(([0], np.cumsum(counts + 3))).astype(np.int64)  # rows with gaps
    own_ids = np.zeros(slots[-1], dtype=index_dtype)
    own_scores = np.zeros(slots[-1], dtype=dtype)
    for a in range(counts.size):
        own_ids[slots[a]:slots[a] + counts[a]] = ids[a]
        own_scores[slots[a]:slots[a] + counts[a]] = scores[a]
    indptr, expected_ids, expected_scores = _mirror_reference(counts, ids, scores)
    handed = np.bincount(np.concatenate(ids), minlength=counts.size).astype(np.int64)
    for threads in (1, 2, 3):
        got_indptr = np.empty(counts.size + 1, dtype=np.int64)
        got_ids = np.empty(2 * counts.sum(), dtype=index_dtype)
        got_scores = np.empty(2 * counts.sum(), dtype=dtype)
        mirror_rows(slots, counts, handed, own_ids, own_scores, got_indptr, got_ids, got_scores,
                    threads)
        np.testing.assert_array_equal(got_indptr, indptr)
        np.testing.assert_array_equal(got_ids, expected_ids)
        np.testing.assert_array_equal(got_scores, expected_scores)


@pytest.mark.parametrize("kind", ["ties", "spread", "crowded", "extreme", "equal", "skewed"])
def test_sorted_best_matches_reference(kind, dtype, index_dtype):
    """The top-k kernel's row selection alone (a score histogram, a gather, a quickselect
    in the k-th best's bucket, then a bucket sort): the k best by score, then lower id,
    for k below, at and above the row's length; the boundary bucket holding many ties,
    one crowded bucket, a range too wide to scale, equal scores, most scores low."""
    from fastrec._kernels.similarity import sorted_best
    from fastrec.reference.similarity import sorted_best as reference

    rng = np.random.default_rng(5)
    big = np.finfo(dtype).max
    values = {
        "ties": lambda m: rng.integers(1, 5, m) / 4,
        "spread": lambda m: rng.standard_normal(m),
        "crowded": lambda m: np.concatenate(([1e6], 1 + np.arange(m - 1) * 1e-4))[:m],
        "extreme": lambda m: rng.choice(np.array([-big, big, 0.5, 0.25]), m),
        "equal": lambda m: np.full(m, 0.5),
        "skewed": lambda m: np.where(rng.random(m) < 0.9, rng.random(m) * 1e-3, rng.random(m)),
    }[kind]
    for m in (0, 1, 2, 7, 40, 41, 300, 3000):
        scores = values(m).astype(dtype)
        ids = rng.permutation(m).astype(index_dtype) * 3  # any order, gaps
        for k in (0, 1, 5, 40, m, m + 1):
            got_scores, got_ids = scores.copy(), ids.copy()
            kept = sorted_best(got_scores, got_ids, k)
            expected_scores, expected_ids = reference(scores, ids, k)
            assert kept == min(k, m) == expected_ids.size
            np.testing.assert_array_equal(got_ids[:kept], expected_ids)
            np.testing.assert_array_equal(got_scores[:kept], expected_scores)


def _lower_arrays(x, value_dtype, index_dtype):
    """X (CSR) and its transpose as similarity_lower's six arrays."""
    t = sp.csr_array(x.T)
    return [np.ascontiguousarray(a, dtype=d) for m in (x, t)
            for a, d in ((m.data, value_dtype), (m.indices, index_dtype), (m.indptr, index_dtype))]


def _run_lower(arrays, measure, shrinkage, min_support, packed, threads):
    from fastrec._kernels import similarity as kernels

    n = arrays[2].shape[0] - 1
    rows = np.arange(n + 1, dtype=np.int64)
    slots = rows * (rows - 1) // 2
    index_dtype, value_dtype = arrays[1].dtype, arrays[0].dtype
    out = (np.zeros(slots[-1], index_dtype), np.zeros(slots[-1], value_dtype),
           np.zeros(n, np.int64), np.zeros(n, np.int64))
    kernels.similarity_lower(*arrays, kernels.MEASURES[measure], shrinkage, 0, min_support,
                             slots, *out, False, threads, packed)
    # each row's pairs, its first own_counts entries (the rest of its room is scratch)
    written = np.concatenate([np.arange(slots[a], slots[a] + out[2][a]) for a in range(n)]
                             + [np.empty(0, np.int64)]).astype(np.int64)
    return out[0][written], out[1][written], out[2], out[3]


def _run_topk(arrays, measure, shrinkage, min_support, k, mirror, packed, threads):
    from fastrec._kernels import similarity as kernels

    n = arrays[2].shape[0] - 1
    slots = np.arange(n + 1, dtype=np.int64) * k
    out = (np.zeros(slots[-1], arrays[1].dtype), np.zeros(slots[-1], arrays[0].dtype),
           np.zeros(n, np.int64))
    kernels.similarity_topk(*arrays, kernels.MEASURES[measure], shrinkage, 0, min_support,
                            slots, *out, kernels.MIRROR_MODES[mirror], threads, packed)
    return out


def test_similarity_lower_rejects_a_t_that_is_not_the_transpose():
    """Rows walk T's columns up to their own entry there, found by walking X's entries
    in order: a T with other column lengths, other rows in its columns (also with the
    same lengths), its rows out of order, a row index outside X's rows, or values
    outside the integer levels X's values are coded in (the packed sums read T's codes
    from T's values) is refused, with packed or double sums."""
    x = sp.csr_array(np.array([[1.0, 2.0], [3.0, 0.0], [4.0, 0.0]]))
    arrays = _lower_arrays(x, np.float64, np.int32)
    t_parts = lambda dense: _lower_arrays(sp.csr_array(np.array(dense)), np.float64, np.int32)[:3]
    other_lengths = t_parts([[1.0, 0.0, 0.0], [2.0, 0.0, 5.0]])
    other_rows = t_parts([[0.0, 1.0, 3.0], [2.0, 0.0, 0.0]])
    same_lengths = t_parts([[1.0, 3.0, 4.0], [0.0, 2.0, 0.0]])
    unsorted = [arrays[3], np.array([2, 1, 0, 0], np.int32), arrays[5]]
    # a row far outside, in the rows walked before row 2's own entry: refused before
    # any row runs (the walk would add to a row of the accumulator that is not there)
    outside = [arrays[3], np.array([0, 10**9, 2, 0], np.int32), arrays[5]]
    wrong_values = [t_parts([[1.0, 3.0, 9.0], [2.0, 0.0, 0.0]]),
                    t_parts([[1.0, 3.0, 4.0], [2.5, 0.0, 0.0]]),
                    t_parts([[1.0, 3.0, 4.0], [-2.0, 0.0, 0.0]])]
    for wrong in [other_lengths, other_rows, same_lengths, unsorted, outside] + wrong_values:
        arrays[3:] = wrong
        for packed in (True, False) if not any(wrong is w for w in wrong_values) else (True,):
            for threads in (1, 2):
                with pytest.raises(ValueError, match="not the transpose"):
                    _run_lower(arrays, "msd", 0.0, 1, packed, threads)


def test_similarity_topk_refuses_t_values_outside_x_levels():
    """The running top-k kernel codes T's values on X's integer levels for its packed
    sums: a value of T off those levels (above, below, between) is refused."""
    x = sp.csr_array(np.array([[1.0, 2.0], [3.0, 0.0], [4.0, 0.0]]))
    arrays = _lower_arrays(x, np.float64, np.int32)
    for value in (9.0, -2.0, 2.5):
        arrays[3] = np.array([1.0, 3.0, 4.0, value])
        for mirror in ("none", "top"):
            with pytest.raises(ValueError, match="T's values are not X's"):
                _run_topk(arrays, "msd", 0.0, 1, 2, mirror, True, 2)
        _run_topk(arrays, "msd", 0.0, 1, 2, "top", False, 2)  # double sums read T as it is


def test_mirror_rows_edge_cases():
    from fastrec._kernels.similarity import mirror_rows

    for n in (0, 1, 4):  # no rows, one row, rows without pairs
        indptr = np.full(n + 1, -1, dtype=np.int64)
        mirror_rows(np.zeros(n + 1, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64),
                    np.empty(0, np.int32), np.empty(0), indptr, np.empty(0, np.int32), np.empty(0), 2)
        np.testing.assert_array_equal(indptr, np.zeros(n + 1))
    one_pair = (np.array([0, 0, 1]), np.array([0, 1]))
    with pytest.raises(ValueError, match="twice the own entries"):
        mirror_rows(*one_pair, np.array([1, 0]), np.array([0], np.int32), np.ones(1),
                    np.empty(3, np.int64), np.empty(1, np.int32), np.empty(1), 1)
    with pytest.raises(ValueError, match="do not add up"):
        mirror_rows(*one_pair, np.array([0, 0]), np.array([0], np.int32), np.ones(1),
                    np.empty(3, np.int64), np.empty(2, np.int32), np.empty(2), 1)


@pytest.mark.parametrize("metric", ["msd", "pearson", "corated_cosine", "jaccard"])
def test_k_none_room_strategies_agree(monkeypatch, metric, index_dtype):
    """k=None gives every row b < a room (the triangle), or as many as share a column
    with it, or counts first: the same arrays, for 1 to 3 threads, int32 or int64 ids."""
    from fastrec import similarity as module

    data = make_interactions(300, 150, 0.02, implicit=metric == "jaccard", seed=13)
    by_user = sp.csr_array(data.csr, dtype=np.float64)
    parts = [(m.data, m.indices.astype(index_dtype), m.indptr.astype(index_dtype))
             for m in (by_user.tocsc(), by_user)]
    spec = module.METRICS[metric]
    triangle_bytes = 150 * 149 // 2 * (8 + np.dtype(index_dtype).itemsize)
    results = []
    for budget in (module.FULL_PASS_BYTES, triangle_bytes - 1, 0):
        monkeypatch.setattr(module, "FULL_PASS_BYTES", budget)
        for threads in (1, 2, 3):
            results.append(module._run_kernel(parts, 150, spec, 0.0, spec.min_support_floor, None,
                                              np.dtype(np.float64), threads, np.dtype(index_dtype)))
    expected = item_similarity(data, metric, None, dtype=np.float64, backend="numpy")
    assert_topk_equal(topk_arrays(results[0]), topk_arrays(expected))
    assert results[0].indices.dtype == index_dtype and results[0].nnz > 0
    for other in results[1:]:
        np.testing.assert_array_equal(other.indptr, results[0].indptr)
        np.testing.assert_array_equal(other.indices, results[0].indices)
        np.testing.assert_array_equal(other.data, results[0].data)


def test_k_none_reused_scratch_leaves_no_trace(dtype):
    """k=None keeps its own entries in reused scratch buffers: a call after larger ones
    (other data, metric, dtype) gives the arrays of a call in a fresh thread."""
    import threading

    small = make_interactions(60, 40, 0.2, seed=5)
    fresh = {}
    thread = threading.Thread(target=lambda: fresh.update(
        result=user_similarity(small, "msd", None, dtype=dtype, num_threads=2)))
    thread.start()
    thread.join()
    for other_dtype in (np.float32, np.float64):  # fill the buffers with other values
        item_similarity(make_interactions(80, 120, 0.3, seed=6), "pearson", None,
                        dtype=other_dtype, num_threads=2)
    got = user_similarity(small, "msd", None, dtype=dtype, num_threads=2)
    for name in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(got, name), getattr(fresh["result"], name))
    assert got.nnz > 0


def test_compact_rows_matches_reference(dtype, index_dtype):
    from fastrec._kernels.similarity import compact_rows
    from fastrec.reference.similarity import compact_rows as reference

    rng = np.random.default_rng(0)
    widths = rng.integers(0, 6, 50)
    slots = np.concatenate(([0], np.cumsum(widths))).astype(np.int64)
    counts = (widths * rng.random(50)).astype(np.int64)
    ids = rng.integers(0, 100, slots[-1]).astype(index_dtype)
    scores = rng.random(slots[-1]).astype(dtype)
    indptr = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    got_ids, got_scores = np.empty(indptr[-1], index_dtype), np.empty(indptr[-1], dtype)
    compact_rows(slots, counts, ids, scores, indptr, got_ids, got_scores, 2)
    expected_ids, expected_scores = reference(slots, counts, ids, scores)
    np.testing.assert_array_equal(got_ids, expected_ids)
    np.testing.assert_array_equal(got_scores, expected_scores)



@pytest.mark.parametrize("by_column", [False, True], ids=["rows", "columns"])
@pytest.mark.parametrize("shape", [(60, 40), (0, 5), (5, 0), (1, 1), (1, 30), (30, 1)])
def test_scale_to_unit_length_matches_reference_bit_for_bit(shape, by_column, dtype, index_dtype):
    """The cosine family's row scaling, by row (user rows) or by column (item rows): the
    kernel gives the reference's values exactly, on rows and columns that are empty,
    all zeros, or hold one value; 1, 2 or 3 threads."""
    from fastrec._kernels.similarity import scale_to_unit_length
    from fastrec.reference.similarity import scale_to_unit_length as reference

    rng = np.random.default_rng(1)
    matrix = sp.random_array(shape, density=0.3, format="csr", rng=rng,
                             data_sampler=lambda size: rng.standard_normal(size) * 10.0 ** rng.integers(-3, 4, size))
    if matrix.nnz:
        matrix.data[:3] = 0.0  # stored zeros; the first row may be all zeros
    indices, indptr = matrix.indices.astype(index_dtype), matrix.indptr.astype(index_dtype)
    values = matrix.data.copy()
    expected = reference(values, indices, indptr, shape[1], by_column, dtype)
    norms = np.sqrt(np.asarray((matrix.multiply(matrix)).sum(axis=0 if by_column else 1)).ravel())
    for threads in (1, 2, 3):
        got = np.full(values.size, np.nan, dtype=dtype)
        scale_to_unit_length(values, indices, indptr, shape[1], by_column, got, threads)
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(values, matrix.data)  # the input is left alone
    scaled = sp.csr_array((expected.astype(np.float64), indices, indptr), shape=shape)
    lengths = np.sqrt(np.asarray(scaled.multiply(scaled).sum(axis=0 if by_column else 1)).ravel())
    np.testing.assert_allclose(lengths, np.where(norms > 0, 1.0, 0.0), rtol=1e-6)


@pytest.mark.parametrize("shape", [(60, 40), (0, 5), (5, 0), (1, 1), (1, 30), (30, 1)])
def test_baseline_residuals_match_reference_bit_for_bit(shape, dtype, index_dtype):
    """pearson_baseline's values: the kernel gives the reference's exactly, on empty
    rows and columns, one user, one item; 1, 2 or 3 threads; the inputs left alone."""
    from fastrec._kernels.similarity import baseline_residuals
    from fastrec.reference.similarity import baseline_residuals as reference

    rng = np.random.default_rng(2)
    matrix = sp.random_array(shape, density=0.3, format="csr", rng=rng,
                             data_sampler=lambda size: rng.integers(1, 6, size).astype(np.float64))
    indices, indptr = matrix.indices.astype(index_dtype), matrix.indptr.astype(index_dtype)
    values = matrix.data.copy()
    mean, user_bias, item_bias = 3.53, rng.standard_normal(shape[0]), rng.standard_normal(shape[1])
    inputs = [values.copy(), user_bias.copy(), item_bias.copy()]
    expected = reference(values, indices, indptr, mean, user_bias, item_bias, dtype)
    users = np.repeat(np.arange(shape[0]), np.diff(matrix.indptr))
    np.testing.assert_allclose(expected, values - mean - user_bias[users] - item_bias[matrix.indices],
                               rtol=1e-6, atol=1e-6)
    for threads in (1, 2, 3):
        got = np.full(values.size, np.nan, dtype=dtype)
        baseline_residuals(values, indices, indptr, mean, user_bias, item_bias, got, threads)
        np.testing.assert_array_equal(got, expected)
        for array, before in zip((values, user_bias, item_bias), inputs):
            np.testing.assert_array_equal(array, before)
    with pytest.raises(ValueError, match="must match the matrix"):
        baseline_residuals(values, indices, indptr, mean, user_bias[:-1] if shape[0] else np.ones(1),
                           item_bias, np.empty(values.size, dtype), 1)


@pytest.mark.parametrize("shape", [(50, 40), (0, 5), (5, 0), (1, 1)])
def test_transpose_kernel_gives_tocsc_arrays(shape, dtype, index_dtype):
    from fastrec._kernels.similarity import transpose

    rng = np.random.default_rng(0)
    matrix = sp.random_array(shape, density=0.2, format="csr", rng=rng, dtype=dtype)
    matrix.indices = matrix.indices.astype(index_dtype)
    matrix.indptr = matrix.indptr.astype(index_dtype)
    expected = matrix.tocsc()
    for threads in (1, 2, 3):
        data, indices = np.empty_like(matrix.data), np.empty(matrix.nnz, index_dtype)
        indptr = np.empty(shape[1] + 1, index_dtype)
        transpose(matrix.data, matrix.indices, matrix.indptr, data, indices, indptr, threads)
        np.testing.assert_array_equal(indptr, expected.indptr)
        np.testing.assert_array_equal(indices, expected.indices)
        np.testing.assert_array_equal(data, expected.data)


def test_num_threads_agnostic():
    data = make_interactions(300, 120, 0.05, seed=1)
    for metric in ("cosine", "pearson"):
        one = item_similarity(data, metric, 10, num_threads=1)
        two = item_similarity(data, metric, 10, num_threads=2)
        np.testing.assert_array_equal(one.indices, two.indices)
        np.testing.assert_array_equal(one.data, two.data)


def test_rows_are_sorted_self_excluded_and_bounded():
    data = make_interactions(80, 50, 0.2, implicit=True, seed=2)
    sim = item_similarity(data, "cosine", 7)
    ids, scores = topk_arrays(sim)
    assert np.diff(sim.indptr).max() <= 7
    assert not (ids == np.arange(50)[:, None]).any()
    assert (np.diff(np.where(np.isinf(scores), -2.0, scores), axis=1) <= 0).all()
    assert sim.data.min() > 0 and sim.data.max() <= 1 + 1e-6  # cosine of non-negative data


def test_symmetric_before_top_k_and_invariant_to_row_order():
    data = make_interactions(60, 30, 0.2, seed=4)
    full = item_similarity(data, "pearson", None, dtype=np.float64)
    np.testing.assert_allclose(full.toarray(), full.toarray().T, atol=1e-12)
    users, items, ratings, _ = data.to_arrays()
    order = np.random.default_rng(0).permutation(users.size)
    shuffled = Interactions.from_arrays(users[order] + 1000, items[order], ratings[order])
    again = item_similarity(shuffled, "pearson", None, dtype=np.float64)
    np.testing.assert_allclose(again.toarray(), full.toarray(), atol=1e-12)


def test_ties_go_to_the_lower_id():
    # items 1, 2 and 3 are identical, so each is equally similar to the others
    data = Interactions.from_arrays([0, 0, 0, 1, 1, 1], [1, 2, 3, 1, 2, 3])
    ids, _ = topk_arrays(item_similarity(data, "cosine", 1))
    assert ids.ravel().tolist() == [1, 0, 0]  # indices of items 2, 1, 1


def test_edge_cases():
    one_user = Interactions.from_arrays([7, 7, 7], [1, 2, 3], [1.0, 2.0, 3.0])
    sim = item_similarity(one_user, "cosine", 10)
    assert sim.shape == (3, 3) and np.diff(sim.indptr).tolist() == [2, 2, 2]
    assert user_similarity(one_user, "cosine", 10).nnz == 0      # no other user
    assert user_similarity(one_user, "pearson", None).nnz == 0
    assert np.diff(item_similarity(one_user, "msd", None).indptr).tolist() == [2, 2, 2]
    data = make_interactions(10, 8, 0.5)
    assert item_similarity(data, "cosine", 100).nnz == item_similarity(data, "cosine", None).nnz
    assert item_similarity(data, "corated_cosine", 5, min_support=1000).nnz == 0


def test_scipy_input_any_format_and_not_modified():
    dense = (np.random.default_rng(0).random((30, 12)) < 0.3) * 2.0
    expected = item_similarity(sp.csr_array(dense), "cosine", 4)
    for fmt in ("coo", "csc", "lil"):
        matrix = sp.csr_array(dense).asformat(fmt)
        before = matrix.copy()
        got = item_similarity(matrix, "cosine", 4)
        np.testing.assert_array_equal(got.indices, expected.indices)
        assert (abs(matrix - before)).sum() == 0


def test_content_similarity_from_item_features():
    data = fastrec.datasets.synthetic(200, 60, 2000, seed=0)
    sim = content_similarity(data, "jaccard", 5)
    features = data.item_features.toarray() > 0
    ids, scores = topk_arrays(sim)
    a, b = 0, ids[0, 0]
    inter, union = (features[a] & features[b]).sum(), (features[a] | features[b]).sum()
    assert scores[0, 0] == pytest.approx(inter / union)
    with pytest.raises(ValueError, match="metric must be one of"):
        content_similarity(data, "pearson")


@pytest.mark.filterwarnings("ignore:Method expects CSR input")
def test_matches_implicit_cosine_tfidf_bm25():
    nn = pytest.importorskip("implicit.nearest_neighbours")
    data = make_interactions(200, 60, 0.1, seed=5)
    counts = sp.csr_matrix(data.csr)
    for metric, model in (("cosine", nn.CosineRecommender(K=61)), ("tfidf", nn.TFIDFRecommender(K=61)),
                          ("bm25", nn.BM25Recommender(K=61))):
        model.fit(counts, show_progress=False)
        theirs = sp.csr_matrix(model.similarity).toarray()
        np.fill_diagonal(theirs, 0)
        ours = item_similarity(data, metric, None, dtype=np.float64).toarray()
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6, err_msg=metric)


SURPRISE = [("cosine", "corated_cosine"), ("msd", "msd"), ("pearson", "pearson"),
            ("pearson_baseline", "pearson_baseline")]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("user_based", [False, True], ids=["item", "user"])
@pytest.mark.parametrize("name, ours", SURPRISE, ids=[s for s, _ in SURPRISE])
def test_matches_surprise_on_ml100k(ml100k_path, name, ours, user_based, dtype):
    """Surprise's numbers within 1e-5, in double and in the default float32."""
    surprise = pytest.importorskip("surprise")
    pytest.importorskip("pandas")
    data = fastrec.datasets.load_movielens(ml100k_path / "u1.base")
    trainset = surprise_trainset(data)
    algo = surprise.KNNBasic(sim_options={"name": name, "user_based": user_based}, verbose=False)
    algo.trainset, algo.bu, algo.bi = trainset, None, None
    theirs = algo.compute_similarities()
    fn = user_similarity if user_based else item_similarity
    mine = fn(data, ours, None, dtype=dtype)
    assert_surprise_similarities_equal(mine, theirs, data, trainset, user_based, atol=1e-5)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(metric="euclid"), ValueError, "metric must be one of"),
    (dict(k=0), ValueError, "k must be >= 1"),
    (dict(k=2.5), TypeError, "k must be an int"),
    (dict(shrinkage=-1.0), ValueError, "shrinkage must be a finite number >= 0"),
    (dict(min_support=0), ValueError, "min_support must be >= 1"),
    (dict(dtype=np.int32), TypeError, "dtype must be float32 or float64"),
    (dict(backend="cuda"), ValueError, "backend must be one of"),
])
def test_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        item_similarity(make_interactions(), **kwargs)


@pytest.mark.parametrize("metric", ["pearson", "msd", "adjusted_cosine", "pearson_baseline", "corated_cosine"])
def test_rating_metrics_reject_implicit_data(metric):
    with pytest.raises(ValueError, match="needs explicit ratings"):
        item_similarity(make_interactions(implicit=True), metric)


def test_rejects_nan_and_negative_weights():
    bad = sp.csr_array(np.array([[np.nan, 1.0], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="NaN"):
        item_similarity(bad)
    negative = sp.csr_array(np.array([[-1.0, 1.0], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="non-negative"):
        item_similarity(negative, "bm25")


@pytest.mark.parametrize("metric", ["msd", "pearson", "corated_cosine", "jaccard"])
def test_stored_values_come_from_the_cached_csc(monkeypatch, metric, dtype):
    """Measures on the stored values take R^T from the data's CSC instead of transposing:
    the same arrays, so the same result, for float32 or float64 ratings."""
    from fastrec import similarity as module

    for values_dtype in (np.float32, np.float64):
        data = make_interactions(80, 60, 0.2, dtype=values_dtype, implicit=metric == "jaccard",
                                 seed=14)
        for k in (None, 5):
            for fn in (item_similarity, user_similarity):
                cached = fn(data, metric, k, dtype=dtype, num_threads=2)
                monkeypatch.setattr(module, "RAW_VALUE_METRICS", ())
                transposed = fn(data, metric, k, dtype=dtype, num_threads=2)
                monkeypatch.undo()
                np.testing.assert_array_equal(cached.indptr, transposed.indptr)
                np.testing.assert_array_equal(cached.indices, transposed.indices)
                np.testing.assert_array_equal(cached.data, transposed.data)


@pytest.mark.parametrize("measure", ["msd", "corated_cosine", "pearson"])
@pytest.mark.parametrize("values", ["stars", "signed", "sixteen", "half_stars", "signed_halves"])
def test_packed_integer_sums_give_the_double_scores_bit_for_bit(measure, values, dtype,
                                                                 index_dtype):
    """Ratings in whole or half steps add their co-rated sums as packed integers: the
    same scores, ids and counts as the double sums, with shrinkage and min_support, on
    rows dense enough to score every b < a and rows sparse enough to list their b."""
    from fastrec._kernels.similarity import packed_levels

    rng = np.random.default_rng(7)
    # the values are low .. high in steps of 1 / per_unit
    low, high, per_unit = {"stars": (1, 5, 1), "signed": (-4, 4, 1), "sixteen": (-8, 7, 1),
                           "half_stars": (1, 10, 2), "signed_halves": (-8, 7, 2)}[values]
    n, m = 120, 90
    density = np.where(np.arange(n) < 60, 0.5, 0.03)[:, None]  # dense and sparse rows
    dense = (rng.random((n, m)) < density) * rng.integers(low, high + 1, (n, m)) / per_unit
    dense[5] = 0  # an empty row
    x = sp.csr_array(dense.astype(np.float64))  # zeros are not stored
    arrays = _lower_arrays(x, dtype, index_dtype)
    assert packed_levels(arrays[0], arrays[2]) == (high - low + 1, 1 / per_unit)
    for shrinkage, min_support in ((0.0, 1), (25.0, 3)):
        expected = _run_lower(arrays, measure, shrinkage, min_support, False, 1)
        assert expected[2].sum() > 0
        for threads in (1, 2):
            got = _run_lower(arrays, measure, shrinkage, min_support, True, threads)
            for g, e in zip(got, expected):
                np.testing.assert_array_equal(g, e)
        for mirror in ("none", "top"):  # the running top-k kernel, k = 9
            expected = _run_topk(arrays, measure, shrinkage, min_support, 9, mirror, False, 1)
            assert expected[2].sum() > 0
            for threads in (1, 2):
                got = _run_topk(arrays, measure, shrinkage, min_support, 9, mirror, True, threads)
                for g, e in zip(got, expected):
                    np.testing.assert_array_equal(g, e)


def test_packed_levels_only_where_the_sums_are_exact():
    from fastrec._kernels.similarity import packed_levels

    indptr = np.array([0, 2, 4], np.int64)
    assert packed_levels(np.array([1.0, 5.0, 3.0, 2.0]), indptr) == (5, 1.0)
    assert packed_levels(np.array([0.0, 15.0, 3.0, 2.0]), indptr) == (16, 1.0)
    assert packed_levels(np.array([0.0, 16.0, 3.0, 2.0]), indptr) == (0, 1.0)  # 17 levels
    # half stars count in halves: 1 .. 4.5 is 8 levels, 0.5 .. 8 is 16, 0.5 .. 8.5 is 17
    assert packed_levels(np.array([1.0, 4.5, 3.0, 2.0]), indptr) == (8, 0.5)
    assert packed_levels(np.array([0.5, 8.0, 3.0, 2.0], np.float32), indptr) == (16, 0.5)
    assert packed_levels(np.array([0.5, 8.5, 3.0, 2.0]), indptr) == (0, 1.0)
    assert packed_levels(np.array([-2.5, 1.0, 3.0, 2.0]), indptr) == (12, 0.5)
    for almost in (1.0 + 2.0**-40, 2.25, 1e-300, 3.0 - 2.0**-50, 2.5 + 2.0**-45):
        assert packed_levels(np.array([1.0, almost, 3.0, 2.0]), indptr) == (0, 1.0)
    assert packed_levels(np.array([-2.0, -1.0, -3.0, -2.0], np.float32), indptr) == (3, 1.0)
    assert packed_levels(np.empty(0), np.zeros(3, np.int64)) == (0, 1.0)
    # sums of (2 * 10000)^2 per co-rated entry reach 2**31 past 5 entries a row
    row = np.full(5, 10000.0)
    assert packed_levels(row, np.array([0, 5], np.int64)) == (1, 1.0)
    assert packed_levels(np.full(6, 10000.0), np.array([0, 6], np.int64)) == (0, 1.0)
    # in half steps the bound is on the values counted in halves: 5000 is 10000 of them
    assert packed_levels(np.array([5000.0, 5000.0, 5000.0, 5000.0, 4999.5]),
                         np.array([0, 5], np.int64)) == (2, 0.5)
    assert packed_levels(np.array([5000.0] * 5 + [4999.5]), np.array([0, 6], np.int64)) == (0, 1.0)
