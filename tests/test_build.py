"""The installed package: extensions, OpenMP flag, thread resolver, config, quick import."""
import importlib
import io
import subprocess
import sys

import pytest

import fastrec
from fastrec import _threads


def test_openmp_flag_is_bool():
    assert isinstance(fastrec.openmp_enabled(), bool)


def test_every_reference_has_a_compiled_twin():
    pairs = {"topk": ("fastrec._kernels.topk", ["dense_topk"]),
             "similarity": ("fastrec._kernels.similarity", ["similarity_topk"]),
             "baseline": ("fastrec._kernels.baseline_nb", ["baseline_sgd"])}
    for ref_name, (kernel_module, names) in pairs.items():
        ref = importlib.import_module(f"fastrec.reference.{ref_name}")
        kernels = importlib.import_module(kernel_module)
        for name in names:
            assert callable(getattr(ref, name)) and callable(getattr(kernels, name))


@pytest.mark.parametrize("given, expected", [(1, 1), (2, 2), (7, 7)])
def test_effective_num_threads_positive(given, expected, monkeypatch):
    monkeypatch.setattr("fastrec._kernels._openmp_info.openmp_enabled", lambda: True)
    assert _threads.effective_num_threads(given) == expected


def test_effective_num_threads_defaults_and_negatives(monkeypatch):
    monkeypatch.setattr("fastrec._kernels._openmp_info.openmp_enabled", lambda: True)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cores = _threads.usable_cores()
    assert _threads.effective_num_threads(None) == cores == _threads.effective_num_threads(0)
    assert _threads.effective_num_threads(-1) == cores
    assert _threads.effective_num_threads(-cores - 5) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert _threads.effective_num_threads(None) == 3


def test_effective_num_threads_without_openmp_warns_once(monkeypatch):
    monkeypatch.setattr("fastrec._kernels._openmp_info.openmp_enabled", lambda: False)
    monkeypatch.setattr(_threads, "_warned_no_openmp", False)
    with pytest.warns(fastrec.FastrecWarning, match="without OpenMP"):
        assert _threads.effective_num_threads(4) == 1
    assert _threads.effective_num_threads(4) == 1  # no second warning (would error under -W)


@pytest.mark.parametrize("bad", [1.5, "2", True])
def test_effective_num_threads_rejects(bad):
    with pytest.raises(TypeError, match="num_threads must be an int"):
        _threads.effective_num_threads(bad)


def test_show_config_prints_the_essentials():
    out = io.StringIO()
    fastrec.show_config(file=out)
    text = out.getvalue()
    for key in ("fastrec", "numpy", "scipy", "openmp", "default_num_threads", "blas"):
        assert key in text


def test_import_is_light():
    """`import fastrec` must not pull in numba, scipy or pandas (they load on first use)."""
    code = ("import sys, fastrec; heavy = [m for m in ('numba', 'scipy', 'pandas') if m in sys.modules];"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_numba_kernel_is_cached_across_processes(tmp_path):
    code = ("import numpy as np; from fastrec._kernels.baseline_nb import baseline_sgd as k;"
            "k(np.ones(2), np.zeros(2, np.int64), np.zeros(2, np.int64), 0.0, np.zeros(1), np.zeros(1), 1, 0.0, 0.1);"
            "print(len(k.stats.cache_hits))")
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    second = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(second.stdout.strip()) >= 1, (first.stdout, second.stdout)
