"""Rating and ranking metrics against hand-computed cases and a plain loop."""
import numpy as np
import pytest

from fastrec import Interactions, metrics
from fastrec.testing import make_interactions


def test_rating_errors_hand_computed():
    assert metrics.mse([1, 2, 3], [1, 2, 5]) == pytest.approx(4 / 3)
    assert metrics.rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(np.sqrt(4 / 3))
    assert metrics.mae([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shape"):
        metrics.rmse([1, 2], [1])
    with pytest.raises(ValueError, match="no predictions"):
        metrics.mae([], [])


def test_ranking_hand_computed():
    # user 0 has test items {1, 3}; user 1 has none (skipped); user 2 has {0}
    test = Interactions.from_arrays([0, 0, 2], [1, 3, 0], user_ids=[0, 1, 2], item_ids=[0, 1, 2, 3])
    top = np.array([[3, 2, 1], [0, 1, 2], [2, 1, -1]])
    got = metrics.ranking_metrics(top, np.array([0, 1, 2]), test, ks=(1, 3))
    assert got["n_users"] == 2 and got["n_skipped_users"] == 1
    assert got["precision@1"] == pytest.approx((1 + 0) / 2)
    assert got["precision@3"] == pytest.approx((2 / 3 + 0) / 2)
    assert got["recall@3"] == pytest.approx((1.0 + 0.0) / 2)
    ndcg0 = (1 + 1 / np.log2(4)) / (1 + 1 / np.log2(3))
    assert got["ndcg@3"] == pytest.approx(ndcg0 / 2)
    assert got["hit_rate@3"] == pytest.approx(0.5)


def plain_ndcg(top, users, test, k):
    values = []
    for row, u in zip(top, users):
        relevant = set(test.csr[[u]].indices.tolist())
        if not relevant:
            continue
        dcg = sum(1 / np.log2(r + 2) for r, item in enumerate(row[:k]) if item in relevant)
        idcg = sum(1 / np.log2(r + 2) for r in range(min(k, len(relevant))))
        values.append(dcg / idcg)
    return np.mean(values)


def test_ranking_matches_plain_loop(seed):
    test = make_interactions(60, 30, 0.1, implicit=True, seed=seed)
    rng = np.random.default_rng(seed)
    top = np.array([rng.permutation(30)[:10] for _ in range(60)])
    users = np.arange(60)
    got = metrics.ranking_metrics(top, users, test, ks=(5, 10))
    assert got["ndcg@5"] == pytest.approx(plain_ndcg(top, users, test, 5))
    assert got["ndcg@10"] == pytest.approx(plain_ndcg(top, users, test, 10))


def test_ranking_validates_cutoffs():
    test = make_interactions(5, 5, 0.5)
    with pytest.raises(ValueError, match="cut-offs"):
        metrics.ranking_metrics(np.zeros((5, 3), int), np.arange(5), test, ks=(4,))


def test_coverage():
    assert metrics.coverage(np.array([[0, 1], [1, -1]]), 4) == 0.5


def test_map_and_mrr_hand_computed():
    # user 0 has test items {1, 3}: hits at ranks 1 and 3 of [3, 2, 1]
    test = Interactions.from_arrays([0, 0, 2], [1, 3, 0], user_ids=[0, 1, 2], item_ids=[0, 1, 2, 3])
    top = np.array([[3, 2, 1], [0, 1, 2], [2, 0, -1]])
    got = metrics.ranking_metrics(top, np.array([0, 1, 2]), test, ks=(1, 3))
    assert got["map@3"] == pytest.approx(((1 / 1 + 2 / 3) / 2 + (1 / 2) / 1) / 2)
    assert got["mrr@3"] == pytest.approx((1.0 + 0.5) / 2)
    assert got["map@1"] == pytest.approx((1.0 + 0.0) / 2)
    assert got["mrr@1"] == pytest.approx(0.5)


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_ranking_kernel_matches_reference(seed, index_dtype, num_threads):
    from fastrec._kernels.metrics import ranking_rows
    from fastrec.reference.metrics import ranking_rows as reference_rows

    rng = np.random.default_rng(seed)
    test = make_interactions(80, 40, 0.15, empty_users=5, seed=seed)
    users = np.flatnonzero(test.user_counts > 0)
    top = np.array([rng.permutation(40)[:12] for _ in users])
    top[rng.random(top.shape) < 0.1] = -1  # padding anywhere is never a hit
    ks = np.array([1, 5, 12])
    train = make_interactions(80, 40, 0.2, empty_users=5, seed=seed + 1)  # overlaps test at times
    got = np.empty((7, 3, users.size))
    rows = np.arange(users.size, dtype=np.int64)
    csr = [a.astype(index_dtype) for a in (test.csr.indptr, test.csr.indices, train.csr.indptr,
                                           train.csr.indices)]
    ranking_rows(top.astype(np.int64), rows, users.astype(np.int64), *csr, 40, ks, got, num_threads)
    expected = reference_rows(top, rows, users, test.csr.indptr, test.csr.indices, train.csr.indptr,
                              train.csr.indices, 40, list(ks))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    compiled = metrics.ranking_metrics(top, users, test, ks=ks, train=train)
    numpy = metrics.ranking_metrics(top, users, test, ks=ks, train=train, backend="numpy")
    assert compiled.keys() == numpy.keys()
    for key in compiled:
        assert compiled[key] == pytest.approx(numpy[key], rel=1e-12)


def test_ranking_rejects_bad_input():
    test = make_interactions(10, 8, 0.3)
    with pytest.raises(ValueError, match="must be indices"):
        metrics.ranking_metrics(np.zeros((1, 3), int), np.array([10]), test, ks=(1,))
    with pytest.raises(ValueError, match="item indices below 8"):
        metrics.ranking_metrics(np.full((1, 3), 8), np.array([0]), test, ks=(1,))
    with pytest.raises(TypeError, match="integer indices"):
        metrics.ranking_metrics(np.zeros((1, 3)), np.array([0]), test, ks=(1,))
    with pytest.raises(ValueError, match="backend"):
        metrics.ranking_metrics(np.zeros((1, 3), int), np.array([0]), test, backend="gpu")
    empty = metrics.ranking_metrics(np.zeros((0, 3), int), np.zeros(0, int), test, ks=(2,))
    assert empty["n_users"] == 0 and np.isnan(empty["ndcg@2"])


def test_log_loss_hand_computed_and_checks():
    assert metrics.log_loss([1, 0], [0.8, 0.4]) == pytest.approx(-(np.log(0.8) + np.log(0.6)) / 2)
    assert np.isfinite(metrics.log_loss([1, 0], [0.0, 1.0]))  # clipped, not infinite
    with pytest.raises(ValueError, match="0/1 labels"):
        metrics.log_loss([2, 0], [0.5, 0.5])
    with pytest.raises(ValueError, match="probabilities"):
        metrics.log_loss([1, 0], [1.5, 0.5])


def plain_auc(top, user, test, train, k):
    """AUC by brute force over every (relevant, negative) pair, listed items ranked first
    in list order and every other item tied below them."""
    n_items = test.n_items
    relevant = set(test.csr[[user]].indices.tolist())
    seen = set(train.csr[[user]].indices.tolist()) - relevant if train is not None else set()
    rank = {item: r for r, item in enumerate(top[:k].tolist()) if item >= 0}
    score = [k - rank[i] if i in rank else 0 for i in range(n_items)]
    negatives = [i for i in range(n_items) if i not in relevant and i not in seen]
    if not negatives:
        return 1.0
    pairs = [1.0 if score[p] > score[q] else 0.5 if score[p] == score[q] else 0.0
             for p in relevant for q in negatives]
    return float(np.mean(pairs))


@pytest.mark.parametrize("with_train", [False, True])
def test_auc_matches_brute_force(seed, with_train):
    test = make_interactions(30, 25, 0.12, implicit=True, seed=seed)
    train = make_interactions(30, 25, 0.3, implicit=True, seed=seed + 7) if with_train else None
    rng = np.random.default_rng(seed)
    top = np.array([rng.permutation(25)[:8] for _ in range(30)])
    top[rng.random(top.shape) < 0.15] = -1
    users = np.arange(30)
    for backend in ("compiled", "numpy"):
        got = metrics.ranking_metrics(top, users, test, ks=(3, 8), train=train, backend=backend)
        for k in (3, 8):
            expected = np.mean([plain_auc(top[u], u, test, train, k) for u in users
                                if test.user_counts[u] > 0])
            assert got[f"auc@{k}"] == pytest.approx(expected, rel=1e-12)


def test_auc_hand_computed():
    # 5 items; user 0 relevant {1}; train {4}: negatives {0, 2, 3}
    test = Interactions.from_arrays([0], [1], user_ids=[0], item_ids=[0, 1, 2, 3, 4])
    train = Interactions.from_arrays([0], [4], user_ids=[0], item_ids=[0, 1, 2, 3, 4])
    top = np.array([[2, 1, 0]])
    got = metrics.ranking_metrics(top, np.array([0]), test, ks=(1, 2, 3), train=train)
    assert got["auc@2"] == pytest.approx(2 / 3)  # above 0 and 3, below 2
    assert got["auc@3"] == pytest.approx(2 / 3)  # listed above 0 now, still below 2
    assert got["auc@1"] == pytest.approx(0.5 * 2 / 3)  # unlisted: tied with 0 and 3, below 2
    no_train = metrics.ranking_metrics(top, np.array([0]), test, ks=(2,))
    assert no_train["auc@2"] == pytest.approx(3 / 4)  # 4 is a negative too, below


def test_novelty_hand_computed():
    # 4 users; item 0 has 4 of them, item 1 has 1, item 2 none
    train = Interactions.from_arrays([0, 1, 2, 3, 0], [0, 0, 0, 0, 1], user_ids=[0, 1, 2, 3],
                                     item_ids=[0, 1, 2])
    top = np.array([[0, 1], [2, -1], [-1, -1]])
    assert metrics.novelty(top, train) == pytest.approx(((0 + 2) / 2 + 2) / 2)
    with pytest.raises(ValueError, match="below 3"):
        metrics.novelty(np.array([[3]]), train)


def test_intra_list_diversity_hand_computed():
    import scipy.sparse as sp

    sim = sp.csr_matrix(np.array([[1.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.4, 1.0]]))
    top = np.array([[0, 1, 2], [1, 1, -1], [2, -1, -1]])  # the second list has one distinct item
    expected = 1 - (0.5 + 0.5 + 0.2 + 0.4) / 6
    for backend in ("compiled", "numpy"):
        assert metrics.intra_list_diversity(top, sim, backend=backend) == pytest.approx(expected)
    with pytest.raises(TypeError, match="square"):
        metrics.intra_list_diversity(top, sim[:2])
    with pytest.raises(ValueError, match="NaN"):
        metrics.intra_list_diversity(top, sp.csr_matrix(np.full((3, 3), np.nan)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_intra_list_diversity_kernel_matches_reference(seed, dtype, index_dtype, num_threads):
    import scipy.sparse as sp

    from fastrec._kernels.metrics import list_similarity_rows
    from fastrec.reference.metrics import list_similarity_rows as reference_rows

    rng = np.random.default_rng(seed)
    sim = sp.random(50, 50, density=0.2, format="csr", random_state=seed, dtype=dtype)
    sim.data[sim.indptr[3]:sim.indptr[4]] = 0  # an empty row
    sim.eliminate_zeros()
    top = rng.integers(-1, 50, (40, 10))  # repeats and padding
    total = np.empty(40)
    distinct = np.empty(40, dtype=np.int64)
    list_similarity_rows(top, sim.indptr.astype(index_dtype), sim.indices.astype(index_dtype), sim.data,
                         50, total, distinct, num_threads)
    expected_total, expected_distinct = reference_rows(top, sim)
    np.testing.assert_allclose(total, expected_total, rtol=1e-6 if dtype == np.float32 else 1e-12)
    np.testing.assert_array_equal(distinct, expected_distinct)
    np.testing.assert_array_equal(distinct, [len(set(r[r >= 0].tolist())) for r in top])
