"""NeuralCF: gradients, the Numba kernel against the NumPy reference, training, API."""
import numpy as np
import pytest

import fastrec
from fastrec._kernels.ncf_nb import epoch_samples
from fastrec.reference import ncf as reference
from fastrec.testing import make_interactions

ARCHITECTURES = {"gmf": {}, "mlp": {"layers": (6, 4, 3)}, "neumf": {"layers": (6, 4, 3)},
                 "mlp-no-hidden": {"layers": (6,)}}


def _model(name, **params):
    arch = name.split("-")[0]
    return fastrec.NeuralCF(arch, n_factors=3, **{**ARCHITECTURES[name], **params})


def _float64_params(model):
    return {k: v.astype(np.float64).copy() for k, v in model.tables_.items()}


@pytest.mark.parametrize("name", list(ARCHITECTURES))
@pytest.mark.parametrize("loss", ["bce", "mse"])
def test_gradients_equal_finite_differences(name, loss, seed):
    data = make_interactions(6, 5, 0.5, implicit=loss == "bce", seed=seed)
    model = _model(name, loss=loss, n_epochs=0, init_std=0.5, dtype=np.float64, random_state=seed).fit(data)
    params = _float64_params(model)
    layout = model._arrays()[1]
    rng = np.random.default_rng(seed)
    params["dense"] += rng.normal(0, 0.3, params["dense"].size)  # biases off 0: no pre-activation on a kink
    users = rng.integers(0, 6, 7)
    items = rng.integers(0, 5, 7)
    labels = rng.integers(0, 2, 7).astype(float) if loss == "bce" else rng.uniform(1, 5, 7)
    kwargs = {"mse": loss == "mse", "reg": 0.3}
    _, _, grads = reference.loss_and_gradients(params, layout, users, items, labels, **kwargs)
    step = 1e-6
    for name_, value in params.items():
        flat = value.reshape(-1)
        numeric = np.zeros(flat.size)
        for p in range(flat.size):
            keep = flat[p]
            flat[p] = keep + step
            up = reference.loss_and_gradients(params, layout, users, items, labels, **kwargs)[0]
            flat[p] = keep - step
            down = reference.loss_and_gradients(params, layout, users, items, labels, **kwargs)[0]
            flat[p] = keep
            numeric[p] = (up - down) / (2 * step)
        np.testing.assert_allclose(grads[name_].reshape(-1), numeric, rtol=1e-5, atol=1e-8, err_msg=name_)


def _replay(model, data, epochs):
    """The reference's run of ``epochs`` epochs from the model's current state."""
    params = _float64_params(model)
    adam = model.optimizer == "adam"
    moments = {k: (model._views(model.adam_m_)[k].astype(np.float64).copy(),
                   model._views(model.adam_v_)[k].astype(np.float64).copy()) for k in params} if adam else None
    layout = model._arrays()[1]
    csr = data.csr
    step, losses = int(model.adam_step_), []
    for epoch in range(int(model.epochs_done_), int(model.epochs_done_) + epochs):
        users, items, labels = epoch_samples(csr.indptr, csr.indices, data.values, data.n_items,
                                             model.neg_samples, model.loss == "bce", int(model.seed_), epoch)
        total, step = reference.train_epoch(params, moments, layout, users, items, labels, model.batch_size,
                                            mse=model.loss == "mse", adam=adam, lr=model.lr, beta1=0.9,
                                            beta2=0.999, eps=1e-8, reg=model.reg, step=step)
        losses.append(total / users.size)
    return params, losses


@pytest.mark.parametrize("name", list(ARCHITECTURES))
@pytest.mark.parametrize("loss", ["bce", "mse"])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_kernel_matches_reference(name, loss, optimizer, num_threads, seed):
    data = make_interactions(40, 25, 0.15, implicit=loss == "bce", empty_users=2, empty_items=2, seed=seed)
    model = _model(name, loss=loss, optimizer=optimizer, lr=0.01, reg=0.01, batch_size=48, neg_samples=2,
                   n_epochs=1, init_std=0.3, dtype=np.float64, random_state=seed, num_threads=num_threads)
    model.fit(data)  # one epoch, so the second starts with Adam's moments non-zero
    expected, losses = _replay(model, data, 2)
    model.partial_fit(data, 2)
    for key, value in model.tables_.items():
        np.testing.assert_allclose(value, expected[key], rtol=1e-9, atol=1e-12, err_msg=key)
    reported = np.array(model.history_["train"][1:])
    np.testing.assert_allclose(reported, np.sqrt(losses) if loss == "mse" else losses, rtol=1e-9)


def test_epoch_samples_negatives_and_order(seed, index_dtype):
    data = make_interactions(30, 20, 0.2, implicit=True, seed=seed)
    csr = data.csr
    indptr, indices = csr.indptr.astype(index_dtype), csr.indices.astype(index_dtype)
    users, items, labels = epoch_samples(indptr, indices, data.values, 20, 3, True, seed, 0)
    assert users.size == 4 * data.nnz and labels.sum() == data.nnz
    dense = data.csr.toarray() > 0
    assert dense[users[labels == 1], items[labels == 1]].all()
    assert not dense[users[labels == 0], items[labels == 0]].any()
    positives = sorted(zip(users[labels == 1].tolist(), items[labels == 1].tolist(), strict=True))
    assert positives == sorted(zip(data.entry_users.tolist(), csr.indices.tolist(), strict=True))
    again = epoch_samples(indptr, indices, data.values, 20, 3, True, seed, 0)
    other = epoch_samples(indptr, indices, data.values, 20, 3, True, seed, 1)
    assert np.array_equal(again[1], items) and not np.array_equal(other[1], items)


def test_float32_tracks_float64(seed):
    data = make_interactions(40, 25, 0.15, implicit=True, seed=seed)
    fits = [_model("neumf", n_epochs=3, lr=0.01, dtype=dtype, random_state=seed).fit(data)
            for dtype in (np.float32, np.float64)]
    np.testing.assert_allclose(fits[0].params_, fits[1].params_, atol=1e-4)


@pytest.mark.parametrize("name", ["gmf", "mlp", "neumf"])
def test_loss_decreases_and_reruns_are_identical(name, seed):
    data = make_interactions(80, 40, 0.1, implicit=True, seed=seed)
    fits = [_model(name, n_epochs=8, lr=0.01, random_state=seed, num_threads=t).fit(data) for t in (1, 2, 1)]
    train = fits[0].history_["train"]
    assert train[-1] < train[0] - 0.05
    assert np.array_equal(fits[0].params_, fits[1].params_)
    assert np.array_equal(fits[0].params_, fits[2].params_)


def test_scoring_all_items_equals_the_reference_forward(seed):
    data = make_interactions(30, 20, 0.2, seed=seed)
    for name in ARCHITECTURES:
        model = _model(name, loss="mse", n_epochs=2, lr=0.01, init_std=0.3, random_state=seed).fit(data)
        users = np.arange(30)
        scores = model._score_users(users)
        u, i = np.repeat(users, 20), np.tile(np.arange(20), 30)
        logits = reference.forward(_float64_params(model), model._arrays()[1], u, i)[0]
        np.testing.assert_allclose(scores.ravel(), logits, rtol=1e-5, atol=1e-6, err_msg=name)
        known = data.user_counts[u] > 0  # the others are unknown to predict: the global mean
        np.testing.assert_allclose(model.predict(data.user_ids[u[known]], data.item_ids[i[known]]),
                                   np.clip(logits[known], 1, 5), rtol=1e-5, atol=1e-6)


def test_pretrained_neumf_starts_from_its_parts(seed):
    data = make_interactions(40, 25, 0.15, implicit=True, seed=seed)
    gmf = _model("gmf", n_epochs=2, random_state=seed).fit(data)
    mlp = _model("mlp", n_epochs=2, random_state=seed).fit(data)
    neumf = _model("neumf", n_epochs=0, pretrained=(gmf, mlp), alpha=0.3).fit(data)
    users, items = np.repeat(np.arange(40), 25), np.tile(np.arange(25), 40)
    expected = 0.3 * gmf._logits(users, items) + 0.7 * mlp._logits(users, items)
    np.testing.assert_allclose(neumf._logits(users, items), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="pretrained"):
        _model("neumf", pretrained=(mlp, gmf)).fit(data)


def test_fold_in_recovers_a_training_user(seed):
    data = make_interactions(60, 30, 0.2, implicit=True, seed=seed)
    model = _model("neumf", n_epochs=15, lr=0.01, random_state=seed).fit(data)
    user = int(np.argmax(data.user_counts))
    history = data.item_ids[data.csr[[user]].indices]
    folded = model.predict_history(history, None, data.item_ids)
    trained = model.predict(np.full(30, data.user_ids[user]), data.item_ids)
    assert np.corrcoef(folded, trained)[0, 1] > 0.5
    vectors = model.fold_in(history)
    assert vectors["user_gmf"].shape == (3,) and vectors["user_mlp"].shape == (3,)


def test_mse_learns_ratings(seed):
    data = make_interactions(80, 40, 0.2, seed=seed)
    model = _model("neumf", loss="mse", n_epochs=10, lr=0.01, random_state=seed).fit(data)
    assert model.history_["train"][-1] < model.history_["train"][0]
    assert model.global_mean_ == pytest.approx(data.values.mean())
    predicted = model.predict(data.entry_users, data.csr.indices)
    assert predicted.min() >= 1 and predicted.max() <= 5
    assert np.sqrt(np.mean((predicted - data.values) ** 2)) < np.std(data.values)


def test_save_load_roundtrip(tmp_path, seed):
    data = make_interactions(40, 25, 0.15, implicit=True, seed=seed)
    model = _model("neumf", n_epochs=2, random_state=seed).fit(data)
    model.save(tmp_path / "ncf.npz")
    loaded = fastrec.load(tmp_path / "ncf.npz")
    assert np.array_equal(loaded.recommend(data.user_ids, n=5)[0], model.recommend(data.user_ids, n=5)[0])
    model.partial_fit(data, 1)
    loaded.partial_fit(data, 1)  # the optimiser state was saved too
    assert np.array_equal(loaded.params_, model.params_)


@pytest.mark.parametrize("params, message", [
    ({"layers": ()}, "layers"), ({"layers": (5, 3)}, "even"), ({"layers": (4, 0)}, "layers"),
    ({"lr": 0}, "lr"), ({"lr": -1.0}, "lr"), ({"neg_samples": 0}, "neg_samples"),
    ({"batch_size": 0}, "batch_size"), ({"architecture": "cnn"}, "architecture"),
    ({"loss": "hinge"}, "loss"), ({"optimizer": "lbfgs"}, "optimizer"), ({"alpha": 2.0}, "alpha"),
    ({"early_stopping": 2}, "validation"), ({"reg": -0.1}, "reg"),
])
def test_bad_hyper_parameters(params, message):
    data = make_interactions(10, 8, 0.3, implicit=True)
    with pytest.raises((ValueError, TypeError), match=message):
        fastrec.NeuralCF(**params).fit(data)


def test_mse_needs_ratings_and_full_users_are_rejected():
    with pytest.raises(ValueError, match="explicit ratings"):
        fastrec.NeuralCF(loss="mse").fit(make_interactions(10, 8, 0.3, implicit=True))
    full = fastrec.Interactions.from_arrays([0, 0], [0, 1])
    with pytest.raises(ValueError, match="every item"):
        fastrec.NeuralCF().fit(full)


def test_early_stopping_keeps_the_best_epoch(seed):
    data = make_interactions(80, 40, 0.15, implicit=True, seed=seed)
    train, valid = fastrec.model_selection.train_test_split(data, 0.2, random_state=seed)
    model = _model("gmf", n_epochs=30, lr=0.05, validation=valid, early_stopping=2, random_state=seed).fit(train)
    history = model.history_["validation"]
    assert len(history) <= 30 and np.isfinite(history).all()
    assert model._validation_loss(valid) == pytest.approx(min(history), rel=1e-6)
