"""What the compiled kernels were built with (OpenMP or serial)."""
from fastrec._kernels._openmp cimport FASTREC_OPENMP, fastrec_omp_max_threads


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return bool(FASTREC_OPENMP)


def omp_max_threads():
    """OpenMP's default team size (1 without OpenMP)."""
    return fastrec_omp_max_threads()
