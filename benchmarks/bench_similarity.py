"""Item cosine top-50 neighbours: fastrec vs the SciPy reference, implicit and sparse_dot_topn;
Surprise's measures on ml-100k vs scikit-surprise.

Run: pytest benchmarks/bench_similarity.py --benchmark-only --benchmark-columns=min,mean,rounds
(FASTREC_BENCH_10M=1 adds the 10M-rating size; every peer runs on the same data.)
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

import fastrec
from fastrec.similarity import item_similarity, topk_arrays, user_similarity
from fastrec.testing import surprise_trainset

K = 50
PEAK_ALLOWANCE_BYTES = 200 * 2**20  # the "input + output + ~200 MB"
SIZES = {"1M": (100_000, 20_000, 1_000_000)}
if os.environ.get("FASTREC_BENCH_10M"):
    SIZES["10M"] = (100_000, 20_000, 10_000_000)


@pytest.fixture(scope="module", params=list(SIZES))
def ratings(request):
    n_users, n_items, n_ratings = SIZES[request.param]
    data = fastrec.datasets.synthetic(n_users, n_items, n_ratings, kind="implicit", seed=0)
    return request.param, data


@pytest.fixture(scope="module")
def expected(ratings):
    _, data = ratings
    return topk_arrays(item_similarity(data, "cosine", K, num_threads=2))


def _group(name):
    return f"item cosine top-{K} [{name}, 2 threads]"


def test_fastrec_cosine(benchmark, ratings, expected):
    name, data = ratings
    benchmark.group = _group(name)
    benchmark.extra_info.update(openmp=fastrec.openmp_enabled())
    result = benchmark.pedantic(item_similarity, args=(data, "cosine", K), kwargs={"num_threads": 2},
                                rounds=3, warmup_rounds=1)
    np.testing.assert_array_equal(topk_arrays(result)[0], expected[0])


def test_scipy_reference_cosine(benchmark, ratings, expected):
    name, data = ratings
    benchmark.group = _group(name)
    result = benchmark.pedantic(item_similarity, args=(data, "cosine", K),
                                kwargs={"backend": "numpy"}, rounds=1)
    ids, scores = topk_arrays(result)
    np.testing.assert_allclose(scores, expected[1], rtol=1e-5)


@pytest.mark.filterwarnings("ignore:Method expects CSR input")
def test_implicit_cosine(benchmark, ratings, expected):
    implicit_nn = pytest.importorskip("implicit.nearest_neighbours")
    name, data = ratings
    user_items = sp.csr_matrix(data.csr, dtype=np.float32)
    model = implicit_nn.CosineRecommender(K=K + 1, num_threads=2)  # implicit keeps the item itself
    benchmark.group = _group(name)
    benchmark.pedantic(model.fit, args=(user_items,), kwargs={"show_progress": False}, rounds=3,
                       warmup_rounds=1)
    theirs = sp.csr_matrix(model.similarity)
    theirs.setdiag(0)
    theirs.eliminate_zeros()
    ids, scores = topk_arrays(theirs, K)
    np.testing.assert_allclose(np.sort(scores, axis=1), np.sort(expected[1], axis=1), rtol=1e-4)


def test_sparse_dot_topn_cosine(benchmark, ratings, expected):
    topn = pytest.importorskip("sparse_dot_topn")
    name, data = ratings
    items = sp.csr_matrix(data.csc.T, dtype=np.float32)  # items x users
    norms = np.sqrt(np.asarray(items.multiply(items).sum(axis=1))).ravel()
    normed = sp.csr_matrix(sp.diags(1 / np.maximum(norms, 1e-30)) @ items, dtype=np.float32)

    def run():
        return topn.sp_matmul_topn(normed, normed.T.tocsr(), top_n=K + 1, sort=True, n_threads=2)

    benchmark.group = _group(name)
    theirs = benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    theirs.setdiag(0)
    theirs.eliminate_zeros()
    _, scores = topk_arrays(theirs, K)
    np.testing.assert_allclose(np.sort(scores, axis=1), np.sort(expected[1], axis=1), rtol=1e-4,
                               atol=1e-6)


@pytest.mark.parametrize("name", list(SIZES))
def test_fastrec_cosine_peak_memory(benchmark, name):
    """The issue's memory target: the call's peak adds no more than the output + ~200 MB to
    the input the caller holds.  Timed is the whole fresh process, data generation included."""
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("needs Linux's /proc/self/clear_refs")
    script = os.path.join(os.path.dirname(__file__), "similarity_peak_memory.py")
    args = [sys.executable, script, *(str(n) for n in SIZES[name]), str(K), "2"]

    # glibc hands large blocks back to the system when freed, so that memory freed before the
    # call (the data generation's) does not hide what the call itself takes
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")

    def run():
        return json.loads(subprocess.run(args, check=True, capture_output=True, text=True,
                                         env=env).stdout)

    benchmark.group = f"item cosine top-{K} peak memory [{name}, 2 threads, fresh process]"
    measured = benchmark.pedantic(run, rounds=1)
    mib = {key.replace("_bytes", "_mib"): round(value / 2**20, 1) for key, value in measured.items()}
    benchmark.extra_info.update(mib)
    print(f"\n{name}: {mib}")
    assert measured["peak_rise_bytes"] <= measured["output_bytes"] + PEAK_ALLOWANCE_BYTES, mib


# -------------------------------------------------------------- Surprise's measures
SURPRISE = [("cosine", "corated_cosine"), ("msd", "msd"), ("pearson", "pearson"),
            ("pearson_baseline", "pearson_baseline")]


@pytest.fixture(scope="module")
def ml100k(ml100k_path):
    return fastrec.datasets.load_movielens(ml100k_path / "u1.base")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("user_based", [False, True], ids=["item", "user"])
@pytest.mark.parametrize("surprise_name, ours", SURPRISE, ids=[s for s, _ in SURPRISE])
def test_fastrec_surprise_measures(benchmark, ml100k, surprise_name, ours, user_based, dtype):
    """Both output dtypes match Surprise within 1e-5 (tests/test_similarity.py); float32
    is the library's default."""
    fn = user_similarity if user_based else item_similarity
    benchmark.group = f"ml-100k {surprise_name} {'user' if user_based else 'item'}-based, all pairs"
    baseline = fastrec.Baseline().fit(ml100k) if ours == "pearson_baseline" else None
    benchmark(fn, ml100k, ours, None, dtype=dtype, num_threads=2, baseline=baseline)


@pytest.mark.parametrize("user_based", [False, True], ids=["item", "user"])
@pytest.mark.parametrize("surprise_name, ours", SURPRISE, ids=[s for s, _ in SURPRISE])
def test_surprise_compute_similarities(benchmark, ml100k, surprise_name, ours, user_based):
    surprise = pytest.importorskip("surprise")
    pytest.importorskip("pandas")
    trainset = surprise_trainset(ml100k)
    algo = surprise.KNNBasic(sim_options={"name": surprise_name, "user_based": user_based}, verbose=False)
    algo.trainset = trainset
    algo.bu = algo.bi = None
    if surprise_name == "pearson_baseline":
        algo.bu, algo.bi = algo.compute_baselines()  # not timed, as ours gets a fitted Baseline
    benchmark.group = f"ml-100k {surprise_name} {'user' if user_based else 'item'}-based, all pairs"
    benchmark.pedantic(algo.compute_similarities, rounds=2)
