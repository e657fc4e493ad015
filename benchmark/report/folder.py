"""The report's output folder, owned through a manifest of the files the report wrote.

``zsbench report`` lists every file it writes in ``<out>/.zsbench-report.json``. The next report into the
same folder first removes exactly the files of that list (and the folders that leave empty), so two reports
into one folder leave the second one's files only, and it never touches a file it did not write: a folder
that holds files but no manifest is refused, and a file of someone else's in the way of a report file is an
error, not an overwrite. The manifest is rewritten as each file is claimed, so even a report that stops
half-way leaves a manifest that covers what it wrote.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from benchmark.contract import ZSBenchError

MANIFEST = ".zsbench-report.json"


class ReportFolder:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.written: list[str] = []

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    def previous_files(self) -> list[str]:
        if not self.manifest.is_file():
            return []
        try:
            data = json.loads(self.manifest.read_text())
            files = data["files"]
        except (OSError, ValueError, KeyError, TypeError):
            raise ZSBenchError(f"report manifest {self.manifest} is unreadable; remove the folder {self.root} or "
                               f"pass another --out") from None
        return [str(f) for f in files]

    def prepare(self) -> list[str]:
        """Remove the previous report's files; returns them. Refuses a non-empty folder without a manifest."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ZSBenchError(f"cannot create report folder {self.root}: {err.strerror}; pass --out DIR") from None
        if not self.root.is_dir():
            raise ZSBenchError(f"report folder {self.root} is a file; pass --out DIR")
        previous = self.previous_files()
        if not self.manifest.is_file():
            foreign = sorted(p for p in self.root.rglob("*") if p.is_file())
            if foreign:
                raise ZSBenchError(f"report folder {self.root} holds {len(foreign)} file(s) that zsbench report did not "
                                   f"list as its own (e.g. {foreign[0]}); pass --out with a new or empty folder, or "
                                   f"remove them first")
        root = self.root.resolve()
        for name in previous:
            path = (self.root / name).resolve()
            if root not in path.parents or not path.is_file():
                continue  # never outside the folder; already gone is fine
            path.unlink()
            for parent in path.parents:
                if parent == root:
                    break
                try:
                    parent.rmdir()  # only succeeds when the folder is now empty
                except OSError:
                    break
        self.written = []
        self._save()
        return previous

    def claim(self, path: str | Path) -> Path:
        """Record ``path`` (inside the folder) as the report's before writing it; its folder is created."""
        path = Path(path)
        relative = path.resolve().relative_to(self.root.resolve()).as_posix()
        if relative not in self.written:
            if path.exists():
                raise ZSBenchError(f"{path} exists and was not written by this report; remove it or pass another --out")
            self.written.append(relative)
            self._save()
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def write_text(self, path: str | Path, text: str) -> Path:
        path = self.claim(path)
        path.write_text(text)
        return path

    def _save(self) -> None:
        temporary = self.manifest.with_name(MANIFEST + ".tmp")
        temporary.write_text(json.dumps({"written_by": "zsbench report", "files": sorted(self.written)}, indent=1)
                             + "\n")
        os.replace(temporary, self.manifest)
