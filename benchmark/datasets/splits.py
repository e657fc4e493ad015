"""Frozen zero-shot split files: versioned JSON in the repo, each checked against a sha256 in the registry.

A split file lists the seen and unseen class names and how the seen-class validation part is drawn.
Loading a file whose sha256 differs from the registry's is an error: a silently edited split would make
numbers incomparable. ``python -m benchmark.datasets.splits`` prints every file's hash (for maintainers
who add a split on purpose).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from benchmark.contract import ZSBenchError

SPLITS_DIR = Path(__file__).parent / "splits"


@dataclass(frozen=True)
class Split:
    dataset: str
    name: str
    seen: tuple[str, ...]
    unseen: tuple[str, ...]
    validation_fraction: float
    validation_seed: int
    sha256: str
    path: str
    source: str = ""

    def record(self) -> dict:
        return {"name": self.name, "sha256": self.sha256, "n_seen": len(self.seen), "n_unseen": len(self.unseen)}


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_split(path: Path, expected_sha256: str | None) -> Split:
    """Read a split file; ``expected_sha256`` None skips the check (a user's own prepared dataset)."""
    path = Path(path)
    if not path.is_file():
        raise ZSBenchError(f"split file {path} does not exist; reinstall zsbench or restore it from git")
    digest = file_sha256(path)
    if expected_sha256 is not None and digest != expected_sha256:
        raise ZSBenchError(
            f"split file {path} has sha256 {digest[:12]}..., the registry expects {expected_sha256[:12]}...; "
            f"restore it with `git checkout -- {path.name}` (a changed split needs a new split name)"
        )
    try:
        data = json.loads(path.read_text())
        return Split(
            dataset=data["dataset"],
            name=data["name"],
            seen=tuple(data["seen"]),
            unseen=tuple(data["unseen"]),
            validation_fraction=float(data.get("validation_fraction", 0.1)),
            validation_seed=int(data.get("validation_seed", 0)),
            sha256=digest,
            path=str(path),
            source=data.get("source", ""),
        )
    except (ValueError, KeyError, TypeError) as err:
        raise ZSBenchError(f"split file {path} is malformed ({err}); it needs dataset, name, seen, unseen") from None


def write_split_file(path: Path, dataset: str, name: str, seen, unseen, source: str,
                     validation_fraction: float = 0.1, validation_seed: int = 0) -> str:
    """Write a split file in the canonical layout and return its sha256."""
    payload = {
        "dataset": dataset,
        "name": name,
        "version": 1,
        "source": source,
        "validation_fraction": validation_fraction,
        "validation_seed": validation_seed,
        "seen": list(seen),
        "unseen": list(unseen),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1) + "\n")
    return file_sha256(path)


if __name__ == "__main__":
    for split_file in sorted(SPLITS_DIR.glob("*/*.json")):
        print(f"{split_file.parent.name}/{split_file.name}  {file_sha256(split_file)}")
