"""Generated datasets in the raw releases' exact folder layouts (tests, and timing with realistic image sizes).

Every image is drawn from a seed of (kind, class, item), so two items never share bytes (the feature cache is
by content). ``python -m tests.raw_layouts LAYOUT DIR --per-class N --size PX`` writes one for timing.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np

from benchmark.datasets.specs import CLASSES_DIR, get_spec

#: Sizes of the real releases' files (sketch, photo), for timing runs.
RELEASE_SIZES = {"sketchy-raw": (256, 256), "tu-berlin-raw": (1111, 256), "wikipedia-raw": (None, 400),
                 "pascal-sentences-raw": (None, 500)}
WORDS = ("the a painting music river king battle team song city species history film poem army church player "
         "album war art cell mountain prince league ship novel museum queen island sport genus").split()


def drawing(seed: int, size: int, photo: bool, transparent: bool = False, fmt: str = "PNG") -> bytes:
    """A line drawing (black strokes on white, or on transparency) or a colour 'photo' of shapes."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    height = size if not photo else max(8, int(size * 0.75))
    if photo:
        base = rng.integers(0, 256, 3)
        image = Image.new("RGB", (size, height), tuple(int(v) for v in base))
    else:
        image = Image.new("RGBA" if transparent else "RGB", (size, height),
                          (255, 255, 255, 0) if transparent else "white")
    draw = ImageDraw.Draw(image)
    for _ in range(4 if size < 64 else 12):
        x0, y0 = rng.integers(0, size, 2)
        x1, y1 = rng.integers(0, size, 2)
        box = [min(x0, x1), min(y0, y1) * height // size, max(x0, x1) + 2, max(y0, y1) * height // size + 2]
        colour = tuple(int(v) for v in rng.integers(0, 256, 3)) if photo else (0, 0, 0)
        width = max(1, size // 40)
        if photo:
            draw.ellipse(box, fill=colour)
        else:
            draw.line(box, fill=colour + ((255,) if transparent else ()), width=width)
    out = io.BytesIO()
    image.save(out, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return out.getvalue()


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def make_sketchy_raw(root: Path, classes=None, sketches: int = 2, photos: int = 1, extended: int = 1,
                     size: int = 16, photo_size: int | None = None, rendered: bool = False,
                     variant: bool = True) -> Path:
    """``256x256/{sketch,photo}/tx_000000000000/<class>/`` (under ``rendered_256x256/`` if ``rendered``),
    ``EXTEND_image_sketchy/<class>/`` holding one photo of the base set again plus ``extended`` new ones, and an
    augmentation folder that must be ignored."""
    classes = classes or get_spec("sketchy").class_names
    base = root / ("rendered_256x256/256x256" if rendered else "256x256")
    (base.parent / "README.txt").parent.mkdir(parents=True, exist_ok=True)
    for c, name in enumerate(classes):
        for p in range(photos):
            stem = f"n{c:05d}_{p}"
            photo = drawing(1_000_000 + c * 100 + p, photo_size or size, True, fmt="JPEG")
            _write(base / "photo/tx_000000000000" / name / f"{stem}.jpg", photo)
            for s in range(sketches):
                _write(base / "sketch/tx_000000000000" / name / f"{stem}-{s + 1}.png",
                       drawing(2_000_000 + c * 1000 + p * 10 + s, size, False, transparent=s % 2 == 1))
                if variant:
                    _write(base / "sketch/tx_000100000000" / name / f"{stem}-{s + 1}.png",
                           drawing(3_000_000 + c * 1000 + p * 10 + s, size, False))
            if p == 0 and extended:
                _write(root / "EXTEND_image_sketchy" / name / f"{stem}.jpg", photo)  # the base photo again
        for e in range(extended):
            _write(root / "EXTEND_image_sketchy" / name / f"ext{c:05d}_{e}.jpg",
                   drawing(4_000_000 + c * 100 + e, photo_size or size, True, fmt="JPEG"))
    return root


def tu_berlin_photo_folders() -> dict[str, str]:
    """Canonical class -> the extended photo set's folder name (typos and squashed names)."""
    rows = (CLASSES_DIR / "tu-berlin-typos.txt").read_text().splitlines()
    return {canonical: folder for folder, canonical in (row.split("\t") for row in rows if row.strip())}


def make_tu_berlin_raw(root: Path, classes=None, sketches: int = 1, photos: int = 1, size: int = 16,
                       photo_size: int | None = None) -> Path:
    """``png/<class with spaces>/<n>.png`` and ``ImageResized/<typo'd folder>/<name>.JPEG``."""
    classes = classes or get_spec("tu-berlin").class_names
    typos = tu_berlin_photo_folders()
    n = 1
    for c, name in enumerate(classes):
        for _ in range(sketches):
            _write(root / "png" / name / f"{n}.png", drawing(5_000_000 + n, size, False))
            n += 1
        for p in range(photos):
            _write(root / "ImageResized" / typos.get(name, name) / f"n{c:05d}_{p}.JPEG",
                   drawing(6_000_000 + c * 100 + p, photo_size or size, True, fmt="JPEG"))
    (root / "png" / "filelist.txt").write_text("the release's own list, not needed\n")
    return root


def _article(rng, words: int = 30) -> str:
    return " ".join(rng.choice(WORDS, size=words))


def make_wikipedia_raw(root: Path, train: int = 3, test: int = 2, size: int = 16) -> Path:
    """Rasiwasia et al.'s layout: lists, categories.list, texts/<id>.xml, images/<category>/<id>.jpg."""
    names = get_spec("wikipedia").class_names
    (root / "texts").mkdir(parents=True, exist_ok=True)
    (root / "categories.list").write_text("".join(f"{n}\n" for n in names))
    rng = np.random.default_rng(0)
    for part_id, (part, count) in enumerate((("train", train), ("test", test))):
        lines = []
        for c, name in enumerate(names):
            for i in range(count):
                text_id, image_id = f"{part}{c:02d}{i:03d}txt", f"{part}{c:02d}{i:03d}img"
                body = f"{name} {_article(rng)} & more"  # a bare '&', as in the release's files
                (root / "texts" / f"{text_id}.xml").write_text(
                    f'<?xml version="1.0" encoding="UTF-8"?>\n<document>\n<title>{name} {i}</title>\n'
                    f"<text>{body}</text>\n</document>\n")
                _write(root / "images" / name / f"{image_id}.jpg",
                       drawing(7_000_000 + part_id * 100_000 + c * 1000 + i, size, True, fmt="JPEG"))
                lines.append(f"{text_id}\t{image_id}\t{c + 1}")
        (root / f"{part}set_txt_img_cat.list").write_text("\n".join(lines) + "\n")
    return root


def make_pascal_sentences_raw(root: Path, per_class: int = 5, size: int = 16, dotless: bool = True) -> Path:
    """``dataset/<class>/<name>.jpg`` and ``sentence/<class>/<name>.txt`` (five sentences); the mirror script's
    dotless ``<name>txt`` spelling for every other file when ``dotless``."""
    names = get_spec("pascal-sentences").class_names
    rng = np.random.default_rng(1)
    for c, name in enumerate(names):
        for i in range(per_class):
            stem = f"2008_{c:02d}{i:04d}"
            _write(root / "dataset" / name / f"{stem}.jpg", drawing(8_000_000 + c * 100 + i, size, True, fmt="JPEG"))
            sentences = "".join(f" A {name} near the {_article(rng, 6)}.\n" for _ in range(5))
            suffix = "txt" if dotless and i % 2 else ".txt"
            _write(root / "sentence" / name / f"{stem}{suffix}", sentences.encode())
    return root


def make_folders(root: Path, classes, modalities=(("sketch", "image"), ("photo", "image")), per_class: int = 2,
                 size: int = 16, parts: bool = False) -> Path:
    """``<modality>/[<part>/]<class>/<file>``: ``modalities`` is (name, 'image'|'text') pairs."""
    rng = np.random.default_rng(2)
    for m, (modality, kind) in enumerate(modalities):
        for c, name in enumerate(classes):
            for i in range(per_class):
                part = ("train" if i % 4 else "test") if parts else ""
                folder = root / modality / part / name
                if kind == "text":
                    _write(folder / f"item{i}.txt", f"{name.replace('_', ' ')} {_article(rng, 8)}".encode())
                else:
                    _write(folder / f"item{i}.png", drawing(9_000_000 + m * 100_000 + c * 100 + i, size, m % 2 == 1))
    return root


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("layout", choices=sorted(RELEASE_SIZES))
    parser.add_argument("folder", type=Path)
    parser.add_argument("--per-class", type=int, default=4,
                        help="photos per class (Sketchy: one sketch each; TU-Berlin: as many sketches)")
    args = parser.parse_args()
    sketch_px, photo_px = RELEASE_SIZES[args.layout]
    if args.layout == "sketchy-raw":
        make_sketchy_raw(args.folder, sketches=1, photos=args.per_class, extended=0, size=sketch_px,
                         photo_size=photo_px, variant=False)
    elif args.layout == "tu-berlin-raw":
        make_tu_berlin_raw(args.folder, sketches=args.per_class, photos=args.per_class, size=sketch_px,
                           photo_size=photo_px)
    elif args.layout == "wikipedia-raw":
        make_wikipedia_raw(args.folder, train=args.per_class - args.per_class // 5, test=args.per_class // 5,
                           size=photo_px)
    else:
        make_pascal_sentences_raw(args.folder, per_class=args.per_class, size=photo_px)
    print(args.folder)
