"""``fastrec bench``: the runner on tiny sizes, its agreement checks and the command."""
import json
import sys

import numpy as np
import pytest

from fastrec import bench, cli


def _fake_case(sizes, num_threads, threads, preset):
    """A case whose reference gives another answer, and a peer that breaks."""
    def check(ours, theirs):
        np.testing.assert_array_equal(ours, theirs)

    def broken():
        raise RuntimeError("peer went away")

    return bench.Prepared("fake: ones vs twos", lambda: np.ones(3), [
        bench.Comparison("twos", lambda: np.full(3, 2.0), check),
        bench.Comparison("broken peer", broken, check, compiled=True, peer="brokenpeer"),
    ])


@pytest.fixture
def fake_case(monkeypatch):
    monkeypatch.setitem(bench.CASES, "fake", _fake_case)
    monkeypatch.setitem(bench.PRESETS["tiny"], "fake", ())


def test_rows_of_two_cases():
    report = bench.run(["topk", "metrics"], preset="tiny", num_threads=1)
    assert report["machine"]["threads"] == 1 and isinstance(report["machine"]["openmp"], bool)
    rows = report["results"]
    assert [row["case"] for row in rows] == ["topk", "metrics"]
    for row in rows:
        assert row["agree"] is True and row["detail"] == "" and row["unit"] == "call"
        assert row["fastrec_seconds"] > 0 and row["other_seconds"] > 0
        assert row["speedup"] == pytest.approx(row["other_seconds"] / row["fastrec_seconds"])
    assert report["elapsed_seconds"] > 0


def test_every_case_agrees_at_tiny_size():
    report = bench.run(preset="tiny", num_threads=2)
    assert {row["case"] for row in report["results"]} == set(bench.CASES)
    bad = [(row["case"], row["compared_with"], row["detail"]) for row in report["results"] if not row["agree"]]
    assert not bad
    mf = [row for row in report["results"] if row["case"] == "mf"]
    assert all(row["unit"] == "update" for row in mf) and "PER RATING UPDATE" in mf[0]["title"]


def test_absent_peers_are_skipped_and_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "sparse_dot_topn", None)  # import fails
    monkeypatch.setitem(sys.modules, "implicit.nearest_neighbours", None)
    report = bench.run(["similarity"], preset="tiny")
    assert report["absent_peers"] == ["sparse-dot-topn", "implicit"]
    assert [row["compared_with"] for row in report["results"]] == ['reference.similarity (backend="numpy")']
    assert "peers not installed (skipped): sparse-dot-topn, implicit" in bench.format_footer(report)


def test_mismatch_and_peer_failure_are_reported(fake_case):
    report = bench.run(["fake"], preset="tiny")
    wrong, broken = report["results"]
    assert wrong["agree"] is False and "Arrays are not equal" in wrong["detail"]
    assert wrong["speedup"] is not None
    assert broken["agree"] is None and broken["other_seconds"] is None
    assert broken["detail"] == "brokenpeer failed: RuntimeError: peer went away"
    assert bench.mismatches(report) == [wrong]
    assert "MISMATCH" in bench.format_row(wrong) and "error" in bench.format_row(broken)


def test_cli_mismatch_exits_1(fake_case, capsys):
    assert cli.main(["bench", "--preset", "tiny", "--cases", "fake"]) == 1
    out, err = capsys.readouterr()
    assert "MISMATCH" in out and "fastrec bench: MISMATCH in fake vs twos" in err


def test_cli_json(capsys):
    assert cli.main(["bench", "--preset", "tiny", "--cases", "metrics", "--json", "--threads", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["preset"] == "tiny" and report["machine"]["threads"] == 1
    (row,) = report["results"]
    assert row["case"] == "metrics" and row["agree"] is True and row["speedup"] > 0


def test_cli_table(capsys):
    assert cli.main(["bench", "--preset", "tiny", "--cases", "topk"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("fastrec ") and "OpenMP" in lines[0] and "cores" in lines[0]
    assert lines[1].split()[:3] == ["case", "compared", "with"]
    row = lines[3].split()
    assert row[0] == "topk" and row[-1] == "ok" and row[-2].endswith("x")


@pytest.mark.parametrize("cases", ["topk,magic", ",", "MF"])
def test_cli_unknown_case_exits_2(cases, capsys):
    assert cli.main(["bench", "--cases", cases]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown case" in err and "choose from topk" in err


def test_cli_lists_the_bench_cases():
    assert cli.BENCH_CASES == tuple(bench.CASES)


@pytest.mark.parametrize("seconds, text", [(1.5, "1.5 s"), (0.002, "2 ms"), (3.25e-5, "32.5 us"),
                                           (5e-8, "50 ns"), (None, "-")])
def test_format_seconds(seconds, text):
    assert bench.format_seconds(seconds) == text
