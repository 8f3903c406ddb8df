"""Build the Cython kernels of fastrec.

Metadata lives in pyproject.toml; this file only holds the table of extensions and
an OpenMP probe.  Without OpenMP the kernels still build, as serial loops.

Environment switches:
  FASTREC_NO_OPENMP=1      build without OpenMP even where it is available
  FASTREC_CYTHON_DEBUG=1   turn Cython's bounds and wrap-around checks back on
"""
import os
import sys
import tempfile
import textwrap

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# name -> source; every module is a fastrec._kernels.<name> extension
KERNELS = {
    "_openmp_info": "fastrec/_kernels/_openmp_info.pyx",
    "topk": "fastrec/_kernels/topk.pyx",
    "blend": "fastrec/_kernels/blend.pyx",
    "similarity": "fastrec/_kernels/similarity.pyx",
    "knn": "fastrec/_kernels/knn.pyx",
    "metrics": "fastrec/_kernels/metrics.pyx",
    "mips": "fastrec/_kernels/mips.pyx",
}

OPENMP_PROBE = textwrap.dedent(
    """
    #include <omp.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        return omp_get_max_threads() > 0 ? 0 : 1;
    }
    """
)


def _env_flag(name):
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


class BuildExtWithOpenMP(build_ext):
    """Adds -fopenmp to every extension when a test program compiles and links with it."""

    def _openmp_works(self):
        if _env_flag("FASTREC_NO_OPENMP"):
            return False
        with tempfile.TemporaryDirectory() as tmp:
            source = os.path.join(tmp, "probe.c")
            with open(source, "w") as f:
                f.write(OPENMP_PROBE)
            try:
                objects = self.compiler.compile(
                    [source], output_dir=tmp, extra_postargs=["-fopenmp"]
                )
                self.compiler.link_executable(
                    objects, "probe", output_dir=tmp, extra_postargs=["-fopenmp"]
                )
            except Exception:  # any compiler or linker failure means "no OpenMP"
                return False
        return True

    def _force_if_mode_changed(self, mode):
        """setuptools only tracks source times: rebuild when the OpenMP/debug mode changes."""
        os.makedirs(self.build_temp, exist_ok=True)
        marker = os.path.join(self.build_temp, "fastrec-build-mode")
        previous = open(marker).read() if os.path.exists(marker) else None
        if previous != mode:
            self.force = True
        with open(marker, "w") as f:
            f.write(mode)

    def build_extensions(self):
        openmp = self._openmp_works()
        if openmp:
            for ext in self.extensions:
                ext.extra_compile_args.append("-fopenmp")
                ext.extra_link_args.append("-fopenmp")
        else:
            print("fastrec: OpenMP DISABLED (serial kernels)", file=sys.stderr)
        debug = _env_flag("FASTREC_CYTHON_DEBUG")
        self._force_if_mode_changed(f"openmp={openmp} debug={debug}")
        super().build_extensions()


def _extensions():
    debug = _env_flag("FASTREC_CYTHON_DEBUG")
    extensions = [
        Extension(
            f"fastrec._kernels.{name}",
            [source],
            include_dirs=[np.get_include()],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            extra_compile_args=["-O0", "-g"] if debug else ["-O3"],
        )
        for name, source in KERNELS.items()
    ]
    return cythonize(
        extensions,
        build_dir=os.path.join("build", "cython-debug" if debug else "cython"),  # C per mode
        compiler_directives={
            "language_level": 3,
            "boundscheck": debug,
            "wraparound": debug,
            "initializedcheck": debug,
            "cdivision": True,
            "embedsignature": True,
            "binding": True,
        },
    )


setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildExtWithOpenMP})
