"""``fastrec bench``: speed-ups of fastrec over its NumPy references and the peers installed.

The ``benchmarks/`` folder of the source tree (pytest-benchmark) is not installed, so
the command has this small runner of its own.  Each case builds synthetic data once
(``fastrec.datasets.synthetic(..., seed=0)``), then for every comparison checks that
fastrec and the other side give the same answer and times both with
``time.perf_counter``: fastrec (and the compiled peers) as the best of ``repeats``
calls after one untimed warm-up call, so Numba compilation and thread start-up are not
counted; the slow references and Surprise as the best of ``slow_repeats`` calls.

Peers (scikit-surprise, implicit, sparse_dot_topn) run only when they import; the
report names the ones that are absent.  A comparison whose answer differs from
fastrec's is reported as a MISMATCH, never silently timed.
"""
import dataclasses
import importlib
import os
import time
import warnings
from collections.abc import Callable

import numpy as np

from fastrec._threads import effective_num_threads

# import name -> distribution name (what to pip install)
PEERS = {"surprise": "scikit-surprise", "implicit": "implicit", "sparse_dot_topn": "sparse-dot-topn"}
MF = {"n_factors": 100, "lr": 0.005, "reg": 0.02}  # Surprise's SVD defaults
KNN_K = 40  # Surprise's default k
SIMILARITY_K = 50
METRIC_KS = (5, 10, 20)
NCF_FACTORS, NCF_LAYERS = 16, (64, 32, 16)  # the NCF paper's NeuMF
RECOMMEND_FACTORS, RECOMMEND_N = 64, 10

# sizes per case: (users, items, ratings) of the synthetic data, except topk (rows,
# columns, k) and mf (users, items, ratings, epochs); mf_reference is the data of the
# Python SGD reference (~8 us per update).  "tiny" is for the tests.
PRESETS = {
    "tiny": {"repeats": 2, "slow_repeats": 1, "topk": (200, 2_000, 10),
             "similarity": (2_000, 500, 10_000), "knn": (500, 200, 5_000), "mf": (1_000, 300, 10_000, 1),
             "mf_reference": (300, 100, 2_000), "recommend": (1_000, 300, 10_000), "metrics": (2_000, 500, 10_000),
             "ncf": (500, 200, 4_000), "ncf_reference": (200, 100, 1_000)},
    "quick": {"repeats": 5, "slow_repeats": 1, "topk": (1_000, 20_000, 10),
              "similarity": (50_000, 10_000, 500_000), "knn": (10_000, 2_000, 200_000),
              "mf": (50_000, 10_000, 500_000, 3), "mf_reference": (2_000, 1_000, 20_000),
              "recommend": (50_000, 10_000, 500_000),
              "metrics": (50_000, 10_000, 500_000), "ncf": (10_000, 2_000, 100_000),
              "ncf_reference": (1_000, 500, 5_000)},
    "full": {"repeats": 5, "slow_repeats": 2, "topk": (10_000, 20_000, 10),
             "similarity": (100_000, 20_000, 1_000_000), "knn": (50_000, 5_000, 1_000_000),
             "mf": (100_000, 20_000, 1_000_000, 5), "mf_reference": (10_000, 2_000, 100_000),
             "recommend": (100_000, 20_000, 1_000_000),
             "metrics": (100_000, 20_000, 1_000_000), "ncf": (50_000, 10_000, 500_000),
             "ncf_reference": (2_000, 1_000, 20_000)},
}


@dataclasses.dataclass
class Comparison:
    """What fastrec is compared with in one row of the report."""

    name: str
    run: Callable[[], object]
    check: Callable[[object, object], None]  # (fastrec's answer, its answer); AssertionError if they differ
    compiled: bool = False  # warmed up and repeated like fastrec; else the slow policy
    updates: int | None = None  # report the time per update: the call's time / updates
    peer: str | None = None  # distribution name of a peer: its failures are reported, not raised


@dataclasses.dataclass
class Prepared:
    """A case with its data built: the fastrec call and its comparisons."""

    title: str
    run: Callable[[], object]
    comparisons: list
    updates: int | None = None
    absent: list = dataclasses.field(default_factory=list)


# ----------------------------------------------------------------------- helpers
def _peer(module, absent):
    """The peer's module, or None (and its name added to ``absent``) when it does not import."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module(module)
    except ImportError:
        absent.append(PEERS[module.split(".")[0]])
        return None


def _quiet(fn):
    """``fn`` with warnings silenced (peers warn about BLAS threads and input formats)."""
    def call(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args, **kwargs)
    return call


def _count(n):
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return str(n)


def _plural(n, word):
    return f"{n} {word}" + ("s" if n != 1 else "")


def _surprise_trainset(surprise, data):
    """``data`` as a Surprise Trainset fed in CSR order (like ``fastrec.testing.surprise_trainset``,
    which needs pandas; pandas is not a dependency of fastrec)."""
    users, items, ratings, _ = data.to_arrays()
    raw = [(u, i, r, None) for u, i, r in zip(users.tolist(), items.tolist(), ratings.tolist(), strict=True)]
    reader = surprise.Reader(rating_scale=data.rating_scale or (1, 5))
    return surprise.Dataset(reader).construct_trainset(raw)


def _assert_sorted_scores_close(theirs, expected_scores, k):
    """A peer's neighbour matrix (self included) has fastrec's top-k scores in every row;
    ids are not compared: peers order tied neighbours their own way."""
    import scipy.sparse as sp

    from fastrec.similarity import topk_arrays

    theirs = sp.csr_matrix(theirs, dtype=np.float64, copy=True)
    theirs.setdiag(0)
    theirs.eliminate_zeros()
    _, scores = topk_arrays(theirs, k)
    np.testing.assert_allclose(np.sort(scores, axis=1), np.sort(expected_scores.astype(np.float64), axis=1),
                               rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------------- cases
def _topk(sizes, num_threads, threads, preset):
    import fastrec
    from fastrec.reference.topk import dense_topk
    from fastrec.testing import assert_topk_equal

    n_rows, n_cols, k = sizes
    block = np.random.default_rng(0).standard_normal((n_rows, n_cols)).astype(np.float32)
    reference = Comparison("reference.topk.dense_topk", lambda: dense_topk(block, k),
                           lambda ours, theirs: assert_topk_equal(ours, theirs))
    return Prepared(f"top-k: {n_rows:,} x {n_cols:,} float32 scores, k={k}",
                    lambda: fastrec.top_k(block, k, num_threads=num_threads), [reference])


def _similarity(sizes, num_threads, threads, preset):
    import scipy.sparse as sp

    import fastrec
    from fastrec.similarity import item_similarity, topk_arrays
    from fastrec.testing import assert_topk_equal

    data = fastrec.datasets.synthetic(*sizes, kind="implicit", seed=0)
    k = SIMILARITY_K

    def check_reference(ours, theirs):
        assert_topk_equal(topk_arrays(ours, k), topk_arrays(theirs, k), dtype=np.float32)

    def check_peer(ours, theirs):
        _assert_sorted_scores_close(theirs, topk_arrays(ours, k)[1], k)

    comparisons = [Comparison('reference.similarity (backend="numpy")',
                              lambda: item_similarity(data, "cosine", k, backend="numpy"), check_reference)]
    absent = []
    topn = _peer("sparse_dot_topn", absent)
    if topn is not None:
        items = sp.csr_matrix(data.csc.T, dtype=np.float32)  # items x users
        norms = np.sqrt(np.asarray(items.multiply(items).sum(axis=1))).ravel()
        normed = sp.csr_matrix(sp.diags(1 / np.maximum(norms, 1e-30)) @ items, dtype=np.float32)
        normed_t = normed.T.tocsr()
        run = _quiet(lambda: topn.sp_matmul_topn(normed, normed_t, top_n=k + 1, sort=True, n_threads=threads))
        comparisons.append(Comparison("sparse_dot_topn.sp_matmul_topn (rows normed)", run, _quiet(check_peer),
                                      compiled=True, peer=PEERS["sparse_dot_topn"]))
    nn = _peer("implicit.nearest_neighbours", absent)
    if nn is not None:
        user_items = sp.csr_matrix(data.csr, dtype=np.float32)

        def implicit_fit():
            model = nn.CosineRecommender(K=k + 1, num_threads=threads)  # it keeps the item itself
            model.fit(user_items, show_progress=False)
            return model.similarity

        comparisons.append(Comparison("implicit CosineRecommender.fit", _quiet(implicit_fit),
                                      _quiet(check_peer), compiled=True, peer=PEERS["implicit"]))
    n_users, n_items, n_ratings = sizes
    title = f"item cosine top-{k}: {_count(n_users)} users x {_count(n_items)} items, {_count(n_ratings)} clicks"
    return Prepared(title, lambda: item_similarity(data, "cosine", k, num_threads=num_threads), comparisons,
                    absent=absent)


def _knn(sizes, num_threads, threads, preset):
    import fastrec
    from fastrec.model_selection import train_test_split
    from fastrec.reference.knn import knn_estimate
    from fastrec.similarity import item_similarity

    data = fastrec.datasets.synthetic(*sizes, seed=0)
    train, test = train_test_split(data, 0.2, random_state=0)
    users, items, _, _ = test.to_arrays()
    u, i = train.user_index(users), train.item_index(items)
    known = (train.user_counts[u] > 0) & (train.item_counts[i] > 0)  # no cold users or items
    users, items, u, i = users[known], items[known], u[known], i[known]

    def ours():
        model = fastrec.ItemKNN(k=KNN_K, metric="msd", center="none", num_threads=num_threads).fit(train)
        return model.predict(users, items)

    def reference():
        """Surprise's KNNBasic from the references: msd over all pairs, then the k-neighbour mean."""
        sim = item_similarity(train, "msd", None, dtype=np.float64, backend="numpy")
        mean, count = knn_estimate(sim, train.csr, i, u, KNN_K)
        estimates = np.where(count > 0, mean, train.values.mean())
        return np.clip(estimates, *train.rating_scale) if train.rating_scale else estimates

    def check(ours, theirs):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4)

    comparisons = [Comparison("reference knn (similarity + knn_estimate)", reference, check)]
    absent = []
    surprise = _peer("surprise", absent)
    if surprise is not None:
        trainset = _surprise_trainset(surprise, train)
        pairs = list(zip(users.tolist(), items.tolist(), strict=True))

        def surprise_fit_predict():
            algo = surprise.KNNBasic(k=KNN_K, sim_options={"name": "msd", "user_based": False},
                                     verbose=False).fit(trainset)
            return np.array([algo.predict(a, b).est for a, b in pairs])

        comparisons.append(Comparison("surprise.KNNBasic fit + predict", _quiet(surprise_fit_predict), check,
                                      peer=PEERS["surprise"]))
    title = (f"ItemKNN msd k={KNN_K} (Surprise's KNNBasic): fit on {_count(train.nnz)} ratings "
             f"x {_count(sizes[1])} items, predict {_count(users.size)}")
    return Prepared(title, ours, comparisons, absent=absent)


def _mf(sizes, num_threads, threads, preset):
    import fastrec
    from fastrec.metrics import rmse
    from fastrec.model_selection import train_test_split
    from fastrec.models.mf import _Schedule
    from fastrec.reference.mf import sgd_epoch

    *shape, epochs = sizes
    train, test = train_test_split(fastrec.datasets.synthetic(*shape, seed=0), 0.1, random_state=0)
    options = {**MF, "dtype": np.float64, "num_threads": num_threads, "random_state": 0}

    def ours():
        return fastrec.MatrixFactorization(n_epochs=epochs, **options).fit(train)

    # the reference's answer is checked on its own small data: one epoch of the kernel,
    # with the visiting order the kernel used (the kernel blocks do not share rows)
    small = fastrec.datasets.synthetic(*PRESETS[preset]["mf_reference"], seed=0)
    model = fastrec.MatrixFactorization(n_epochs=0, n_blocks=threads, **options).fit(small)
    start = [a.copy() for a in (model.user_bias_, model.item_bias_, model.user_factors_, model.item_factors_)]
    model.partial_fit(small, 1)
    expected = (model.user_bias_, model.item_bias_, model.user_factors_, model.item_factors_)
    schedule = _Schedule(small, threads, np.float64, MF["n_factors"] * 8)
    order, negatives = schedule.plan(1, int(model.seed_), 0)
    entries = (schedule.users[order], schedule.items[order], schedule.ratings[order], negatives)

    def reference():
        params = [a.copy() for a in start]
        sgd_epoch("mse", *entries, model.global_mean_, *params, MF["lr"], MF["reg"], MF["lr"], MF["reg"], True)
        return params

    def check_reference(_, theirs):
        for got, want in zip(expected, theirs, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)

    n_small = small.nnz
    comparisons = [Comparison(f"reference.mf.sgd_epoch ({_count(n_small)} ratings)", reference,
                              check_reference, updates=n_small)]
    absent = []
    surprise = _peer("surprise", absent)
    if surprise is not None:
        trainset = _surprise_trainset(surprise, train)
        users, items, ratings, _ = test.to_arrays()

        def surprise_fit():
            return surprise.SVD(n_factors=MF["n_factors"], n_epochs=epochs, lr_all=MF["lr"],
                                reg_all=MF["reg"], random_state=0).fit(trainset)

        def check_surprise(ours, theirs):
            mine = rmse(ratings, ours.predict(users, items))
            other = rmse(ratings, [theirs.predict(u, i).est for u, i in zip(users.tolist(), items.tolist(),
                                                                            strict=True)])
            assert abs(mine - other) <= 0.01, f"test RMSE {mine:.4f} (fastrec) vs {other:.4f} (Surprise)"

        comparisons.append(Comparison(f"surprise.SVD fit ({_plural(epochs, 'epoch')})", _quiet(surprise_fit),
                                      _quiet(check_surprise), updates=epochs * train.nnz,
                                      peer=PEERS["surprise"]))
    title = (f"MF SGD (Surprise's SVD) k={MF['n_factors']} float64, TIME PER RATING UPDATE: fastrec fits "
             f"{_plural(epochs, 'epoch')} on {_count(train.nnz)} ratings, the Python reference runs 1 "
             f"on {_count(n_small)}")
    return Prepared(title, ours, comparisons, updates=epochs * train.nnz, absent=absent)


def _recommend(sizes, num_threads, threads, preset):
    import scipy.sparse as sp

    import fastrec
    from fastrec.models.base import _rows_pattern
    from fastrec.reference.mips import inner_product_topk
    from fastrec.testing import assert_topk_equal

    clicks = fastrec.datasets.synthetic(*sizes, seed=0).to_implicit()
    model = fastrec.MatrixFactorization(RECOMMEND_FACTORS, 5, lr=0.05, loss="bpr", num_threads=num_threads,
                                        random_state=0).fit(clicks)
    # the scores as one inner product: users [p_u, 1, mu + b_u] against items [q_i, b_i, 1]
    user_vectors = model._users_for_scoring(np.arange(clicks.n_users))
    item_vectors = np.ascontiguousarray(model._items_for_scoring().T)
    rows = np.flatnonzero(clicks.user_counts > 0)  # users with data: no fallback rows
    users = clicks.user_ids[rows]

    def as_codes(result):
        ids, scores = result
        return clicks.item_index(ids.ravel()).reshape(ids.shape), scores

    def ours():
        return as_codes(model.recommend(users, n=RECOMMEND_N, num_threads=num_threads))

    def whole_product():
        model._scoring_index = lambda: None  # the model's switch to its dense path
        try:
            return ours()
        finally:
            del model._scoring_index

    def reference():
        parts = [inner_product_topk(user_vectors[block], item_vectors, RECOMMEND_N,
                                    seen=_rows_pattern(clicks.csr, block))
                 for block in np.array_split(rows, max(1, rows.size // 2_000))]
        return np.vstack([ids for ids, _ in parts]), np.vstack([scores for _, scores in parts])

    def check(ours, theirs):
        assert_topk_equal(ours, theirs, np.float32)

    comparisons = [Comparison("MF.recommend through the whole product (BLAS + top-k)", whole_product, check,
                              compiled=True),
                   Comparison("reference.mips.inner_product_topk (the whole product in NumPy)", reference, check)]
    absent = []
    implicit = _peer("implicit", absent)
    if implicit is not None:
        from threadpoolctl import threadpool_limits

        als = _quiet(implicit.cpu.als.AlternatingLeastSquares)(factors=item_vectors.shape[1], num_threads=threads,
                                                               random_state=0)
        als.user_factors, als.item_factors = user_vectors, item_vectors  # the same scores to rank
        user_items = sp.csr_matrix(clicks.csr, dtype=np.float32)

        def implicit_recommend():
            with threadpool_limits(1, "blas"):  # as implicit advises
                return als.recommend(rows, user_items[rows], N=RECOMMEND_N)

        comparisons.append(Comparison("implicit ALS recommend (given the same factors)",
                                      _quiet(implicit_recommend), check, compiled=True, peer=PEERS["implicit"]))
    title = (f"top-{RECOMMEND_N} of every user, MF k={RECOMMEND_FACTORS} (BPR, 5 epochs): "
             f"{_count(rows.size)} users x {_count(clicks.n_items)} items, seen items excluded")
    return Prepared(title, ours, comparisons, absent=absent)


def _metrics(sizes, num_threads, threads, preset):
    import fastrec
    from fastrec.metrics import ranking_metrics
    from fastrec.model_selection import train_test_split

    data = fastrec.datasets.synthetic(*sizes, seed=0)
    _, test = train_test_split(data, 0.2, random_state=0)
    rng = np.random.default_rng(0)
    users = np.arange(test.n_users)
    # lists that hit now and then: every third slot a test item of the user, else random items
    top = rng.integers(0, test.n_items, (users.size, max(METRIC_KS)))
    own = test.csr.indices[np.minimum(test.csr.indptr[:-1], max(test.nnz - 1, 0))]
    top[:, ::3] = np.where(test.user_counts[:, None] > 0, own[:, None], top[:, ::3])

    def check(ours, theirs):
        assert ours.keys() == theirs.keys(), f"keys differ: {sorted(ours)} vs {sorted(theirs)}"
        for key, value in ours.items():
            assert np.isclose(value, theirs[key], rtol=1e-9, atol=0, equal_nan=True), \
                f"{key}: {value!r} vs {theirs[key]!r}"

    reference = Comparison('ranking_metrics(backend="numpy")',
                           lambda: ranking_metrics(top, users, test, METRIC_KS, backend="numpy"), check)
    title = f"ranking metrics: {_count(users.size)} users x top-{max(METRIC_KS)}, k = {METRIC_KS}"
    return Prepared(title, lambda: ranking_metrics(top, users, test, METRIC_KS, num_threads=num_threads),
                    [reference])


def _ncf(sizes, num_threads, threads, preset):
    import fastrec
    from fastrec._kernels.ncf_nb import epoch_samples
    from fastrec.reference import ncf as reference_ncf

    options = {"architecture": "neumf", "n_factors": NCF_FACTORS, "layers": NCF_LAYERS,
               "num_threads": num_threads, "random_state": 0}
    clicks = fastrec.datasets.synthetic(*sizes, seed=0).to_implicit()
    model = fastrec.NeuralCF(n_epochs=0, **options).fit(clicks)
    samples = clicks.nnz * (1 + model.neg_samples)

    def ours():
        return model.partial_fit(clicks, 1)

    # the reference's answer is checked on its own small data: one float64 epoch of each
    small = fastrec.datasets.synthetic(*PRESETS[preset]["ncf_reference"], seed=0).to_implicit()
    start = fastrec.NeuralCF(n_epochs=0, dtype=np.float64, **options).fit(small)
    first = {k: v.copy() for k, v in start.tables_.items()}
    moments = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in first.items()}
    expected = start.partial_fit(small, 1).tables_
    csr = small.csr
    plan = epoch_samples(csr.indptr, csr.indices, small.values, small.n_items, start.neg_samples, True,
                         int(start.seed_), 0)
    layout = start._arrays()[1]

    def reference():
        params = {k: v.copy() for k, v in first.items()}
        state = {k: (m.copy(), v.copy()) for k, (m, v) in moments.items()}
        reference_ncf.train_epoch(params, state, layout, *plan, start.batch_size, mse=False, adam=True,
                                  lr=start.lr, beta1=0.9, beta2=0.999, eps=1e-8, reg=0.0, step=0)
        return params

    def check_reference(_, theirs):
        for key, value in expected.items():
            np.testing.assert_allclose(value, theirs[key], rtol=1e-8, atol=1e-10, err_msg=key)

    n_small = plan[0].size
    comparisons = [Comparison(f"reference.ncf.train_epoch ({_count(n_small)} samples)", reference,
                              check_reference, updates=n_small)]
    title = (f"NeuMF (factors {NCF_FACTORS}, tower {NCF_LAYERS}, batch 256, Adam), TIME PER SAMPLE: "
             f"fastrec trains 1 epoch of {_count(samples)} samples, the NumPy reference 1 of "
             f"{_count(n_small)}")
    return Prepared(title, ours, comparisons, updates=samples)


# name -> setup(sizes, num_threads, threads, preset) -> Prepared
CASES = {"topk": _topk, "similarity": _similarity, "knn": _knn, "mf": _mf, "recommend": _recommend,
         "metrics": _metrics, "ncf": _ncf}


# ------------------------------------------------------------------------ runner
def parse_cases(text):
    """Case names from a comma-separated string (None: all), checked."""
    if text is None:
        return list(CASES)
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in CASES]
    if unknown or not names:
        raise ValueError(f"--cases: unknown case(s) {', '.join(unknown) or repr(text)}; "
                         f"choose from {', '.join(CASES)}")
    return list(dict.fromkeys(names))


def machine(num_threads=None):
    """The facts of the machine line, with the thread count ``num_threads`` resolves to."""
    from fastrec._config import config_info

    info = config_info()
    try:
        load = round(os.getloadavg()[0], 2)  # other work on the machine skews the timings
    except (AttributeError, OSError):  # not on Windows
        load = None
    return {key: info[key] for key in ("fastrec", "python", "numpy", "numba", "openmp", "usable_cores")} | \
        {"threads": effective_num_threads(num_threads), "load_average": load}


def _timed(fn, repeats, warmup):
    """``(answer of the first call, best time of the timed calls)``."""
    answer, times = None, []
    if warmup:
        answer = fn()
    for r in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
        if r == 0 and not warmup:
            answer = out
    return answer, min(times)


def run(cases=None, preset="quick", num_threads=None, on_row=None):
    """Run the named cases (all by default) at a size preset.

    Parameters
    ----------
    cases : list of str or None
        Names from :data:`CASES`.
    preset : {"tiny", "quick", "full"}
    num_threads : int, optional
        Passed to fastrec as ``num_threads`` (None or 0: all cores); the peers get the
        resolved count.
    on_row : callable, optional
        Called with each result row as soon as it is measured.

    Returns
    -------
    dict
        ``machine``, ``preset``, ``absent_peers``, ``elapsed_seconds`` and ``results``: one
        dict per comparison with ``case``, ``title``, ``compared_with``, ``unit`` ("call" or
        "update"), ``fastrec_seconds``, ``other_seconds``, ``speedup`` (other / fastrec),
        ``agree`` (None when a peer failed) and ``detail``.
    """
    started = time.perf_counter()
    names = parse_cases(None if cases is None else ",".join(cases))
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    sizes = PRESETS[preset]
    threads = effective_num_threads(num_threads)
    report = {"machine": machine(num_threads), "preset": preset, "absent_peers": [], "results": []}
    for name in names:
        prepared = CASES[name](sizes[name], num_threads, threads, preset)
        for peer in prepared.absent:
            if peer not in report["absent_peers"]:
                report["absent_peers"].append(peer)
        ours, ours_seconds = _timed(prepared.run, sizes["repeats"], warmup=True)
        for other in prepared.comparisons:
            row = _measure(name, prepared, ours, ours_seconds, other, sizes)
            report["results"].append(row)
            if on_row is not None:
                on_row(row)
    report["elapsed_seconds"] = time.perf_counter() - started
    return report


def _measure(name, prepared, ours, ours_seconds, other, sizes):
    repeats = sizes["repeats"] if other.compiled else sizes["slow_repeats"]
    per_update = other.updates is not None
    fastrec_seconds = ours_seconds / prepared.updates if per_update else ours_seconds
    row = {"case": name, "title": prepared.title, "compared_with": other.name,
           "unit": "update" if per_update else "call", "fastrec_seconds": fastrec_seconds,
           "other_seconds": None, "speedup": None, "agree": None, "detail": ""}
    try:
        theirs, seconds = _timed(other.run, repeats, warmup=other.compiled)
        try:
            other.check(ours, theirs)
            row["agree"] = True
        except AssertionError as exc:
            row["agree"] = False
            row["detail"] = " ".join(str(exc).split())[:300]
    except Exception as exc:  # a peer's API or build problem is reported, not fatal
        if other.peer is None:
            raise
        row["detail"] = f"{other.peer} failed: {type(exc).__name__}: {exc}"
        return row
    row["other_seconds"] = seconds / other.updates if per_update else seconds
    row["speedup"] = row["other_seconds"] / fastrec_seconds if fastrec_seconds > 0 else float("inf")
    return row


# ---------------------------------------------------------------------- printing
WIDTHS = (10, 44, 10, 10, 9)  # case, compared with, fastrec, other, speed-up (then check)


def format_seconds(seconds):
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def format_machine(m, preset):
    return (f"fastrec {m['fastrec']} | {m['usable_cores']} cores, {m['threads']} threads | "
            f"OpenMP {'on' if m['openmp'] else 'off'} | Python {m['python']}, numpy {m['numpy']}, "
            f"numba {m['numba']} | {preset} sizes"
            + ("" if m["load_average"] is None else f" | load average {m['load_average']:.2f}"))


def format_header():
    cells = ("case", "compared with", "fastrec", "other", "speed-up", "check")
    return _join(cells) + "\n" + _join(["-" * w for w in WIDTHS] + ["-" * 8])


def format_row(row):
    if row["agree"] is None:
        check = "error"
    else:
        check = "ok" if row["agree"] else "MISMATCH"
    speedup = "-" if row["speedup"] is None else f"{row['speedup']:.1f}x"
    return _join((row["case"], row["compared_with"], format_seconds(row["fastrec_seconds"]),
                  format_seconds(row["other_seconds"]), speedup, check))


def _join(cells):
    out = [str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, WIDTHS))]
    return "  ".join(out + list(cells[len(WIDTHS):]))


def format_footer(report):
    lines = [""]
    seen = []
    for row in report["results"]:
        if row["case"] not in seen:
            seen.append(row["case"])
            lines.append(f"{row['case']}: {row['title']}")
    lines.append("fastrec: best of the timed calls after a warm-up; speed-up = other time / fastrec time")
    m = report["machine"]
    if m["load_average"] is not None and m["load_average"] >= m["usable_cores"] / 2:
        lines.append(f"note: load average {m['load_average']:.2f} on {m['usable_cores']} cores at the start: "
                     "other processes compete for the cores, so the timings (threaded ones most) are noisy")
    if report["absent_peers"]:
        lines.append(f"peers not installed (skipped): {', '.join(report['absent_peers'])} "
                     "(pip install 'fastrec[peers]' to compare)")
    for row in report["results"]:
        if row["agree"] is False:
            lines.append(f"MISMATCH: {row['case']} vs {row['compared_with']}: {row['detail']}")
        elif row["agree"] is None:
            lines.append(f"error: {row['case']} vs {row['compared_with']}: {row['detail']}")
    lines.append(f"total {report['elapsed_seconds']:.1f} s")
    return "\n".join(lines)


def mismatches(report):
    return [row for row in report["results"] if row["agree"] is False]
