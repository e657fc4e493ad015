"""The results store: one JSON record per run, written atomically, found again by its configuration.

A record's file name carries a hash of everything that defines the run (method and hyper-parameters,
dataset, source, split and its hash, data provenance, seed), so a rerun of the same grid finds the
records it already has and skips them. A record is written to a temporary file in the same folder and
renamed into place: a reader sees the whole record or none. A run in progress holds an exclusive lock on
its claim file, so two grids sharing a folder never run the same configuration twice at once. ``--force``
never destroys an older record: it is moved to ``superseded/`` first.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmark.contract import ZSBenchError
from benchmark.core.record import SCHEMA_VERSION, RunRecord, read_json  # noqa: F401 - SCHEMA_VERSION re-exported
from benchmark.core.spec import config_key, safe_name

#: The folder of run records when no grid file or ``--results`` names another.
DEFAULT_RESULTS = "results/runs"
#: Where ``zsbench tune`` keeps its studies and ``zsbench run --tuned`` reads them, unless told otherwise.
DEFAULT_TUNING = "results/tuning"
#: Sidecar files that belong to a record (same stem): moved with it to ``superseded/``.
SIDECAR_SUFFIXES = (".npz", ".queries.parquet")
#: A temporary file older than this whose writer no longer holds its lock is a killed writer's.
STALE_TEMP_AGE_S = 60.0


class ResultStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path_for(self, identity: dict[str, Any]) -> Path:
        folder = self.root / safe_name(f"{identity['dataset']}-{identity['source']}") / safe_name(identity["method"])
        return folder / f"seed{identity['seed']}-{config_key(identity)}.json"

    def load(self, path: Path) -> RunRecord | None:
        """The record at ``path``, or None when there is none (an unreadable file is reported, not hidden)."""
        if not path.is_file():
            return None
        return RunRecord.load(path)

    def ensure_folder(self, folder: Path | None = None) -> Path:
        """Create ``folder`` (default: the store's root) and check it is writable; a one-line error otherwise."""
        folder = self.root if folder is None else Path(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ZSBenchError(f"cannot create results folder {folder}: {err.strerror}; pass --results DIR") from None
        if not os.access(folder, os.W_OK):
            raise ZSBenchError(f"results folder {folder} is not writable; fix its permissions or pass --results DIR")
        return folder

    @contextlib.contextmanager
    def claim(self, path: Path) -> Iterator[bool]:
        """Hold an exclusive lock for running ``path``'s configuration; yields False if another holds it.

        The lock file is removed while still locked, so a grid that locked an already removed lock file
        (it opened it just before the removal) sees that the path now names another file and reports busy:
        otherwise it and a grid that created a fresh lock file could both run the same configuration.
        A killed holder's lock is released by the kernel, so a rerun claims the configuration again.
        """
        self.ensure_folder(path.parent)
        lock_path = path.with_suffix(".lock")
        with open(lock_path, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                current = os.stat(lock_path)
            except FileNotFoundError:
                current = None
            if current is None or current.st_ino != os.fstat(handle.fileno()).st_ino:
                yield False
                return
            try:
                yield True
            finally:
                with contextlib.suppress(OSError):
                    lock_path.unlink()
                fcntl.flock(handle, fcntl.LOCK_UN)

    def write_atomic(self, path: Path, data: bytes) -> None:
        self.ensure_folder(path.parent)
        # Hidden, with a name no reader globs for (``*.json``); unique per writer, and locked while written so
        # that a cleaner can tell a killed writer's leftover from a live one (see ``remove_stale_temps``).
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
        try:
            with open(tmp, "wb") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except OSError as err:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise ZSBenchError(f"could not write {path}: {err.strerror or err}; earlier records are untouched") from None
        except BaseException:  # Ctrl-C or SIGTERM mid-write: no leftover
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    def supersede(self, path: Path) -> Path | None:
        """Move an existing record (and its sidecars) to ``superseded/`` before a forced rerun."""
        if not path.exists():
            return None
        target_dir = path.parent / "superseded"
        target_dir.mkdir(exist_ok=True)
        stamp = base = time.strftime("%Y%m%dT%H%M%S")
        n = 1
        # Two forced reruns within one second must not overwrite the first one's superseded files.
        while any((target_dir / f"{path.stem}.{stamp}{s}").exists() for s in (path.suffix, *SIDECAR_SUFFIXES)):
            n += 1
            stamp = f"{base}-{n}"
        moved = target_dir / f"{path.stem}.{stamp}{path.suffix}"
        for suffix in SIDECAR_SUFFIXES:
            sidecar = path.with_name(path.stem + suffix)
            if sidecar.exists():
                os.replace(sidecar, target_dir / f"{path.stem}.{stamp}{suffix}")
        os.replace(path, moved)
        return moved

    def save(self, path: Path, record: RunRecord) -> None:
        self.write_atomic(path, record.dumps().encode())

    def remove_stale_temps(self, min_age_s: float = STALE_TEMP_AGE_S) -> list[Path]:
        """Delete temporary files left by killed writers (never read as records in any case).

        A live writer holds an exclusive lock on its temporary file; a killed one's lock went with it.
        """
        removed: list[Path] = []
        if not self.root.is_dir():
            return removed
        now = time.time()
        for tmp in self.root.rglob(".*.tmp"):
            try:
                if now - tmp.stat().st_mtime < min_age_s:
                    continue
                with open(tmp, "rb") as handle:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    tmp.unlink()
                    removed.append(tmp)
            except (BlockingIOError, FileNotFoundError):
                continue
            except OSError:
                continue  # a read-only folder: leave it, the store reports that when it writes
        return removed

    def remove_unheld_locks(self) -> list[Path]:
        """Delete claim files that no live grid holds (what a killed or interrupted grid's workers left)."""
        removed: list[Path] = []
        if not self.root.is_dir():
            return removed
        for lock_path in self.root.rglob("*.lock"):
            try:
                with open(lock_path, "a+") as handle:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    # Removed while locked, as ``claim`` does, so a grid opening it now reports busy and retries.
                    if os.stat(lock_path).st_ino == os.fstat(handle.fileno()).st_ino:
                        lock_path.unlink()
                        removed.append(lock_path)
            except (BlockingIOError, FileNotFoundError):
                continue
            except OSError:
                continue
        return removed

    def clean_after_interrupt(self) -> list[Path]:
        """After Ctrl-C or SIGTERM: remove the lock files no live grid holds and the unlocked temporary files,
        however young (the interrupted grid's writers are gone). Returns what was removed."""
        return self.remove_unheld_locks() + self.remove_stale_temps(min_age_s=0)

    def records(self) -> Iterator[tuple[Path, RunRecord]]:
        """Every record under the root (superseded ones excluded), in a stable order."""
        if not self.root.exists():
            return
        for path in sorted(self.root.rglob("*.json")):
            if "superseded" in path.parts:
                continue
            data = read_json(path)
            if isinstance(data, dict) and "schema_version" in data:  # other JSON files in the folder are not ours
                yield path, RunRecord.from_json(data, path)
