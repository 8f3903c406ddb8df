"""Peak memory of one item cosine top-k call, measured in a fresh process.

Run: python benchmarks/similarity_peak_memory.py N_USERS N_ITEMS N_RATINGS K THREADS

Prints one JSON object: the input's bytes (the CSR the caller holds), the output's, and how far
the process's peak resident set (Linux's VmHWM, reset just before the call) rose above its
resident set before the call.  ``bench_similarity.py`` runs it; it needs Linux's /proc.
"""
import gc
import json
import sys

import fastrec
from fastrec.similarity import item_similarity


def _status_kib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _csr_bytes(matrix):
    return matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes


def main(n_users, n_items, n_ratings, k, threads):
    data = fastrec.datasets.synthetic(n_users, n_items, n_ratings, kind="implicit", seed=0)
    item_similarity(fastrec.datasets.synthetic(50, 40, 400, kind="implicit", seed=0), "cosine", k,
                    num_threads=threads)  # imports and first-call set-up, outside the measurement
    gc.collect()
    before_kib = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # resets VmHWM to the current resident set
    result = item_similarity(data, "cosine", k, num_threads=threads)
    peak_kib = _status_kib("VmHWM")
    return {"input_bytes": _csr_bytes(data.csr), "output_bytes": _csr_bytes(result),
            "peak_rise_bytes": (peak_kib - before_kib) * 1024}


if __name__ == "__main__":
    print(json.dumps(main(*(int(arg) for arg in sys.argv[1:]))))
