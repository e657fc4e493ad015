"""The command line, as a user meets it: one-line errors, a run that writes records, listings."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def zsbench(*args: str, cwd=None) -> subprocess.CompletedProcess:
    """The command in a fresh interpreter, as a user starts it."""
    return subprocess.run([sys.executable, "-m", "benchmark.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


@pytest.fixture
def zsbench_here(capsys, monkeypatch):
    """The command's own entry point (argument parsing, error handling, exit codes) in this process: the same
    behaviour as a fresh interpreter without paying its start-up for every case."""
    from benchmark.cli import main

    def invoke(*args: str, cwd=None) -> subprocess.CompletedProcess:
        if cwd is not None:
            monkeypatch.chdir(cwd)
        monkeypatch.setattr(sys, "argv", ["zsbench", *args])
        try:
            main()
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, captured.out, captured.err)

    return invoke


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--methods", "nope", "--dataset", "wikipedia", "--synthetic"], "unknown method 'nope'"),
        (["run", "--methods", "random", "--dataset", "atlantis", "--synthetic"], "unknown dataset 'atlantis'"),
        (["run", "--methods", "random", "--dataset", "tu-berlin"], "no prepared tu-berlin data in"),
        (["run", "--methods", "random", "--dataset", "tu-berlin", "--synthetic", "--split", "x"], "has no split 'x'"),
        (["run", "--methods", "nomodule.sub:Thing", "--dataset", "wikipedia", "--synthetic"], "cannot import module"),
        (["run", "--methods", "random", "--dataset", "wikipedia", "--synthetic", "--seeds", "a"], "--seeds must be"),
    ],
)
def test_errors_are_one_line_without_traceback(tmp_path, args, message, zsbench_here):
    result = zsbench_here(*args, "--results", str(tmp_path / "r"), cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_missing_real_data_names_folder_prepare_and_synthetic(tmp_path):
    err = zsbench("run", "--methods", "random", "--dataset", "tu-berlin", cwd=tmp_path).stderr  # a real start-up
    assert "runs failed" not in err and "/tu-berlin/" in err and "zsbench datasets prepare tu-berlin" in err and "--synthetic" in err


def test_run_writes_records_and_a_rerun_skips(tmp_path, zsbench_here):
    args = ["run", "--methods", "random", "--dataset", "wikipedia", "--synthetic", "--scale", "0.05",
            "--seeds", "0,1", "--results", str(tmp_path / "r")]
    first = zsbench_here(*args)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("done in") == 2  # one line per finished run when the output is not a terminal
    records = sorted((tmp_path / "r").rglob("*.json"))
    assert len(records) == 2
    assert json.loads(records[0].read_text())["source"] == "synthetic"
    second = zsbench_here(*args)
    assert second.returncode == 0 and "2 skipped" in second.stdout


@pytest.mark.slow
def test_user_method_by_module_path(tmp_path):
    (tmp_path / "mymethods.py").write_text(
        "from dataclasses import dataclass\n"
        "import numpy as np\n"
        "from benchmark.contract import Method\n"
        "@dataclass\n"
        "class Mean(Method):\n"
        "    name = 'mean'\n"
        "    def fit(self, train, seed):\n"
        "        return self\n"
        "    def embed(self, modality, X):\n"
        "        return np.asarray(X)[:, :8]\n"
    )
    result = zsbench("run", "--methods", "mymethods:Mean", "--dataset", "wikipedia", "--synthetic", "--scale", "0.05",
                     "--results", str(tmp_path / "r"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "r").rglob("*.json"))) == 1


def test_listings(zsbench_here):
    assert "semantic-regression" in zsbench_here("methods").stdout
    listing = zsbench_here("datasets").stdout
    assert "tu-berlin" in listing and "sake-30" in listing
    info = zsbench_here("datasets", "info", "sketchy").stdout
    assert "eccv-21" in info and "teddy_bear" in info
    assert info.splitlines()[0] == "Sketchy Extended (sketch-image)"  # titled once
    listing = zsbench_here("datasets", "list").stdout
    assert sum("pascal-sentences" in line for line in listing.splitlines()) == 1 and "…" not in listing
    methods = json.loads(zsbench_here("methods", "--json").stdout)
    assert {"cfsa", "semantic-regression"} <= {m["name"] for m in methods}
    datasets = json.loads(zsbench_here("datasets", "list", "--json").stdout)
    assert {d["name"] for d in datasets} >= {"emoji", "tu-berlin"}
