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
    got = np.empty((6, 3, users.size))
    rows = np.arange(users.size, dtype=np.int64)
    ranking_rows(top.astype(np.int64), rows, users.astype(np.int64),
                 test.csr.indptr.astype(index_dtype), test.csr.indices.astype(index_dtype), 40, ks,
                 got, num_threads)
    expected = reference_rows(top, rows, users, test.csr.indptr, test.csr.indices, 40, list(ks))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    compiled = metrics.ranking_metrics(top, users, test, ks=ks)
    numpy = metrics.ranking_metrics(top, users, test, ks=ks, backend="numpy")
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
