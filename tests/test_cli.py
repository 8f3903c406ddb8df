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


def test_recommend_and_explain_synthetic_json():
    out = run("recommend", "--user", "3", "-n", "4", "--explain", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["user"] == 3 and report["model"] == "item-knn"
    assert 0 < len(report["items"]) <= 4
    scores = [row["score"] for row in report["items"]]
    assert scores == sorted(scores, reverse=True)
    assert all(len(row["because"]) <= 3 for row in report["items"])
    assert any(row["because"] for row in report["items"])


def test_similar_synthetic_json():
    out = run("similar", "--item", "7", "-n", "5", "--model", "mf", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["item"] == 7 and len(report["similar"]) == 5
    assert 7 not in [row["item"] for row in report["similar"]]


@pytest.mark.parametrize("args, message", [
    (("recommend", "--user", "999999"), "--user: unknown id '999999'"),
    (("recommend", "--user", "abc"), "ids of this dataset are integers"),
    (("recommend", "--user", "1", "--model", "svdpp"), "--model: unknown model 'svdpp'"),
    (("recommend", "--user", "1", "-n", "0"), "-n must be >= 1"),
    (("similar", "--item", "1", "--model", "baseline"), "has no item similarity"),
])
def test_recommend_and_similar_usage_errors(args, message):
    out = run(*args)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr


def test_recommend_shows_titles_on_movielens(ml100k_path):
    out = run("recommend", "--data", str(ml100k_path), "--user", "196", "-n", "3")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("top 3 for user 196") and "(19" in out.stdout  # titles carry years
    out = run("similar", "--data", str(ml100k_path), "--item", "50", "-n", "3")
    assert "Star Wars" in out.stdout and "Empire Strikes Back" in out.stdout
