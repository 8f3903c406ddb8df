"""Pure NumPy/SciPy twins of the compiled kernels: same names, same contracts.

They are the oracles of the tests, the baselines of the benchmarks and the
``backend="numpy"`` path, written for clarity rather than speed.
"""
from fastrec.reference import baseline, blend, knn, metrics, mf, ncf, similarity, topk  # noqa: F401
