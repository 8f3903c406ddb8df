"""The sampled evaluation protocol of the NCF paper: negatives, ranks, HR and NDCG."""
import math

import numpy as np
import pytest

import fastrec
from fastrec.data import Interactions
from fastrec.evaluation import evaluate_sampled
from fastrec.metrics import sampled_ranking_metrics
from fastrec.model_selection import leave_k_out, sample_negatives


# ----------------------------------------------------------------------------- helpers
def seen_items(train, test, user):
    """Item indices the user has in train or test."""
    rows = [d.csr.indices[d.csr.indptr[user]:d.csr.indptr[user + 1]] for d in (train, test)]
    return set(np.concatenate(rows).tolist())


def loop_metrics(model, train, users, candidates, k):
    """HR@k and NDCG@k from model.predict, one pair at a time (pessimistic ties)."""
    hits, gains = [], []
    for user, row in zip(users.tolist(), candidates.tolist(), strict=True):
        raw_user = train.user_ids[user]
        scores = [model.predict(raw_user, train.item_ids[item]) for item in row]
        rank = 1 + sum(score >= scores[0] for score in scores[1:])
        hits.append(rank <= k)
        gains.append(1 / math.log2(rank + 1) if rank <= k else 0.0)
    return sum(hits) / len(hits), sum(gains) / len(gains)


class Oracle:
    """Scores 1 for the test pairs and 0 elsewhere: a perfect model."""

    def __init__(self, test):
        self.test = test

    def fit(self, data):
        return self

    def predict(self, users, items):
        test = self.test
        keys = test.user_index(users).astype(np.int64) * test.n_items + test.item_index(items)
        test_keys = test.entry_users.astype(np.int64) * test.n_items + test.csr.indices
        return np.isin(keys, test_keys).astype(np.float64)

    def __repr__(self):
        return "Oracle()"


@pytest.fixture(scope="module")
def split():
    data = fastrec.datasets.synthetic(300, 400, 9_000, kind="implicit", seed=5)
    return leave_k_out(data, 1, by="time", random_state=0)


# -------------------------------------------------------------- sampled_ranking_metrics
def test_metrics_hand_computed_ranks():
    # positive at rank 1, 10, 11 (strictly beaten by 0, 9, 10 negatives) among 12 negatives
    rows = []
    for n_above in (0, 9, 10):
        rows.append([0.5] + [1.0] * n_above + [0.0] * (12 - n_above))
    got = sampled_ranking_metrics(np.array(rows), k=10)
    assert got["n_users"] == 3
    assert got["hit_rate@10"] == pytest.approx(2 / 3)
    assert got["ndcg@10"] == pytest.approx((1.0 + 1 / math.log2(11)) / 3)
    assert sampled_ranking_metrics(np.array(rows[2:]), k=10)["hit_rate@10"] == 0.0
    assert sampled_ranking_metrics(np.array(rows[2:]), k=11)["ndcg@11"] == pytest.approx(1 / math.log2(12))


def test_metrics_ties_are_pessimistic():
    # one negative above, two tied with the positive: rank 4
    got = sampled_ranking_metrics([[2.0, 3.0, 2.0, 2.0, 1.0, 0.0]], k=(3, 4))
    assert got["hit_rate@3"] == 0.0 and got["ndcg@3"] == 0.0
    assert got["hit_rate@4"] == 1.0 and got["ndcg@4"] == pytest.approx(1 / math.log2(5))


def test_metrics_constant_scores_rank_last():
    scores = np.ones((7, 101))
    got = sampled_ranking_metrics(scores, k=(1, 10, 100, 101))
    for cut in (1, 10, 100):
        assert got[f"hit_rate@{cut}"] == 0.0 and got[f"ndcg@{cut}"] == 0.0
    assert got["hit_rate@101"] == 1.0 and got["ndcg@101"] == pytest.approx(1 / math.log2(102))
    assert list(got) == ["hit_rate@1", "ndcg@1", "hit_rate@10", "ndcg@10", "hit_rate@100",
                         "ndcg@100", "hit_rate@101", "ndcg@101", "n_users"]


def test_metrics_integer_and_float32_scores():
    assert sampled_ranking_metrics(np.array([[3, 1, 2]]), k=1)["hit_rate@1"] == 1.0
    assert sampled_ranking_metrics(np.array([[1, 1, 2]], dtype=np.float32), k=2)["hit_rate@2"] == 0.0


def test_metrics_reject_nan_and_bad_input():
    with pytest.raises(ValueError, match="NaN in 1 of 2 rows"):
        sampled_ranking_metrics([[1.0, 0.0], [np.nan, 0.0]])
    with pytest.raises(ValueError, match="shape"):
        sampled_ranking_metrics([1.0, 2.0])
    with pytest.raises(ValueError, match="k must be >= 1"):
        sampled_ranking_metrics([[1.0, 0.0]], k=0)
    with pytest.raises(TypeError, match="ints or floats"):
        sampled_ranking_metrics(np.array([["a", "b"]]))


def test_metrics_empty_is_nan():
    got = sampled_ranking_metrics(np.zeros((0, 5)))
    assert got["n_users"] == 0 and math.isnan(got["hit_rate@10"]) and math.isnan(got["ndcg@10"])


# --------------------------------------------------------------------- sample_negatives
def test_negatives_are_unseen_distinct_and_follow_the_test_item(split):
    train, test = split
    users, candidates = sample_negatives(train, test, 100, random_state=0)
    assert candidates.dtype == np.int64 and candidates.shape == (test.nnz, 101)
    np.testing.assert_array_equal(users, test.entry_users)
    np.testing.assert_array_equal(candidates[:, 0], test.csr.indices)
    for user, row in zip(users.tolist(), candidates, strict=True):
        negatives = row[1:]
        assert np.unique(negatives).size == 100
        assert negatives.min() >= 0 and negatives.max() < test.n_items
        assert not seen_items(train, test, user) & set(negatives.tolist())


def test_negatives_one_row_per_test_entry():
    data = fastrec.datasets.synthetic(100, 300, 4_000, kind="implicit", seed=2)
    train, test = leave_k_out(data, 3, by="time", random_state=0)
    users, candidates = sample_negatives(train, test, 50, random_state=1)
    assert users.size == test.nnz == 3 * np.count_nonzero(test.user_counts)
    for user, row in zip(users.tolist(), candidates, strict=True):
        assert row[0] in seen_items(train, test, user)  # one of the user's test items
        assert not seen_items(train, test, user) & set(row[1:].tolist())  # no test item either


def test_negatives_in_many_blocks(split, monkeypatch):
    from fastrec import model_selection

    monkeypatch.setattr(model_selection, "NEGATIVE_BLOCK_DRAWS", 500)  # a few rows per block
    train, test = split
    users, candidates = sample_negatives(train, test, 100, random_state=0)
    for user, row in zip(users.tolist(), candidates, strict=True):
        assert np.unique(row[1:]).size == 100
        assert not seen_items(train, test, user) & set(row[1:].tolist())


def test_negatives_deterministic_and_seeded(split):
    train, test = split
    _, a = sample_negatives(train, test, 20, random_state=7)
    _, b = sample_negatives(train, test, 20, random_state=7)
    _, c = sample_negatives(train, test, 20, random_state=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a[:, 1:], c[:, 1:])
    np.testing.assert_array_equal(a[:, 0], c[:, 0])


def test_negatives_uniform_when_every_item_is_needed():
    # 2000 users with items 0 (train) and 1 (test) of 6: the 4 others, in random order
    n = 2_000
    data = Interactions.from_arrays(np.repeat(np.arange(n), 2), np.tile([0, 1], n),
                                    timestamps=np.tile([0, 1], n), item_ids=np.arange(6))
    train, test = leave_k_out(data, 1, by="time")
    _, candidates = sample_negatives(train, test, 4, random_state=0)
    np.testing.assert_array_equal(np.sort(candidates[:, 1:], axis=1), np.tile([2, 3, 4, 5], (n, 1)))
    first = np.bincount(candidates[:, 1], minlength=6)[2:]
    assert first.min() > n / 4 * 0.8  # each item leads about a quarter of the rows


def test_negatives_error_names_the_short_user():
    users = ["a"] * 4 + ["b"] * 2
    items = [0, 1, 2, 3, 0, 1]
    data = Interactions.from_arrays(users, items, timestamps=[1, 2, 3, 4, 1, 2], item_ids=range(6))
    train, test = leave_k_out(data, 1, by="time")
    with pytest.raises(ValueError, match=r"user 'a' has only 2 items in neither train nor test, "
                                         r"fewer than n_negatives=3"):
        sample_negatives(train, test, 3)
    with pytest.raises(ValueError, match=r"user 'a' has only 2 items .*\(and 1 other user\)"):
        sample_negatives(train, test, 5)
    _, candidates = sample_negatives(train, test, 2, random_state=0)
    np.testing.assert_array_equal(np.sort(candidates[0, 1:]), [4, 5])
    int_ids = Interactions.from_arrays([7, 7, 7], [0, 1, 2], timestamps=[1, 2, 3], item_ids=range(4))
    with pytest.raises(ValueError, match="user 7 has only 1 item in neither"):
        sample_negatives(*leave_k_out(int_ids, 1, by="time"), 2)


def test_negatives_need_shared_ids(split):
    train, _ = split
    other = fastrec.datasets.synthetic(30, 40, 300, kind="implicit", seed=1)
    with pytest.raises(ValueError, match="train and test must share id maps"):
        sample_negatives(train, other)
    with pytest.raises(ValueError, match="train and test must share id maps"):
        evaluate_sampled(fastrec.Popularity(), train, other)


def test_negatives_zero_requested(split):
    train, test = split
    _, candidates = sample_negatives(train, test, 0)
    assert candidates.shape == (test.nnz, 1)


# --------------------------------------------------------------------- evaluate_sampled
def test_popularity_matches_a_plain_loop(split):
    train, test = split
    model = fastrec.Popularity()
    result = evaluate_sampled(model, train, test, 100, k=(5, 10), random_state=3)
    users, candidates = sample_negatives(train, test, 100, random_state=3)
    for cut in (5, 10):
        hr, ndcg = loop_metrics(model, train, users, candidates, cut)
        assert 0.0 <= result[f"ndcg@{cut}"] <= result[f"hit_rate@{cut}"] <= 1.0
        assert result[f"hit_rate@{cut}"] == pytest.approx(hr)
        assert result[f"ndcg@{cut}"] == pytest.approx(ndcg)
    assert result["n_users"] == test.nnz
    assert result["fit_seconds"] >= 0 and result["score_seconds"] >= 0
    assert result.model_name == "Popularity()"


def test_oracle_scores_perfectly(split):
    train, test = split
    result = evaluate_sampled(Oracle(test), train, test, k=(1, 10), fit=False, random_state=0)
    assert result["hit_rate@1"] == result["ndcg@1"] == result["hit_rate@10"] == result["ndcg@10"] == 1.0


def test_fit_false_keeps_the_fitted_model(split):
    train, test = split
    model = fastrec.Popularity().fit(train)
    fitted = evaluate_sampled(model, train, test, k=10, fit=False, random_state=0, name="pop")
    again = evaluate_sampled(fastrec.Popularity(), train, test, random_state=0)
    assert fitted.model_name == "pop"
    assert fitted["hit_rate@10"] == again["hit_rate@10"] and fitted["ndcg@10"] == again["ndcg@10"]


def test_model_errors_propagate_with_a_note(split):
    train, test = split
    with pytest.raises(ValueError, match="Baseline needs explicit ratings") as info:
        evaluate_sampled(fastrec.Baseline(), train, test)
    assert any("evaluate_sampled" in note for note in info.value.__notes__)

    class NaNModel(Oracle):
        def predict(self, users, items):
            return np.full(len(users), np.nan)

    with pytest.raises(ValueError, match="NaN"):
        evaluate_sampled(NaNModel(test), train, test, fit=False)


def test_exported_lazily():
    assert fastrec.evaluate_sampled is evaluate_sampled
    assert "evaluate_sampled" in dir(fastrec)


# --------------------------------------------------------------------------- ml-100k
def test_popularity_on_movielens_100k(ml100k_path):
    """Popularity under the NCF protocol: HR@10 = 0.404, NDCG@10 = 0.226 with these seeds
    (HR 0.39-0.42, NDCG 0.22-0.24 over other seeds), as reported for ItemPop (0.40-0.46)."""
    data = fastrec.datasets.load_movielens(ml100k_path)
    train, test = leave_k_out(data, 1, by="time", random_state=0)
    result = evaluate_sampled(fastrec.Popularity(), train, test, random_state=0)
    assert result["n_users"] == 943
    assert 0.36 <= result["hit_rate@10"] <= 0.46
    assert 0.19 <= result["ndcg@10"] <= 0.26
