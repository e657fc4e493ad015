"""The selectors every command that reads records shares with ``zsbench run``, with the same meaning:
``--dataset`` (names), ``--synthetic`` (the stand-ins; without it, real and embedded data), ``--split`` and
``--results`` (the folder of run records)."""

from __future__ import annotations

import click

from benchmark.core.store import DEFAULT_RESULTS


def selectors(dataset_required: bool = False):
    """The four options, as one decorator."""
    def decorate(command):
        for option in reversed([
            click.option("--dataset", "dataset", required=dataset_required, default=None,
                         help="Dataset name(s), comma-separated, as for run." if not dataset_required else
                              "Dataset name, as for run."),
            click.option("--synthetic", is_flag=True, help="The synthetic stand-ins' records (as for run); without "
                                                           "it, real and embedded data."),
            click.option("--split", default=None, help="Only this split's records."),
            click.option("--results", default=DEFAULT_RESULTS, show_default=True, help="Folder of run records."),
        ]):
            command = option(command)
        return command
    return decorate
