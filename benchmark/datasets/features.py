"""Image and sketch features from a pretrained network: streamed in batches, cached by content hash, resumable.

The backbones (EfficientNet-Lite0 by default, torchvision VGG/ResNet with a weights file, open_clip models)
are in :mod:`benchmark.datasets.backbones`. Each item's feature is cached under
``<cache>/features/<backbone key>/<aa>/<sha256>.npy``, the hash being of the image bytes, and written as soon
as its batch is done. So an interrupted extraction resumes where it stopped (the files already extracted are
read back, not recomputed), and a second dataset holding the same file reads it too.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from benchmark.contract import ZSBenchError
from benchmark.datasets.backbones import BACKBONES, Backbone, image_model, make_backbone

__all__ = ["BACKBONES", "Backbone", "CACHE_ENV", "FeatureExtractor", "cache_root", "decode_image", "file_reader",
           "make_backbone"]

CACHE_ENV = "ZSBENCH_CACHE"
SKIP_HINT = "replace or delete the file, or pass --skip-broken to leave it out"


def cache_root() -> Path:
    """$ZSBENCH_CACHE, else ~/.cache/zsbench."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "zsbench")


def decode_image(data: bytes):
    """Image bytes -> an RGB PIL image; transparency composited on white (sketches are often transparent PNGs)."""
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as err:  # PIL raises many kinds for a bad file
        raise ZSBenchError(f"cannot decode image ({err})") from None
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image)
    return image.convert("RGB")


class FeatureExtractor:
    """Features of images (bytes, or callables returning them), read from the cache where present, else computed.

    ``device``: where the network runs (``cpu``, ``cuda``, ``cuda:1``). ``workers`` > 1 reads and decodes images
    in that many threads (worth it on a GPU, where decoding is the bottleneck).
    """

    def __init__(self, backbone: Backbone | None = None, cache_dir: Path | None = None, batch_size: int = 64,
                 use_cache: bool = True, device: str = "cpu", workers: int = 1):
        if batch_size < 1 or workers < 1:
            raise ZSBenchError(f"batch size and workers must be at least 1, got {batch_size} and {workers}")
        self.backbone = backbone or make_backbone()
        self.cache_dir = (cache_dir or cache_root()) / "features" / self.backbone.key
        self.batch_size = batch_size
        self.use_cache = use_cache
        self.device = device
        self.workers = workers
        self.hits = 0
        self.computed = 0
        self.skipped: list[str] = []  # one line per broken image left out (skip_broken)

    def __call__(self, items: Sequence[bytes] | Sequence[Callable[[], bytes]],
                 progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Features of every item; a broken image is an error naming it. ``progress(n)`` after each n done."""
        return self.extract(items, progress)[0]

    def extract(self, items: Sequence, progress: Callable[[int], None] | None = None,
                skip_broken: bool = False) -> tuple[np.ndarray, list[int]]:
        """(features, indices of broken items). Broken items are an error unless ``skip_broken`` (their rows
        are then NaN and listed). Streams: one batch of decoded images is held at a time."""
        out = np.zeros((len(items), self.backbone.dim), dtype=np.float32)
        broken: list[int] = []
        pool = ThreadPoolExecutor(self.workers) if self.workers > 1 else None
        mapper = pool.map if pool is not None else map
        try:
            for start in range(0, len(items), self.batch_size):
                chunk = range(start, min(start + self.batch_size, len(items)))
                misses = []
                for i, digest, feature, image, error in mapper(self._load, chunk, (items[i] for i in chunk)):
                    if feature is not None:
                        out[i] = feature
                        self.hits += 1
                    elif error is not None:
                        if not skip_broken:
                            raise ZSBenchError(f"{error}; {SKIP_HINT}")
                        out[i] = np.nan
                        broken.append(i)
                        self.skipped.append(error)
                    else:
                        misses.append((i, digest, image))
                if misses:
                    self._compute(misses, out, mapper)
                if progress:
                    progress(len(chunk))
        finally:
            if pool is not None:
                pool.shutdown()
        return out, broken

    def _load(self, i: int, item):
        """(index, digest, cached feature | None, decoded image | None, error line | None)."""
        source = getattr(item, "source", f"item {i}")
        data = item() if callable(item) else item
        digest = hashlib.sha256(data).hexdigest()
        if self.use_cache:
            path = self._cache_path(digest)
            if path.is_file():
                try:
                    return i, digest, np.load(path), None, None
                except (ValueError, OSError):
                    pass  # a damaged cache file is recomputed (and rewritten)
        try:
            return i, digest, None, decode_image(data), None
        except ZSBenchError as err:
            return i, digest, None, None, f"{source}: {err}"

    def _compute(self, misses: list, out: np.ndarray, mapper) -> None:
        import torch

        model = image_model(self.backbone, self.device)
        batch = np.stack(list(mapper(model.preprocess, (image for _, _, image in misses))))
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device)
            feats = model.forward(x).float().cpu().numpy()
        for (i, digest, _), feat in zip(misses, feats, strict=True):
            out[i] = feat
            if self.use_cache:
                self._store(digest, feat)
        self.computed += len(misses)

    def _cache_path(self, digest: str) -> Path:
        return self.cache_dir / digest[:2] / f"{digest}.npy"

    def _store(self, digest: str, feat: np.ndarray) -> None:
        path = self._cache_path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as handle:
            np.save(handle, feat)
        os.replace(tmp, path)  # atomic: a concurrent reader never sees half a file


def file_reader(path: Path) -> Callable[[], bytes]:
    def read() -> bytes:
        try:
            return Path(path).read_bytes()
        except OSError as err:
            raise ZSBenchError(f"cannot read image {path} ({err.strerror})") from None

    read.source = str(path)
    return read
