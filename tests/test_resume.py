"""Resume and no lost data: SIGKILL halfway then rerun, two grids on one folder, killed writers' leftovers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from benchmark.core.store import STALE_TEMP_AGE_S, ResultStore
from benchmark.execution.grid import load_grid
from benchmark.execution.plan import run_grid_with
from benchmark.testing import FIT_LOG_ENV

ROOT = Path(__file__).resolve().parents[1]
N_SEEDS = 6
GRID = f"""
seeds = {list(range(N_SEEDS))}
[[methods]]
name = "benchmark.testing:RidgeProjection"
params = {{ delay_s = 0.15 }}
[[datasets]]
name = "wikipedia"
synthetic = true
scale = 0.05
"""


@pytest.fixture()
def grid_file(tmp_path: Path) -> Path:
    path = tmp_path / "grid.toml"
    path.write_text(GRID)
    return path


def _cli(grid_file: Path, results: Path, env_extra: dict[str, str] | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", "benchmark.cli", "run", "--config", str(grid_file),
                             "--results", str(results)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _records(root: Path) -> dict[str, dict]:
    return {str(path.relative_to(root)): record.to_json() for path, record in ResultStore(root).records()}


def _same_records(a: Path, b: Path) -> None:
    """Same record files with the same run content (timings and dates aside) and the same embeddings."""
    ra, rb = _records(a), _records(b)
    assert sorted(ra) == sorted(rb)
    for name in ra:
        for key in ("metrics", "config", "identity", "training_log", "dataset", "split", "grid", "embeddings_file"):
            assert json.dumps(ra[name].get(key)) == json.dumps(rb[name].get(key)), (name, key)
        with np.load(a / name.replace(".json", ".npz")) as za, np.load(b / name.replace(".json", ".npz")) as zb:
            assert sorted(za.files) == sorted(zb.files)
            for key in za.files:
                assert np.array_equal(za[key], zb[key]), (name, key)


def _wait_for_records(root: Path, at_least: int, proc: subprocess.Popen, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = len(list(root.rglob("*.json"))) if root.exists() else 0
        if n >= at_least:
            return n
        if proc.poll() is not None:
            pytest.fail(f"the grid ended before it could be killed: {proc.stderr.read()}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("the grid wrote no records in time")


@pytest.mark.slow
def test_sigkill_halfway_then_rerun_gives_the_uninterrupted_records(tmp_path, grid_file):
    grid = load_grid(grid_file)
    reference = run_grid_with(grid, tmp_path / "uninterrupted")
    assert [r.status for r in reference.results] == ["done"] * N_SEEDS

    killed = tmp_path / "killed"
    proc = _cli(grid_file, killed)
    _wait_for_records(killed, 2, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    finished = len(_records(killed))
    assert 0 < finished < N_SEEDS, "the kill must land halfway through the grid"

    rerun = run_grid_with(load_grid(grid_file), killed)
    statuses = [r.status for r in rerun.results]
    assert statuses.count("skipped") == finished and statuses.count("done") == N_SEEDS - finished
    _same_records(tmp_path / "uninterrupted", killed)
    assert not list(killed.rglob("*.lock")), "a rerun leaves no lock files behind"


@pytest.mark.slow  # two grids, one in a fresh interpreter: about 15 s on two busy cores
def test_two_grids_on_one_folder_run_each_configuration_once(tmp_path, grid_file, monkeypatch):
    """One grid in another process, one here, started together on the same results folder."""
    results, fit_log = tmp_path / "shared", tmp_path / "fits.log"
    monkeypatch.setenv(FIT_LOG_ENV, str(fit_log))
    proc = _cli(grid_file, results)
    _wait_for_records(results, 1, proc)  # both grids now work on the folder at once
    here = run_grid_with(load_grid(grid_file), results)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert {r.status for r in here.results} <= {"done", "skipped"}
    fits = fit_log.read_text().splitlines()
    assert sorted(fits) == sorted(f"ridge-projection {s}" for s in range(N_SEEDS)), "every run once, none twice"
    records = _records(results)
    assert len(records) == N_SEEDS
    assert len({json.dumps(r["identity"], sort_keys=True) for r in records.values()}) == N_SEEDS
    assert not list(results.rglob("superseded")) and not list(results.rglob(".*.tmp"))
    assert not list(results.rglob("*.lock"))


def test_a_killed_writers_temp_file_is_never_a_record_and_is_cleaned(tmp_path):
    store = ResultStore(tmp_path)
    folder = tmp_path / "wikipedia-synthetic" / "random"
    folder.mkdir(parents=True)
    from tests.conftest import make_tiny_dataset, run_method

    done = run_method("random", make_tiny_dataset(), 0, store).path
    os.replace(done, folder / "seed0-aaaa.json")
    # What a writer killed mid-write leaves: a hidden, truncated temp file (and a lock file).
    stale = folder / ".seed1-bbbb.json.4242-deadbeef.tmp"
    stale.write_text('{"schema_version": 1, "method": "ran')
    (folder / "seed1-bbbb.lock").touch()
    assert [p.name for p, _ in store.records()] == ["seed0-aaaa.json"]

    fresh = folder / ".seed2-cccc.json.4243-deadbeef.tmp"
    fresh.write_text("{")
    old = time.time() - 2 * STALE_TEMP_AGE_S
    os.utime(stale, (old, old))
    assert store.remove_stale_temps() == [stale]
    assert fresh.exists(), "a young temp file may belong to a live writer"


def test_a_temp_file_a_live_writer_holds_is_not_removed(tmp_path):
    import fcntl

    tmp = tmp_path / ".seed0-aaaa.json.1-x.tmp"
    with open(tmp, "wb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        old = time.time() - 2 * STALE_TEMP_AGE_S
        os.utime(tmp, (old, old))
        # A cleaner in another process (flock locks are per open file, so a second open conflicts too).
        assert ResultStore(tmp_path).remove_stale_temps() == []
    assert tmp.exists()


def test_claim_is_exclusive_and_leaves_no_lock_file(tmp_path):
    store = ResultStore(tmp_path)
    path = tmp_path / "d" / "m" / "seed0-abc.json"
    seen = []

    def second_grid() -> None:
        with store.claim(path) as second:
            seen.append(second)

    with store.claim(path) as first:
        assert first
        thread = threading.Thread(target=second_grid)
        thread.start()
        thread.join()
    assert seen == [False]
    assert not path.with_suffix(".lock").exists()
    with store.claim(path) as again:
        assert again, "a released claim can be taken again"


def test_claim_on_a_lock_file_removed_meanwhile_is_refused(tmp_path, monkeypatch):
    """The lock file was removed (its holder finished) between our open and our lock: we must not run."""
    store = ResultStore(tmp_path)
    path = tmp_path / "d" / "m" / "seed0-abc.json"
    real_flock = __import__("fcntl").flock

    def flock_after_removal(handle, op):
        if op & __import__("fcntl").LOCK_EX:
            path.with_suffix(".lock").unlink(missing_ok=True)
        return real_flock(handle, op)

    monkeypatch.setattr("benchmark.core.store.fcntl.flock", flock_after_removal)
    with store.claim(path) as claimed:
        assert not claimed


@pytest.mark.slow  # a grid on two worker processes interrupted, then rerun: about 20 s on two busy cores
def test_ctrl_c_under_jobs_2_keeps_finished_records_leaves_no_partial_one_and_a_rerun_finishes(tmp_path, grid_file):
    """Ctrl-C reaches the whole process group (the driver and its two workers), as a terminal sends it."""
    # runs of a second each, so that the interrupt lands while runs are left (at 0.15 s an idle machine finished
    # the grid before the signal arrived)
    grid_file.write_text(GRID.replace("delay_s = 0.15", "delay_s = 1.0"))
    reference = run_grid_with(load_grid(grid_file), tmp_path / "uninterrupted")
    assert [r.status for r in reference.results] == ["done"] * N_SEEDS
    results = tmp_path / "interrupted"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "benchmark.cli", "run", "--config", str(grid_file), "--results",
                             str(results), "--jobs", "2"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            # as from a terminal: a suite started in the background (`cmd &`) ignores SIGINT, and
                            # its children would inherit that and never see the Ctrl-C
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    _wait_for_records(results, 2, proc)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted: " in err and "rerun to finish the rest" in err
    finished = _records(results)
    assert 0 < len(finished) < N_SEEDS, "the interrupt must land halfway through the grid"
    # No partial record: every file under the folder is a whole record with both its sidecars (no temp, no lock,
    # no sidecar without its record), and each finished record is the uninterrupted run's, embeddings included.
    names = sorted(str(p.relative_to(results)) for p in results.rglob("*") if p.is_file())
    assert names == sorted(f"{stem[:-5]}{s}" for stem in finished for s in (".json", ".npz", ".queries.parquet"))
    reference_records = _records(tmp_path / "uninterrupted")
    for name, record in finished.items():
        for key in ("metrics", "config", "identity", "embeddings_file"):
            assert json.dumps(record.get(key)) == json.dumps(reference_records[name].get(key)), (name, key)
    rerun = run_grid_with(load_grid(grid_file), results, executor="processes", jobs=2)
    statuses = [r.status for r in rerun.results]
    assert statuses.count("skipped") == len(finished) and statuses.count("done") == N_SEEDS - len(finished)
    _same_records(tmp_path / "uninterrupted", results)
    assert not list(results.rglob("*.lock")) and not list(results.rglob(".*.tmp"))
