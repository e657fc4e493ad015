"""``zsbench datasets``: list, info, check and prepare (the work is in :mod:`benchmark.datasets.catalog`)."""

from __future__ import annotations

import click

from benchmark.cli.groups import default_group
from benchmark.cli.output import console, print_json, print_table
from benchmark.cli.progress import DataProgress


@default_group("datasets", default="list")
def datasets_group() -> None:
    """List the datasets (subcommands: list, info, check, prepare)."""


@datasets_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def datasets_list(as_json=False) -> None:
    """List the registered datasets and their splits."""
    from benchmark.datasets import data_root
    from benchmark.datasets.catalog import listing

    rows = listing()
    if as_json:
        print_json(rows)
        return
    print_table(f"datasets (prepared real data is looked for in {data_root()}/)",
                ["name", "kind", "modalities", "classes", "splits (default first)", "prepared"],
                [[r["name"], r["kind"], ", ".join(f"{m} {d}" for m, d in r["modalities"].items()), str(r["classes"]),
                  ", ".join(r["splits"]), "yes" if r["prepared"] else "no"] for r in rows])


@datasets_group.command("info")
@click.argument("name")
def datasets_info(name: str) -> None:
    """Classes, splits, counts and where to get the raw data."""
    from benchmark.datasets.specs import get_spec

    spec = get_spec(name)
    console.print(f"[bold]{spec.title}[/bold]")
    console.print(f"name: {spec.name}; kind: {spec.kind}\ncitation: {spec.citation}\nraw data: {spec.homepage}\nformats: {spec.formats}")
    console.print(f"real counts: {spec.counts}; evaluation protocol: {spec.eval_protocol}")
    for split_name, ref in spec.splits.items():
        split = spec.split(split_name)
        console.print(f"split {split_name}: {len(split.seen)} seen / {len(split.unseen)} unseen, "
                      f"sha256 {ref.sha256[:12]}... - {ref.description}")
        console.print(f"  unseen: {', '.join(split.unseen)}")
        if split.validation is not None:
            console.print(f"  validation classes (model selection, part of the seen ones): "
                          f"{', '.join(split.validation.classes)}")
    if spec.notes:
        console.print(f"notes: {spec.notes}")
    console.print(f"prepare: zsbench datasets prepare {spec.name}" + ("" if spec.source == "embedded" else
                  " --from PATH (see docs/data.md)") + f"; check: zsbench datasets check {spec.name}")


def _print_check(summary: dict) -> None:
    split = summary["split"]
    print_table(f"{summary['name']} ({summary['source']}): {summary['classes']} classes, split "
                f"{split['name']} {split['n_seen']} seen / {split['n_unseen']} unseen, sha256 {split['sha256'][:12]}...",
                ["modality", "items", "dim", "seen items", "unseen items", "empty classes"],
                [[m, str(info["items"]), str(info["dim"]), str(info["seen_items"]), str(info["unseen_items"]),
                  ", ".join(info["empty_classes"]) or "-"] for m, info in summary["modalities"].items()])
    console.print(f"semantics: {summary['semantics']}")
    if summary.get("dedup"):
        console.print(f"duplicates removed: {summary['dedup']}")


@datasets_group.command("check")
@click.argument("name")
@click.option("--split", default=None, help="Named zero-shot split (default: the dataset's default).")
def datasets_check(name: str, split) -> None:
    """Validate a prepared dataset (a registered name or a folder): shapes, dtypes, values, labels, split hash."""
    from benchmark.datasets.catalog import check_dataset

    with DataProgress() as bars:
        summary = check_dataset(name, split, on_progress=bars.update, on_event=bars.message)
    _print_check(summary)
    console.print("[green]ok[/green]")


@datasets_group.command("prepare")
@click.argument("name")
@click.option("--from", "source", default=None, help="Folder holding the dataset in one public layout.")
@click.option("--format", "fmt", default=None,
              help="Raw releases: sketchy-raw, tu-berlin-raw, wikipedia-raw, pascal-sentences-raw, folders; feature "
                   "files: sake-lists, cvae-npy, dscmr-mat, acmr-pkl, dadn-txt (default: detected).")
@click.option("--out", default=None, help="Output folder (default: $ZSBENCH_DATA/NAME, else ./data/NAME).")
@click.option("--semantics", default=None, help="Class semantics: glove (default), minilm, or a file of class vectors.")
@click.option("--label-base", type=click.Choice(["0", "1"]), default=None,
              help="Integer labels start at 0 or 1 (default: detected).")
@click.option("--classes", "classes_file", default=None, help="Class names in integer-label order, one a line.")
@click.option("--backbone", default="efficientnet-lite0", show_default=True,
              help="Image features: efficientnet-lite0, vgg11|13|16|19, resnet18|34|50|101|152 (with --weights), or "
                   "clip:MODEL (an open_clip config name or JSON file, with --weights).")
@click.option("--weights", default=None,
              help="Weights file for torchvision and clip backbones, or an open_clip pretrained tag.")
@click.option("--image-size", type=int, default=None, help="Input size for feature extraction (default 224).")
@click.option("--text-encoder", type=click.Choice(["glove", "minilm", "tfidf-svd", "clip"]), default=None,
              help="Raw texts: glove (default), minilm, tfidf-svd (fitted on seen-class training texts), clip "
                   "(default with a clip backbone).")
@click.option("--split", default=None, help="Registered dataset: the split whose seen classes tfidf-svd is fitted "
                                            "on (default: the dataset's default split).")
@click.option("--limit-per-class", type=int, default=None, help="Raw releases: the first N items of each class "
                                                               "(a quick first look).")
@click.option("--skip-broken", is_flag=True, help="Leave out images that cannot be decoded (listed in the manifest) "
                                                  "instead of stopping.")
@click.option("--variants", default=None, help="Sketchy: augmentation folders to read besides tx_000000000000, "
                                               "comma-separated, or 'all'.")
@click.option("--unseen", default=None, help="A dataset of your own: unseen class names, comma-separated, or a file "
                                             "(default: a seeded draw of a quarter of the classes).")
@click.option("--tasks", default=None, help="A dataset of your own: 'query->gallery,...' (default: every pair).")
@click.option("--paired", is_flag=True, help="A dataset of your own: items pair across modalities by class and "
                                             "file name.")
@click.option("--device", default="cpu", show_default=True, help="Where feature extraction runs: cpu or cuda.")
@click.option("--workers", type=int, default=1, show_default=True, help="Threads that read and decode images.")
@click.option("--batch-size", type=int, default=64, show_default=True, help="Images per forward pass.")
@click.option("--rebuild", is_flag=True, help="Embedded datasets: build again even when cached.")
def datasets_prepare(name, source, fmt, out, semantics, label_base, classes_file, backbone, weights, image_size,
                     text_encoder, split, limit_per_class, skip_broken, variants, unseen, tasks, paired, device,
                     workers, batch_size, rebuild) -> None:
    """Convert a dataset from a raw release or a paper's feature files (or build an embedded one) and check it.

    A NAME the registry does not know prepares a dataset of your own (folders layout, its own split file).
    """
    from benchmark.datasets.catalog import is_embedded, prepare
    from benchmark.datasets.prepare import RawOptions
    from benchmark.execution.grid import split_list

    raw = RawOptions(text_encoder=text_encoder, split=split, limit_per_class=limit_per_class, skip_broken=skip_broken,
                     variants=tuple(split_list(variants or "")), unseen=unseen, tasks=tasks, paired=paired)
    with DataProgress() as bars:
        summary = prepare(name, source, out, fmt, semantics, None if label_base is None else int(label_base),
                          classes_file, backbone, weights, image_size, device, workers, batch_size, raw, rebuild,
                          on_progress=bars.update, on_event=bars.message)
    if not is_embedded(name):
        console.print(f"prepared {name} from {source} ({summary['format']}) into {summary['folder']}")
    _print_check(summary)
    if summary.get("skipped_broken"):
        console.print(f"left out {len(summary['skipped_broken'])} broken image(s), e.g. "
                      f"{summary['skipped_broken'][0]} (listed in the manifest)")
    if summary.get("registered") is False:
        console.print(f"run it with: zsbench run --methods semantic-regression --dataset {summary['folder']}",
                      soft_wrap=True)
    console.print("[green]ok[/green]")
