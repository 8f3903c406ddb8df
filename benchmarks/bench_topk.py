"""Top-k kernel vs its NumPy reference (argpartition + sort) on a dense score block.

Run: pytest benchmarks/bench_topk.py --benchmark-only --benchmark-columns=min,mean,rounds
"""
import numpy as np
import pytest

import fastrec
from fastrec import reference
from fastrec.testing import assert_topk_equal

N_ROWS, N_COLS, K = 10_000, 20_000, 10


@pytest.fixture(scope="module")
def block():
    return np.random.default_rng(0).standard_normal((N_ROWS, N_COLS)).astype(np.float32)


@pytest.fixture(scope="module")
def expected(block):
    return reference.topk.dense_topk(block, K)


def test_topk_compiled(benchmark, block, expected, num_threads):
    got = fastrec.top_k(block, K, num_threads=num_threads)
    assert_topk_equal(got, expected)  # verify, then time
    benchmark.group = f"top_k[{N_ROWS}x{N_COLS} float32, k={K}]"
    benchmark.extra_info.update(num_threads=num_threads, openmp=fastrec.openmp_enabled())
    benchmark.pedantic(fastrec.top_k, args=(block, K), kwargs={"num_threads": num_threads},
                       rounds=5, warmup_rounds=1)


def test_topk_numpy_reference(benchmark, block):
    benchmark.group = f"top_k[{N_ROWS}x{N_COLS} float32, k={K}]"
    benchmark.pedantic(reference.topk.dense_topk, args=(block, K), rounds=3)


def test_topk_argpartition_only(benchmark, block):
    """The usual hand-rolled NumPy idiom (no tie order): argpartition then argsort of k."""
    def idiom(scores, k):
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        vals = np.take_along_axis(scores, part, axis=1)
        order = np.argsort(-vals, axis=1)
        return np.take_along_axis(part, order, axis=1), np.take_along_axis(vals, order, axis=1)

    benchmark.group = f"top_k[{N_ROWS}x{N_COLS} float32, k={K}]"
    benchmark.pedantic(idiom, args=(block, K), rounds=3)
