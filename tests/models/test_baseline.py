"""Baseline: vectorised ALS and the Numba SGD kernel against references and Surprise."""
import numpy as np
import pytest

import fastrec
from fastrec import reference
from fastrec.testing import make_interactions, surprise_trainset


def surprise_order_fit(data, **bsl_options):
    """Fit Surprise's BaselineOnly on our ratings fed in CSR (user, then item) order."""
    surprise = pytest.importorskip("surprise")
    pytest.importorskip("pandas")
    trainset = surprise_trainset(data)
    return surprise.BaselineOnly(bsl_options=bsl_options, verbose=False).fit(trainset)


def test_als_matches_hand_computed_epoch():
    data = fastrec.Interactions.from_arrays([0, 0, 1], [0, 1, 0], [5.0, 3.0, 4.0])
    model = fastrec.Baseline(n_epochs=1, reg_i=1.0, reg_u=2.0).fit(data)
    mu = 4.0
    bi = np.array([(1.0 + 0.0) / (1 + 2), (-1.0) / (1 + 1)])
    bu = np.array([((5 - mu - bi[0]) + (3 - mu - bi[1])) / (2 + 2), (4 - mu - bi[0]) / (2 + 1)])
    np.testing.assert_allclose(model.item_bias_, bi, rtol=1e-14)
    np.testing.assert_allclose(model.user_bias_, bu, rtol=1e-14)
    assert model.global_mean_ == mu


def test_sgd_kernel_matches_reference(seed):
    data = make_interactions(40, 30, 0.2, seed=seed)
    ratings = data.values.astype(np.float64)
    users, items = data.entry_users.astype(np.int64), data.csr.indices.astype(np.int64)
    order = np.random.default_rng(seed).permutation(data.nnz)  # any visit order
    args = (ratings[order], users[order], items[order], float(ratings.mean()))
    from fastrec._kernels.baseline_nb import baseline_sgd

    got = np.zeros(40), np.zeros(30)
    expected = np.zeros(40), np.zeros(30)
    baseline_sgd(*args, *got, 7, 0.02, 0.01)
    reference.baseline.baseline_sgd(*args, *expected, 7, 0.02, 0.01)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("method", ["als", "sgd"])
def test_baseline_matches_surprise_on_random_data(method, seed):
    data = make_interactions(60, 40, 0.15, seed=seed)
    ours = fastrec.Baseline(method=method).fit(data)
    theirs = surprise_order_fit(data, method=method)
    users, items, _, _ = data.to_arrays()
    expected = [theirs.predict(u, i).est for u, i in zip(users[:200], items[:200])]
    np.testing.assert_allclose(ours.predict(users[:200], items[:200]), expected, atol=1e-10)


@pytest.mark.parametrize("method", ["als", "sgd"])
def test_baseline_matches_surprise_on_ml100k_u1(ml100k_path, method):
    surprise = pytest.importorskip("surprise")
    train = fastrec.datasets.load_movielens(ml100k_path / "u1.base")
    test = fastrec.datasets.load_movielens(ml100k_path / "u1.test")
    ours = fastrec.Baseline(method=method).fit(train)
    theirs = surprise_order_fit(train, method=method)
    users, items, ratings, _ = test.to_arrays()
    expected = np.array([theirs.predict(u, i).est for u, i in zip(users, items)])
    got, details = ours.predict(users, items, return_details=True)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    # the unknown items of u1.test fall back to mu + b_u, as in Surprise
    assert (~details.known_item).sum() > 0
    rmse = np.sqrt(np.mean((got - ratings) ** 2))
    surprise_rmse = surprise.accuracy.rmse(
        [surprise.Prediction(u, i, r, e, {}) for u, i, r, e in zip(users, items, ratings, expected)],
        verbose=False)
    assert round(rmse, 4) == round(surprise_rmse, 4)


def test_baseline_unknown_ids_fall_back_and_are_reported():
    data = fastrec.Interactions.from_arrays(["a", "a", "b"], ["x", "y", "x"], [5.0, 3.0, 4.0],
                                            item_ids=["x", "y", "z"])
    model = fastrec.Baseline().fit(data)
    est, details = model.predict(["a", "nobody", "a"], ["x", "x", "z"], return_details=True)
    assert details.known_user.tolist() == [True, False, True]
    assert details.known_item.tolist() == [True, True, False]  # "z" has no training data
    mu = model.global_mean_
    assert est[1] == pytest.approx(mu + model.item_bias_[0])
    assert est[2] == pytest.approx(mu + model.user_bias_[0])
    assert isinstance(model.predict("a", "x"), float)


def test_baseline_clips_to_rating_scale():
    data = fastrec.Interactions.from_arrays([0, 0, 1, 1], [0, 1, 0, 1], [5.0, 5.0, 5.0, 1.0])
    model = fastrec.Baseline(reg_u=0, reg_i=0, n_epochs=30).fit(data)
    assert model.predict([0], [0]).max() <= 5.0
    unclipped = fastrec.Baseline(reg_u=0, reg_i=0, n_epochs=30, clip=False).fit(data)
    assert np.all(unclipped.predict([0, 1], [0, 1]) >= model.predict([0, 1], [0, 1]) - 1e-12)


def test_baseline_recommend_ranks_by_item_bias_and_excludes_seen():
    data = make_interactions(30, 20, 0.3)
    model = fastrec.Baseline().fit(data)
    items, scores = model.recommend([0, 1], n=20)
    seen = data.csr[[0]].indices
    assert not np.isin(items[0][items[0] >= 0], seen).any()
    assert (items[0] >= 0).sum() == 20 - seen.size
    valid = items[0][items[0] >= 0]
    assert np.all(np.diff(model.item_bias_[valid]) <= 0)
    all_items, _ = model.recommend([0], n=20, exclude_seen=False)
    assert sorted(all_items[0].tolist()) == list(range(20))


@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"method": "newton"}, ValueError, "method must be one of"),
        ({"n_epochs": -1}, ValueError, "n_epochs must be >= 0"),
        ({"reg_u": -1.0}, ValueError, "reg_u must be a finite number >= 0"),
        ({"learning_rate": 0.0}, ValueError, "learning_rate must be a finite number > 0"),
        ({"reg": "big"}, TypeError, "reg must be a number"),
    ],
)
def test_baseline_rejects_bad_params(params, error, match):
    with pytest.raises(error, match=match):
        fastrec.Baseline(**params).fit(make_interactions())


def test_baseline_rejects_implicit_data():
    with pytest.raises(ValueError, match="explicit ratings"):
        fastrec.Baseline().fit(make_interactions(implicit=True))


def test_sgd_divergence_is_reported():
    data = make_interactions(30, 20, 0.3)
    with pytest.raises(ValueError, match="lower learning_rate"):
        fastrec.Baseline(method="sgd", learning_rate=1e3, n_epochs=50).fit(data)
