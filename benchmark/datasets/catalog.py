"""What the ``zsbench datasets`` commands do, as functions: the registry's listing, a dataset's check, building
the embedded datasets and preparing a dataset from its files. Nothing here prints: progress and messages go to
the callbacks given (``on_progress(modality, done, total)``, ``on_event(message)``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from benchmark.contract import ZSBenchError
from benchmark.datasets import data_root

Progress = Callable[[str, int, int], None]
Event = Callable[[str], None]


def is_embedded(name: str) -> bool:
    """A registered dataset that is built here from its own sources (emoji), not prepared from downloads."""
    from benchmark.datasets.specs import SPECS

    spec = SPECS.get(name)
    return spec is not None and spec.source == "embedded"


def listing() -> list[dict[str, Any]]:
    """One row per registered dataset (``zsbench datasets list``): name, kind, modalities (name -> feature
    size), number of classes, splits (the default first) and whether its data is ready here."""
    from benchmark.datasets.specs import SPECS

    rows = []
    for spec in SPECS.values():
        splits = [spec.default_split] + [s for s in spec.splits if s != spec.default_split]
        prepared = (data_root() / spec.name / "manifest.json").is_file()
        if spec.source == "embedded":
            from benchmark.datasets.emoji import is_built

            prepared = is_built()
        rows.append({"name": spec.name, "kind": spec.kind, "modalities": spec.modalities,
                     "classes": len(spec.class_names), "splits": splits, "prepared": prepared})
    return rows


def build_embedded(names: Iterable[str], synthetic: bool, semantics: str | None, rebuild: bool = False,
                   on_progress: Progress | None = None, on_event: Event | None = None) -> list[Path]:
    """Build those of ``names`` that are embedded datasets and not built yet for ``semantics`` (all of them with
    ``rebuild``); nothing for synthetic stand-ins. Returns the folders built."""
    built = []
    for name in names:
        if synthetic or not is_embedded(name):
            continue
        from benchmark.datasets.emoji import cache_folder, ensure_emoji, is_built, text_encoder_for

        if is_built(semantics) and not rebuild:
            continue
        if on_event is not None:
            on_event(f"{name}: first use, building it in {cache_folder(text_encoder_for(semantics))}")
        folder, _ = ensure_emoji(semantics, on_progress, rebuild=rebuild)
        if on_event is not None:
            on_event(f"{name}: built in {folder}")
        built.append(folder)
    return built


def check_dataset(name: str, split: str | None = None, semantics: str | None = None,
                  on_progress: Progress | None = None, on_event: Event | None = None) -> dict[str, Any]:
    """Validate a dataset's data (a registered name or a prepared folder): shapes, dtypes, values, labels and
    the split's hash; the summary of :func:`benchmark.datasets.prepared.check_prepared`. An embedded dataset
    is built first when it is not yet; real data that is not prepared is an error."""
    from benchmark.datasets.prepared import MANIFEST, check_prepared
    from benchmark.datasets.specs import SPECS, get_spec

    if name not in SPECS and Path(name).is_dir():
        return check_prepared(Path(name), None, split)
    spec = get_spec(name)
    if spec.source == "embedded":
        from benchmark.datasets.emoji import ensure_emoji

        build_embedded([name], False, semantics, on_progress=on_progress, on_event=on_event)
        folder, _ = ensure_emoji(semantics)
    else:
        folder = data_root() / name
        if not (folder / MANIFEST).is_file():
            raise ZSBenchError(f"no prepared {name} data in {folder}/; run `zsbench datasets prepare {name} "
                               f"--from PATH` first")
    return check_prepared(folder, spec, split)


def prepare(name: str, source: str | None = None, out: str | None = None, fmt: str | None = None,
            semantics: str | None = None, label_base: int | None = None, classes_file: str | None = None,
            backbone: str = "efficientnet-lite0", weights: str | None = None, image_size: int | None = None,
            device: str = "cpu", workers: int = 1, batch_size: int = 64, raw=None, rebuild: bool = False,
            on_progress: Progress | None = None, on_event: Event | None = None) -> dict[str, Any]:
    """``zsbench datasets prepare``: build an embedded dataset (``rebuild``: even when cached) or convert one
    from ``source`` (a raw release or a paper's feature files; ``raw``: a raw release's
    :class:`~benchmark.datasets.prepare.RawOptions`), features extracted with ``backbone``. A name the
    registry does not know prepares a dataset of your own. Returns the check summary of the result."""
    from benchmark.datasets.specs import SPECS

    spec = SPECS.get(name)
    if spec is not None and spec.source == "embedded":
        build_embedded([name], False, semantics, rebuild=rebuild, on_progress=on_progress, on_event=on_event)
        return check_dataset(name, semantics=semantics)
    if source is None:
        where = f"the downloaded data: {spec.homepage}; formats: {spec.formats}" if spec is not None else \
            "a folder <modality>/<class>/<file> of your own data"
        raise ZSBenchError(f"prepare {name} needs --from PATH ({where})")
    from benchmark.datasets.features import FeatureExtractor, make_backbone
    from benchmark.datasets.prepare import prepare_dataset

    extractor = FeatureExtractor(make_backbone(backbone, image_size, weights), batch_size=batch_size, device=device,
                                 workers=workers)
    return prepare_dataset(name, source, out, fmt, semantics, label_base, classes_file, extractor, on_progress, raw)
