"""fastrec: a fast, trustworthy recommender-system backend.

Compiled kernels (Cython + OpenMP, Numba) behind a small, checked Python API::

    import fastrec
    data = fastrec.datasets.synthetic(2_000, 1_000, 50_000)
    model = fastrec.Baseline().fit(data)
    items, scores = model.recommend(data.user_ids[:5], n=10)

Submodules and classes load on first use, so ``import fastrec`` stays quick.
"""
import importlib

from fastrec._version import __version__

try:
    from fastrec._kernels._openmp_info import openmp_enabled
except ImportError as exc:  # pragma: no cover - depends on the build
    raise ImportError(
        "fastrec's compiled extensions are not built; run `pip install -e .` "
        f"in the source tree (or `pip install .`). Original error: {exc}"
    ) from exc

# public name -> module that defines it
_LAZY = {
    "Interactions": "fastrec.data",
    "top_k": "fastrec.topk",
    "Popularity": "fastrec.models.popularity",
    "Baseline": "fastrec.models.baseline",
    "ItemKNN": "fastrec.models.knn",
    "UserKNN": "fastrec.models.knn",
    "MatrixFactorization": "fastrec.models.mf",
    "NeuralCF": "fastrec.models.ncf",
    "Blend": "fastrec.models.blend",
    "load": "fastrec.models.base",
    "evaluate": "fastrec.evaluation",
    "evaluate_sampled": "fastrec.evaluation",
    "show_config": "fastrec._config",
    "FastrecWarning": "fastrec.exceptions",
    "NotFittedError": "fastrec.exceptions",
}
_SUBMODULES = {"datasets", "model_selection", "metrics", "reference", "testing", "models",
               "data", "topk", "evaluation", "io", "similarity"}

__all__ = sorted([*_LAZY, *_SUBMODULES, "openmp_enabled", "__version__"])


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"fastrec.{name}")
    else:
        raise AttributeError(f"module 'fastrec' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return __all__
