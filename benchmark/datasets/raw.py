"""Readers of the datasets' original releases: folders of images, sketches and texts (no list file needed).

Each reader returns a :class:`RawLayout`: per modality the files (or texts) with their class reference, a
pairing key and, for image-text sets, the part (0 train, 1 test). Features are computed afterwards
(:mod:`benchmark.datasets.prepare`), once classes are mapped onto the registry and the split is known.

- ``sketchy-raw``: ``256x256/sketch/tx_000000000000/<class>/*.png`` and ``256x256/photo/tx_000000000000/<class>/
  *.jpg`` (also under ``rendered_256x256/``), plus the extended photo set ``EXTEND_image_sketchy/<class>/*.jpg``
  when present; a photo found in both photo sets is kept once (the extended copy). The other augmentation
  folders (``tx_000100000000``, ...) are read only when asked for (``variants``).
- ``tu-berlin-raw``: ``png/<class>/*.png`` sketches (class folders with spaces) and the extended photo set
  ``ImageResized/<class>/*`` (folder typos such as ``tromobone`` resolve through the name index); SAKE's
  ``png_ready`` / ``ImageResized_ready`` copies are read the same way.
- ``wikipedia-raw``: Rasiwasia et al.'s ``trainset_txt_img_cat.list`` / ``testset_txt_img_cat.list`` (text id,
  image id, category id; tab separated), ``categories.list``, ``texts/<text id>.xml`` (the text of the
  ``<text>`` element) and ``images/<category>/<image id>.jpg``; the lists give the train and test parts.
- ``pascal-sentences-raw``: ``dataset/<class>/<name>.jpg`` with ``sentence/<class>/<name>.txt`` (five sentences,
  joined into one text), the layout of the UIUC page when mirrored. The release has no train/test parts: in
  each class, the images sorted by name go 4 to the train part and every 5th to the test part (40/10).
- ``folders``: ``<modality>/<class>/<file>`` (or ``<modality>/{train,test}/<class>/<file>`` for parts), each
  modality's files all images or all ``.txt`` texts: any dataset of that shape, registered or your own.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.contract import ZSBenchError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
TEXT_EXTENSIONS = frozenset({".txt"})
SKETCHY_BASE_VARIANT = "tx_000000000000"
SKETCHY_EXTENDED = ("EXTEND_image_sketchy", "extended_photo")
PARTS = {"train": 0, "test": 1}


@dataclass
class RawItem:
    source: Path  # the file the item comes from (image, text file, XML)
    class_ref: str | int  # a class folder name, or a category id
    key: str  # pairs items across modalities within a class (the file stem; Wikipedia: the text id)
    part: int | None = None
    text: str | None = None  # text items: the text read


@dataclass
class RawFiles:
    kind: str  # "image" or "text"
    items: list[RawItem]


@dataclass
class RawLayout:
    modalities: dict[str, RawFiles]
    paired: bool
    label_base: int | None = None  # for integer class references
    notes: dict[str, Any] = field(default_factory=dict)


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _class_folders(root: Path, extensions: frozenset[str], what: str, ignored: list[Path]) -> dict[str, list[Path]]:
    """``root/<class>/<file>``: class folder name -> its files (sorted); an empty class folder is an error."""
    if not root.is_dir():
        raise ZSBenchError(f"missing folder {root}; the layout expects it (see docs/data.md)")
    out: dict[str, list[Path]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and _visible(p)):
        files = []
        for path in sorted(p for p in folder.iterdir() if p.is_file() and _visible(p)):
            (files if path.suffix.lower() in extensions else ignored).append(path)
        if not files:
            raise ZSBenchError(f"{folder}: empty class folder (no {what} files); add its files or delete the folder")
        out[folder.name] = files
    if not out:
        raise ZSBenchError(f"{root} has no class folders; expected {root}/<class>/<{what} files>")
    return out


def _items(folders: dict[str, list[Path]], part: int | None = None) -> list[RawItem]:
    return [RawItem(path, name, path.stem, part) for name, files in folders.items() for path in files]


def _ignored_note(ignored: list[Path]) -> dict[str, Any]:
    return {"ignored_files": len(ignored), "ignored_example": str(ignored[0])} if ignored else {}


# --- Sketchy ---------------------------------------------------------------------------------------------------

def _sketchy_base(folder: Path) -> Path:
    for base in (folder, folder / "256x256", folder / "rendered_256x256" / "256x256", folder / "rendered_256x256"):
        if (base / "sketch").is_dir() and (base / "photo").is_dir():
            return base
    raise ZSBenchError(f"{folder}: no sketch/ and photo/ folders (looked in ., 256x256/, rendered_256x256/); "
                       f"--from must be the folder the Sketchy release was unpacked in")


def _variant_folders(parent: Path, variants: tuple[str, ...]) -> list[Path]:
    """tx_000000000000, and the asked-for augmentation folders that ``parent`` has ('all': every one)."""
    present = sorted(p.name for p in parent.iterdir() if p.is_dir() and p.name.startswith("tx_"))
    if SKETCHY_BASE_VARIANT not in present:
        raise ZSBenchError(f"missing folder {parent / SKETCHY_BASE_VARIANT}; the Sketchy release has it "
                           f"(found {', '.join(present) or 'no tx_* folders'})")
    wanted = [v for v in present if v == SKETCHY_BASE_VARIANT or "all" in variants or v in variants]
    return [parent / v for v in wanted]


def read_sketchy_raw(folder: Path, variants: tuple[str, ...] = (), **_) -> RawLayout:
    base = _sketchy_base(folder)
    ignored: list[Path] = []
    sketches: list[RawItem] = []
    read: set[str] = set()
    for variant in _variant_folders(base / "sketch", variants):
        sketches += _items(_class_folders(variant, IMAGE_EXTENSIONS, "sketch image", ignored))
        read.add(variant.name)
    photos: dict[tuple[str, str], RawItem] = {}
    for variant in _variant_folders(base / "photo", variants):
        for item in _items(_class_folders(variant, IMAGE_EXTENSIONS, "photo", ignored)):
            photos.setdefault((_norm(item.class_ref), f"{variant.name}/{item.key}"), item)
        read.add(variant.name)
    unknown = sorted(set(variants) - read - {"all"})
    if unknown:
        raise ZSBenchError(f"Sketchy has no augmentation folder {unknown[0]} under {base}/sketch or photo; "
                           f"found {', '.join(sorted(read))}")
    notes: dict[str, Any] = {"sketchy_variants": sorted(read)}
    extended = next((p for name in SKETCHY_EXTENDED for p in (folder / name, base / name) if p.is_dir()), None)
    if extended is None:
        notes["extended_photos"] = "not found: the 12,500 photos of photo/ only (Sketchy Extended has 73,002)"
    else:
        both = 0
        for item in _items(_class_folders(extended, IMAGE_EXTENSIONS, "photo", ignored)):
            key = (_norm(item.class_ref), f"{SKETCHY_BASE_VARIANT}/{item.key}")
            both += key in photos
            photos[key] = item  # a photo of both sets: the extended copy
        notes["extended_photos"] = str(extended)
        notes["photos_in_both_sets"] = both
    notes.update(_ignored_note(ignored))
    return RawLayout({"sketch": RawFiles("image", sketches), "image": RawFiles("image", list(photos.values()))},
                     paired=False, notes=notes)


def _norm(name) -> str:
    from benchmark.datasets.names import normalize_class_name

    return normalize_class_name(str(name))


# --- TU-Berlin -------------------------------------------------------------------------------------------------

def read_tu_berlin_raw(folder: Path, **_) -> RawLayout:
    sketch_root = next((folder / n for n in ("png", "png_ready") if (folder / n).is_dir()), None)
    photo_root = next((folder / n for n in ("ImageResized", "ImageResized_ready") if (folder / n).is_dir()), None)
    if sketch_root is None:
        raise ZSBenchError(f"{folder}: no png/ folder of TU-Berlin sketches (png/<class>/*.png); --from must be the "
                           f"folder holding png/ and ImageResized/")
    if photo_root is None:
        raise ZSBenchError(f"{folder}: no ImageResized/ folder (the extended TU-Berlin photo set, "
                           f"ImageResized/<class>/*) beside png/; put it there")
    ignored: list[Path] = []
    sketches = _items(_class_folders(sketch_root, IMAGE_EXTENSIONS, "sketch image", ignored))
    photos = _items(_class_folders(photo_root, IMAGE_EXTENSIONS, "photo", ignored))
    return RawLayout({"sketch": RawFiles("image", sketches), "image": RawFiles("image", photos)}, paired=False,
                     notes=_ignored_note(ignored))


# --- Wikipedia -------------------------------------------------------------------------------------------------

_TEXT_ELEMENT = re.compile(r"<text\b[^>]*>(.*?)</text>", re.DOTALL | re.IGNORECASE)


def wikipedia_text(path: Path) -> str:
    """The text of a Wikipedia-release XML file's ``<text>`` element. Read with a pattern, not an XML parser:
    the release's files are not all well-formed XML (bare ``&``)."""
    try:
        raw = path.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise ZSBenchError(f"cannot read {path} ({err.strerror})") from None
    match = _TEXT_ELEMENT.search(raw)
    if match is None or not match.group(1).strip():
        raise ZSBenchError(f"{path} has no text in a <text> element; restore the file from the release "
                           f"(or remove its line from the list)")
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", match.group(1))).split())


def read_wikipedia_raw(folder: Path, **_) -> RawLayout:
    lists = [(folder / f"{part}set_txt_img_cat.list", part_id) for part, part_id in (("train", 0), ("test", 1))]
    for path, _ in lists:
        if not path.is_file():
            raise ZSBenchError(f"missing file {path}; the Wikipedia release has train- and testset_txt_img_cat.list")
    categories = folder / "categories.list"
    names = None
    if categories.is_file():
        names = [line.split()[0] for line in categories.read_text().splitlines() if line.strip()]
    image_index: dict[str, Path] = {}
    images_root = folder / "images"
    if not images_root.is_dir():
        raise ZSBenchError(f"missing folder {images_root}; the Wikipedia release has images/<category>/<id>.jpg")
    for path in images_root.rglob("*"):
        if path.suffix.lower() in IMAGE_EXTENSIONS and _visible(path):
            image_index.setdefault(path.stem, path)
    images, texts = [], []
    for list_path, part in lists:
        for line_no, line in enumerate(list_path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            cols = line.split()
            if len(cols) != 3 or not cols[2].isdigit():
                raise ZSBenchError(f"{list_path}:{line_no}: expected '<text id> <image id> <category id>', got "
                                   f"{line[:60]!r}")
            text_id, image_id, category = cols[0], cols[1], int(cols[2])
            if names is not None and not 1 <= category <= len(names):
                raise ZSBenchError(f"{list_path}:{line_no}: category {category} is not in 1..{len(names)} of "
                                   f"{categories}")
            ref: str | int = names[category - 1] if names is not None else category
            xml = folder / "texts" / f"{text_id}.xml"
            if not xml.is_file():
                raise ZSBenchError(f"missing file {xml} (listed in {list_path.name}:{line_no}); restore it from the "
                                   f"release")
            if image_id not in image_index:
                raise ZSBenchError(f"no image {image_id}.jpg under {images_root} (listed in {list_path.name}:"
                                   f"{line_no}); restore it from the release")
            key = f"{part}/{text_id}"
            images.append(RawItem(image_index[image_id], ref, key, part))
            texts.append(RawItem(xml, ref, key, part, wikipedia_text(xml)))
    notes = {} if names is not None else {"categories": "categories.list not found: 1-based ids in registry order"}
    return RawLayout({"image": RawFiles("image", images), "text": RawFiles("text", texts)}, paired=True,
                     label_base=None if names is not None else 1, notes=notes)


# --- Pascal Sentences ------------------------------------------------------------------------------------------

def _sentence_stem(path: Path) -> str:
    """``2008_000032.txt`` and the mirror scripts' dotless ``2008_000032txt`` both name image 2008_000032."""
    name = path.name
    return name[:-4] if name.lower().endswith(".txt") else name[:-3]


def read_pascal_sentences_raw(folder: Path, **_) -> RawLayout:
    ignored: list[Path] = []
    image_folders = _class_folders(folder / "dataset", IMAGE_EXTENSIONS, "image", ignored)
    sentence_root = folder / "sentence"
    if not sentence_root.is_dir():
        raise ZSBenchError(f"missing folder {sentence_root}; the mirrored Pascal Sentences layout has "
                           f"sentence/<class>/<name>.txt beside dataset/")
    images, texts = [], []
    for class_name, files in image_folders.items():
        sentences = {}
        if (sentence_root / class_name).is_dir():
            sentences = {_sentence_stem(p): p for p in (sentence_root / class_name).iterdir()
                         if p.is_file() and p.name.lower().endswith("txt")}
        for rank, path in enumerate(files):
            text_file = sentences.get(path.stem)
            if text_file is None:
                raise ZSBenchError(f"{path} has no sentence file {sentence_root / class_name / (path.stem + '.txt')}; "
                                   f"add it or delete the image")
            text = " ".join(line.strip() for line in text_file.read_text(errors="replace").splitlines() if line.strip())
            if not text:
                raise ZSBenchError(f"{text_file} holds no sentence; restore it from the release")
            part = 1 if rank % 5 == 4 else 0
            images.append(RawItem(path, class_name, path.stem, part))
            texts.append(RawItem(text_file, class_name, path.stem, part, text))
    return RawLayout({"image": RawFiles("image", images), "text": RawFiles("text", texts)}, paired=True,
                     notes={"parts": "per class, images sorted by name: every 5th to the test part", **_ignored_note(ignored)})


# --- folders ---------------------------------------------------------------------------------------------------

def read_folders(folder: Path, **_) -> RawLayout:
    modality_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and _visible(p))
    if len(modality_dirs) < 2:
        raise ZSBenchError(f"{folder}: the folders layout needs one folder per modality (at least two), each "
                           f"<modality>/<class>/<file>; found {[p.name for p in modality_dirs]}")
    ignored: list[Path] = []
    modalities: dict[str, RawFiles] = {}
    for mdir in modality_dirs:
        subs = {p.name for p in mdir.iterdir() if p.is_dir() and _visible(p)}
        roots = [(mdir / p, PARTS[p]) for p in sorted(subs)] if subs and subs <= set(PARTS) else [(mdir, None)]
        items: list[RawItem] = []
        for root, part in roots:
            folders = _class_folders(root, IMAGE_EXTENSIONS | TEXT_EXTENSIONS, "image or .txt", ignored)
            items += _items(folders, part)
        kinds = {"text" if it.source.suffix.lower() in TEXT_EXTENSIONS else "image" for it in items}
        if len(kinds) > 1:
            first_text = next(it.source for it in items if it.source.suffix.lower() in TEXT_EXTENSIONS)
            raise ZSBenchError(f"{mdir} mixes images and .txt texts (e.g. {first_text}); one modality holds one kind")
        kind = kinds.pop()
        if kind == "text":
            for it in items:
                it.text = it.source.read_text(errors="replace").strip()
                if not it.text:
                    raise ZSBenchError(f"{it.source} is an empty text; write its text or delete the file")
        modalities[mdir.name] = RawFiles(kind, items)
    with_parts = [m for m, f in modalities.items() if f.items[0].part is not None]
    if with_parts and len(with_parts) != len(modalities):
        raise ZSBenchError(f"{folder}: {with_parts} have train/test folders, the others not; give them to every "
                           f"modality or none")
    return RawLayout(modalities, paired=False, notes=_ignored_note(ignored))


RAW_READERS: dict[str, Callable[..., RawLayout]] = {
    "sketchy-raw": read_sketchy_raw, "tu-berlin-raw": read_tu_berlin_raw, "wikipedia-raw": read_wikipedia_raw,
    "pascal-sentences-raw": read_pascal_sentences_raw, "folders": read_folders,
}


def _shallow_glob(folder: Path, pattern: str, depth: int = 4) -> bool:
    return any(next(folder.glob("/".join(["*"] * d + [pattern])), None) is not None for d in range(depth + 1))


def detect_raw_format(folder: Path) -> str | None:
    """The raw layout ``folder`` is in, or None. A folder holding SAKE-style lists is not raw."""
    if (folder / "trainset_txt_img_cat.list").is_file():
        return "wikipedia-raw"
    if (folder / "dataset").is_dir() and (folder / "sentence").is_dir():
        return "pascal-sentences-raw"
    if _shallow_glob(folder, "*_filelist*.txt"):
        return None
    if any((folder / n).is_dir() for n in ("png", "png_ready")):
        return "tu-berlin-raw"
    try:
        if any((_sketchy_base(folder) / m / SKETCHY_BASE_VARIANT).is_dir() for m in ("sketch", "photo")):
            return "sketchy-raw"
    except ZSBenchError:
        pass
    dirs = [p for p in folder.iterdir() if p.is_dir() and _visible(p)]
    if len(dirs) >= 2 and all(any(q.is_dir() for q in p.iterdir()) for p in dirs):
        return "folders"
    return None
