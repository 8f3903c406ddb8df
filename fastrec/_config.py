"""``fastrec.show_config()``: versions, OpenMP, threads and BLAS, for bug reports."""
import platform
import sys
from importlib import metadata


def _version(dist):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def config_info():
    """The facts ``show_config`` prints, as a dict."""
    import numpy as np
    from threadpoolctl import threadpool_info

    from fastrec import __version__, openmp_enabled
    from fastrec._kernels._openmp_info import omp_max_threads
    from fastrec._threads import effective_num_threads, usable_cores

    return {
        "fastrec": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": np.__version__,
        "scipy": _version("scipy"),
        "numba": _version("numba"),  # not imported: keeps this cheap
        "pandas": _version("pandas"),
        "openmp": openmp_enabled(),
        "openmp_max_threads": omp_max_threads(),
        "usable_cores": usable_cores(),
        "default_num_threads": effective_num_threads(None),
        "blas": [
            {k: pool.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
            for pool in threadpool_info() if pool.get("user_api") == "blas"
        ],
        "peers": {name: _version(name) for name in ("scikit-surprise", "implicit", "sparse-dot-topn")},
    }


def show_config(file=None):
    """Print versions, OpenMP status, thread counts and the BLAS in use."""
    info = config_info()
    out = file or sys.stdout
    for key, value in info.items():
        if key == "blas":
            for pool in value or [{"internal_api": "none found"}]:
                details = ", ".join(f"{k}={v}" for k, v in pool.items() if v is not None)
                print(f"{'blas':<20} {details}", file=out)
        elif key == "peers":
            print(f"{'peers':<20} " + ", ".join(f"{k} {v}" for k, v in value.items()), file=out)
        else:
            print(f"{key:<20} {value}", file=out)
