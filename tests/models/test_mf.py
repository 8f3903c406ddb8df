"""MatrixFactorization: the SGD kernel against the NumPy reference, reproducibility,
learning, fold-in, Surprise's SVD and the implicit losses."""
import numpy as np
import pytest

import fastrec
from fastrec.models.mf import MatrixFactorization, _gd_epoch, _Schedule
from fastrec.reference import mf as reference
from fastrec.testing import make_interactions, surprise_trainset

LOSSES = ["mse", "logistic", "bpr"]


def _data_for(loss, seed=0, **kwargs):
    return make_interactions(40, 30, 0.25, implicit=loss != "mse", seed=seed, **kwargs)


@pytest.mark.parametrize("n_blocks", [1, 3])
@pytest.mark.parametrize("loss", LOSSES)
def test_sgd_epoch_matches_reference(loss, n_blocks, num_threads, seed):
    data = _data_for(loss, seed, empty_users=2, empty_items=2)
    model = MatrixFactorization(n_factors=5, n_epochs=0, lr=0.05, biased=True, loss=loss,
                                n_blocks=n_blocks, neg_samples=2, dtype=np.float64,
                                num_threads=num_threads, random_state=seed).fit(data)
    start = [a.copy() for a in (model.user_bias_, model.item_bias_, model.user_factors_,
                                model.item_factors_)]
    model.partial_fit(data, 1)
    schedule = _Schedule(data, n_blocks, np.float64, 5 * 8)
    order, negatives = schedule.plan(2, int(model.seed_), 0)
    bu, bi, pu, qi = start
    reference.sgd_epoch(loss, schedule.users[order], schedule.items[order], schedule.ratings[order],
                        [row[row >= 0] for row in negatives], model.global_mean_, bu, bi, pu, qi,
                        0.05, 0.02, 0.05, 0.02, True)
    for got, expected in zip((model.user_bias_, model.item_bias_, model.user_factors_,
                              model.item_factors_), (bu, bi, pu, qi), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n_blocks", [1, 3])
@pytest.mark.parametrize("loss", LOSSES)
def test_adagrad_epoch_matches_reference(loss, n_blocks, seed):
    data = _data_for(loss, seed, empty_users=2, empty_items=2)
    kwargs = dict(n_factors=5, lr=0.05, loss=loss, optimizer="adagrad", n_blocks=n_blocks,
                  neg_samples=2, dtype=np.float64, random_state=seed)
    model = MatrixFactorization(n_epochs=1, **kwargs).fit(data)
    model.partial_fit(data, 1)  # the second epoch starts from non-zero sums
    start = MatrixFactorization(n_epochs=1, **kwargs).fit(data)
    params = [a.copy() for a in (start.user_bias_, start.item_bias_, start.user_factors_,
                                 start.item_factors_)]
    sums = [a.copy() for a in start._adagrad_sums()]
    schedule = _Schedule(data, n_blocks, np.float64, 5 * 8)
    order, negatives = schedule.plan(2, int(start.seed_), 1)
    reference.adagrad_epoch(loss, schedule.users[order], schedule.items[order],
                            schedule.ratings[order], [row[row >= 0] for row in negatives],
                            start.global_mean_, *params, 0.05, 0.02, 0.05, 0.02, True, sums, 1e-8)
    for got, expected in zip((model.user_bias_, model.item_bias_, model.user_factors_,
                              model.item_factors_, *model._adagrad_sums()), (*params, *sums),
                             strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_adagrad_learns_and_saves_its_sums(tmp_path):
    data = fastrec.datasets.synthetic(300, 100, 6000, seed=0)
    model = MatrixFactorization(n_factors=8, n_epochs=10, lr=0.05, optimizer="adagrad",
                                random_state=0).fit(data)
    assert model.history_["train"][-1] < model.history_["train"][0]
    model.save(tmp_path / "m.npz")
    loaded = fastrec.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.adagrad_sums_, model.adagrad_sums_)
    model.partial_fit(data, 1)
    loaded.partial_fit(data, 1)
    np.testing.assert_array_equal(loaded.user_factors_, model.user_factors_)


@pytest.mark.parametrize("loss", LOSSES)
def test_float32_kernel_tracks_float64(loss):
    data = _data_for(loss, 1)
    runs = [MatrixFactorization(n_factors=8, n_epochs=5, lr=0.02, loss=loss, dtype=dtype,
                                random_state=3).fit(data) for dtype in (np.float32, np.float64)]
    assert runs[0].user_factors_.dtype == np.float32
    np.testing.assert_allclose(runs[0].user_factors_, runs[1].user_factors_, atol=1e-4)


def test_visiting_order_alternates_two_lanes_of_users():
    data = _data_for("mse")
    schedule = _Schedule(data, 1, np.float64)
    users, items = schedule.users.astype(np.int64), schedule.items.astype(np.int64)
    lane = users >= np.median(users)
    for members in (lane, ~lane):  # each lane: user by user, items in order
        keys = users[members] * 1000 + items[members]
        assert (np.diff(keys) > 0).all()
    assert lane[:20].tolist() == [False, True] * 10
    assert sorted(zip(users.tolist(), items.tolist())) == sorted(
        zip(data.entry_users.tolist(), data.csr.indices.tolist()))
    blocks = _Schedule(data, 3, np.float64)
    assert blocks.block_ptr[-1] == data.nnz


@pytest.mark.parametrize("loss", LOSSES)
def test_reruns_and_thread_counts_give_identical_factors(loss):
    data = make_interactions(120, 80, 0.1, implicit=loss != "mse", seed=4)
    fits = [MatrixFactorization(n_factors=16, n_epochs=3, loss=loss, num_threads=threads,
                                n_blocks=4, random_state=7).fit(data) for threads in (1, 1, 2, 2)]
    reruns = [MatrixFactorization(n_factors=16, n_epochs=3, loss=loss, num_threads=2,
                                  random_state=7).fit(data) for _ in range(2)]
    np.testing.assert_array_equal(reruns[0].item_factors_, reruns[1].item_factors_)
    for other in fits[1:]:
        np.testing.assert_array_equal(other.user_factors_, fits[0].user_factors_)
        np.testing.assert_array_equal(other.item_factors_, fits[0].item_factors_)
        np.testing.assert_array_equal(other.item_bias_, fits[0].item_bias_)


def test_partial_fit_continues_the_same_run():
    data = _data_for("mse", 2)
    whole = MatrixFactorization(n_factors=6, n_epochs=6, random_state=1).fit(data)
    parts = MatrixFactorization(n_factors=6, n_epochs=2, random_state=1).fit(data)
    parts.partial_fit(data, 4)
    np.testing.assert_array_equal(parts.user_factors_, whole.user_factors_)
    assert len(parts.history_["train"]) == 6
    with pytest.raises(ValueError, match="ids of the fitted data"):
        parts.partial_fit(make_interactions(10, 10, 0.5), 1)


@pytest.mark.parametrize("loss", LOSSES)
def test_loss_decreases(loss):
    data = make_interactions(200, 100, 0.1, implicit=loss != "mse", seed=5)
    model = MatrixFactorization(n_factors=10, n_epochs=15, lr=0.02, loss=loss, random_state=0).fit(data)
    train = model.history_["train"]
    assert train[-1] < train[0] and np.isfinite(train).all()


def test_gd_epoch_matches_reference():
    data = _data_for("mse", 3)
    model = MatrixFactorization(n_factors=4, n_epochs=0, optimizer="gd", dtype=np.float64,
                                random_state=0).fit(data)
    params = [a.copy() for a in (model.user_bias_, model.item_bias_, model.user_factors_, model.item_factors_)]
    expected = [a.copy() for a in params]
    _gd_epoch(data, model.global_mean_, 0.01, 0.02, 0.01, 0.02, *params, True)
    reference.gd_epoch(data.entry_users, data.csr.indices, data.values, model.global_mean_,
                       *expected, 0.01, 0.02, 0.01, 0.02, True)
    for got, want in zip(params, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_gd_learns():
    data = fastrec.datasets.synthetic(300, 100, 6000, seed=0)
    model = MatrixFactorization(n_factors=8, n_epochs=30, lr=0.003, optimizer="gd",
                                random_state=0).fit(data)
    assert model.history_["train"][-1] < 0.9 * model.history_["train"][0]


def test_divergence_names_the_epoch():
    data = _data_for("mse")
    with pytest.raises(ValueError, match="diverged at epoch 1.*smaller lr"):
        MatrixFactorization(n_epochs=3, lr=1e6, dtype=np.float64, random_state=0).fit(data)


def test_validation_history_early_stopping_and_callback():
    data = make_interactions(150, 80, 0.15, seed=8)
    train, valid = fastrec.model_selection.train_test_split(data, 0.2, random_state=0)
    seen = []
    model = MatrixFactorization(n_factors=30, n_epochs=200, lr=0.05, reg=0.0, validation=valid,
                                early_stopping=3, random_state=0,
                                callback=lambda epoch, elapsed, loss: seen.append(epoch)).fit(train)
    history = model.history_
    assert len(history["train"]) == len(seen) < 200  # overfits, so it stops early
    best = int(np.argmin(history["validation"]))
    users, items, ratings, _ = valid.to_arrays()
    rmse = fastrec.metrics.rmse(ratings, model.predict(users, items))
    assert rmse <= history["validation"][best] + 1e-6  # the best epoch's factors were kept
    assert model.get_params()["validation"] is valid


def test_unknown_ids_use_the_biases():
    data = make_interactions(20, 15, 0.3, empty_users=1, empty_items=1, seed=1)
    model = MatrixFactorization(n_factors=4, n_epochs=3, random_state=0).fit(data)
    est, details = model.predict([0, 19, 0], [14, 0, 0], return_details=True)
    assert details.known_user.tolist() == [True, False, True]
    assert est[0] == pytest.approx(np.clip(model.global_mean_ + model.user_bias_[0], 1, 5))
    assert est[1] == pytest.approx(np.clip(model.global_mean_ + model.item_bias_[0], 1, 5))


def test_recommend_ranks_the_raw_scores():
    data = make_interactions(30, 25, 0.3, seed=2)
    model = MatrixFactorization(n_factors=5, n_epochs=5, random_state=0).fit(data)
    ids, scores = model.recommend(np.arange(30), 5)
    full = (model.global_mean_ + model.user_bias_[:, None] + model.item_bias_[None, :]
            + model.user_factors_ @ model.item_factors_.T)
    expected_ids, expected_scores = fastrec.top_k(full.astype(np.float32), 5, exclude=data.csr)
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-5)


@pytest.mark.parametrize("biased", [True, False])
@pytest.mark.parametrize("loss", ["mse", "bpr"])
def test_pruned_recommend_equals_the_full_product(loss, biased, monkeypatch):
    """Wide factors take the pruned exact search (fastrec.mips): the same top-n as the
    whole product, with seen items, a candidate filter and an unknown user among known
    ones (the biases' vector in the search; without biases, the dense scores for it alone)."""
    monkeypatch.setattr("fastrec.mips.MAX_EXACT_SHARE", 1.0)  # a small catalogue: taken anyway
    data = fastrec.datasets.synthetic(300, 200, 6_000, kind="implicit" if loss != "mse" else "explicit",
                                      seed=3)
    model = MatrixFactorization(n_factors=24, n_epochs=10, lr=0.02, loss=loss, biased=biased,
                                dtype=np.float64, random_state=0).fit(data)
    assert model._scoring_index() is not None
    users = np.concatenate([data.user_ids[:25], [-12345], data.user_ids[25:50]])
    candidates = data.item_ids[::2]
    for exclude_seen in (True, False):
        for items in (None, candidates):
            ids, scores = model.recommend(users, 8, exclude_seen=exclude_seen, items=items, num_threads=2)
            u, _ = model._known_users(users)
            full = model._score_users(u)
            excluded = np.zeros(full.shape, dtype=bool)
            if exclude_seen:
                known = u >= 0
                excluded[known] = data.csr[u[known]].toarray() != 0
            if items is not None:
                excluded[:, ~np.isin(data.item_ids, items)] = True
            expected_ids, expected_scores = fastrec.top_k(np.where(excluded, -np.inf, full), 8)
            np.testing.assert_array_equal(ids, data.item_ids[expected_ids])
            np.testing.assert_allclose(scores, expected_scores, rtol=1e-12)


def test_search_left_for_the_whole_product_where_pruning_does_not_pay():
    data = fastrec.datasets.synthetic(300, 200, 6_000, kind="implicit", seed=3)
    model = MatrixFactorization(n_factors=24, n_epochs=0, loss="bpr", random_state=0).fit(data)
    assert model._scoring_index() is None  # 200 items: k + warm-up alone are 15%
    narrow = MatrixFactorization(n_factors=8, n_epochs=1, loss="bpr", random_state=0).fit(data)
    assert narrow._scoring_index() is None


@pytest.mark.parametrize("loss", LOSSES)
def test_fold_in_scores_like_a_refit(loss):
    data = fastrec.datasets.synthetic(400, 120, 12_000, kind="implicit" if loss != "mse" else "explicit",
                                      seed=9)
    user = int(np.argsort(data.user_counts)[-20])  # an active user, not the most active
    keep = data.entry_users != user
    without = data.select(np.flatnonzero(keep))
    kwargs = dict(n_factors=8, n_epochs=40, lr=0.02, loss=loss, random_state=0)
    full = MatrixFactorization(**kwargs).fit(data)
    folded = MatrixFactorization(**kwargs).fit(without)
    row = data.csr[[user]]
    scores = folded.predict_history(row.indices, None if loss != "mse" else row.data, np.arange(120))
    trained = full.predict(np.full(120, user), np.arange(120))
    assert np.corrcoef(scores, trained)[0, 1] > 0.7


def test_fold_in_is_fast_and_ridge_exact():
    data = make_interactions(100, 50, 0.3, seed=3)
    model = MatrixFactorization(n_factors=6, n_epochs=5, random_state=0, dtype=np.float64).fit(data)
    items, ratings = [1, 2, 7], [5.0, 3.0, 4.0]
    p, b = model.fold_in(items, ratings)
    q = model.item_factors_[items]
    residual = np.array(ratings) - model.global_mean_ - model.item_bias_[items] - b - q @ p
    gradient = -q.T @ residual + model.reg * 3 * p  # the ridge optimum: zero gradient
    np.testing.assert_allclose(gradient, 0, atol=1e-10)


@pytest.mark.parametrize("loss", ["logistic", "bpr"])
def test_implicit_losses_rank_well_above_popularity(loss):
    data = fastrec.datasets.synthetic(800, 300, 30_000, kind="implicit", seed=1)
    train, test = fastrec.model_selection.train_test_split(data, 0.2, random_state=0)
    model = MatrixFactorization(n_factors=32, n_epochs=30, lr=0.05, reg=0.01, loss=loss,
                                neg_samples=3, random_state=0).fit(train)
    auc = _auc(model, train, test)
    popularity = _auc(fastrec.Popularity().fit(train), train, test)
    assert auc > popularity + 0.02, (auc, popularity)


def _auc(model, train, test, n_negatives=50):
    """Mean over test pairs of P(score(test item) > score(random unseen item))."""
    rng = np.random.default_rng(0)
    users, items = test.entry_users, test.csr.indices
    neg = rng.integers(0, train.n_items, (users.size, n_negatives))
    ids = train.user_ids[users]
    pos_scores = model.predict(ids, train.item_ids[items])
    neg_scores = model.predict(np.repeat(ids, n_negatives), train.item_ids[neg.ravel()]).reshape(neg.shape)
    return float(np.mean(pos_scores[:, None] > neg_scores))


def test_similar_items_and_explain():
    data = make_interactions(60, 30, 0.3, seed=4)
    model = MatrixFactorization(n_factors=5, n_epochs=10, random_state=0).fit(data)
    ids, scores = model.similar_items([0, 3, 999], n=4)
    assert ids.shape == (3, 4) and 0 not in ids[0] and (ids[2] == -1).all()
    assert (np.diff(scores[0]) <= 0).all()
    why = model.explain(0, 3, n=100)
    row = data.csr[[0]]
    q = model.item_factors_[row.indices].astype(np.float64)
    y = row.data - (model.global_mean_ + model.user_bias_[0] + model.item_bias_[row.indices])
    p = np.linalg.solve(q.T @ q + model.reg * row.nnz * np.eye(5), q.T @ y)  # ridge fold-in, b_u kept
    expected = model.global_mean_ + model.user_bias_[0] + model.item_bias_[3] + model.item_factors_[3] @ p
    assert why.base + why.contribution.sum() == pytest.approx(expected, abs=1e-5)
    assert len(why.neighbors) == row.nnz and (np.diff(np.abs(why.contribution)) <= 1e-12).all()


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(n_factors=0), ValueError, "n_factors must be >= 1"),
    (dict(lr=0.0), ValueError, "lr must be"),
    (dict(reg=-1.0), ValueError, "reg must be"),
    (dict(loss="hinge"), ValueError, "loss must be one of"),
    (dict(optimizer="adam"), ValueError, "optimizer must be one of"),
    (dict(optimizer="gd", loss="bpr"), ValueError, "supports loss='mse' only"),
    (dict(neg_samples=0), ValueError, "neg_samples must be >= 1"),
    (dict(n_blocks=0), ValueError, "n_blocks must be >= 1"),
    (dict(dtype=np.int32), TypeError, "dtype must be float32 or float64"),
    (dict(early_stopping=2), ValueError, "early_stopping needs validation"),
    (dict(callback=3), TypeError, "callback must be callable"),
    (dict(random_state=-1), ValueError, "random_state"),
])
def test_rejects_bad_parameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        MatrixFactorization(**kwargs).fit(make_interactions())


def test_mse_needs_ratings():
    with pytest.raises(ValueError, match="needs explicit ratings"):
        MatrixFactorization().fit(make_interactions(implicit=True))


def test_rmse_close_to_surprise_svd_on_ml100k(ml100k_path):
    """Same hyper-parameters, same test RMSE (averaged over seeds: one seed moves it ~0.003)."""
    surprise = pytest.importorskip("surprise")
    pytest.importorskip("pandas")
    train, test = fastrec.datasets.load_movielens_split(ml100k_path, "u1")
    trainset = surprise_trainset(train)
    tu, ti, tr, _ = test.to_arrays()
    pairs = list(zip(tu.tolist(), ti.tolist(), strict=True))
    rmse = fastrec.metrics.rmse
    theirs = np.mean([rmse(tr, [algo.predict(u, i).est for u, i in pairs])
                      for algo in (surprise.SVD(random_state=seed).fit(trainset) for seed in range(3))])
    for n_blocks in (1, 2):
        ours = np.mean([rmse(tr, MatrixFactorization(n_blocks=n_blocks, random_state=seed).fit(train)
                             .predict(tu, ti)) for seed in range(3)])
        assert abs(ours - theirs) < 0.003, (n_blocks, ours, theirs)


def test_unknown_users_are_ranked_by_the_item_biases(seed):
    # regression: rows of unknown users were left uninitialised before the biases were added
    data = make_interactions(40, 25, 0.2, empty_users=3, seed=seed)
    model = fastrec.MatrixFactorization(4, 3, random_state=seed).fit(data)
    ids, scores = model.recommend(data.user_ids[-3:], n=5, exclude_seen=False)
    expected = data.item_ids[np.argsort(-model.item_bias_, kind="stable")[:5]]
    assert (ids == expected).all()
    np.testing.assert_allclose(scores[0], model.global_mean_ + np.sort(model.item_bias_)[::-1][:5], rtol=1e-5)
