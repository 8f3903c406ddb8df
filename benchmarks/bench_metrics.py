"""Ranking metrics for 100,000 users x top-20 at k = 5, 10, 20, and intra-list diversity
of the same lists: the compiled one-pass kernels against the vectorised NumPy references
(``backend="numpy"``).

Run: pytest benchmarks/bench_metrics.py --benchmark-only --benchmark-columns=min,mean,rounds
"""
import numpy as np
import pytest

import fastrec
from fastrec.metrics import intra_list_diversity, ranking_metrics

KS = (5, 10, 20)
GROUP = "ranking metrics: 100k users x top-20, k = 5, 10, 20"


@pytest.fixture(scope="module")
def lists():
    data = fastrec.datasets.synthetic(100_000, 20_000, 1_000_000, seed=0)
    train, test = fastrec.model_selection.train_test_split(data, 0.2, random_state=0)
    rng = np.random.default_rng(0)
    users = np.arange(test.n_users)
    # lists that hit now and then: half test items of the user, half random items
    top = rng.integers(0, test.n_items, (users.size, 20))
    own = test.csr.indices[np.minimum(test.csr.indptr[:-1], max(test.nnz - 1, 0))]
    top[:, ::3] = np.where(test.user_counts[:, None] > 0, own[:, None], top[:, ::3])
    return top, users, test, train


def test_fastrec_metrics(benchmark, lists, num_threads):
    top, users, test, train = lists
    benchmark.group = GROUP
    result = benchmark(ranking_metrics, top, users, test, KS, train=train, num_threads=num_threads)
    reference = ranking_metrics(top, users, test, KS, train=train, backend="numpy")
    assert result == pytest.approx(reference, rel=1e-9)


def test_numpy_reference_metrics(benchmark, lists):
    top, users, test, train = lists
    benchmark.group = GROUP
    benchmark.pedantic(ranking_metrics, args=(top, users, test, KS),
                       kwargs={"train": train, "backend": "numpy"}, rounds=3)


@pytest.fixture(scope="module")
def neighbours(lists):
    return fastrec.similarity.item_similarity(lists[3], "cosine", k=50)


def test_fastrec_diversity(benchmark, lists, neighbours, num_threads):
    benchmark.group = "intra-list diversity: 100k lists of 20, item cosine top-50"
    result = benchmark(intra_list_diversity, lists[0], neighbours, num_threads=num_threads)
    assert result == pytest.approx(intra_list_diversity(lists[0], neighbours, backend="numpy"), rel=1e-9)


def test_numpy_reference_diversity(benchmark, lists, neighbours):
    benchmark.group = "intra-list diversity: 100k lists of 20, item cosine top-50"
    benchmark.pedantic(intra_list_diversity, args=(lists[0], neighbours), kwargs={"backend": "numpy"},
                       rounds=3)
