"""The `fastrec` command end to end, through a subprocess as a user runs it."""
import json
import subprocess
import sys

import pytest


def run(*args):
    return subprocess.run([sys.executable, "-m", "fastrec.cli", *args], capture_output=True,
                          text=True, timeout=300)


def test_evaluate_synthetic_json():
    out = run("evaluate", "--json", "--models", "popularity,baseline")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["dataset"] == "synthetic-small" and report["k"] == 10
    names = [row["model"] for row in report["results"]]
    assert names == ["popularity", "baseline"]
    baseline = report["results"][1]
    assert 0.5 < baseline["rmse"] < 1.5 and 0 <= baseline["ndcg@10"] <= 1
    assert report["train"] + report["test"] == report["n_interactions"]


def test_evaluate_table():
    out = run("evaluate", "--no-progress", "--models", "baseline", "--split", "leave-one-out")
    assert out.returncode == 0, out.stderr
    assert "NDCG@10" in out.stdout and "baseline" in out.stdout


def test_evaluate_ml100k(ml100k_path):
    out = run("evaluate", "--json", "--data", str(ml100k_path), "--models", "baseline")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert (report["n_users"], report["n_items"], report["n_interactions"]) == (943, 1682, 100000)


def test_info():
    out = run("info", "--json")
    assert out.returncode == 0, out.stderr
    assert isinstance(json.loads(out.stdout)["openmp"], bool)


@pytest.mark.parametrize("args, message", [
    (["evaluate", "--data", "/no/such/place"], "no such file or folder"),
    (["evaluate", "--models", "magic"], "unknown model"),
    (["evaluate", "-k", "0"], "-k must be >= 1"),
    (["evaluate", "--split", "sideways"], "invalid choice"),
])
def test_errors_are_one_line_with_exit_2(args, message):
    out = run(*args)
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr
