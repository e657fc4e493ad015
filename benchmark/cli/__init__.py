"""The ``zsbench`` command: a thin click layer that parses, calls the library and prints with rich.

Each command module holds parsing and printing only: ``run`` (run, tune), ``datasets``, ``methods``,
``report`` (report, compare, export) and ``perf``; ``output`` and ``progress`` are what they print with.
:func:`main` turns the library's errors into one line and an exit status.
"""

from __future__ import annotations

import sys

import click
from rich.markup import escape

from benchmark.cli import datasets, methods, perf, report, run
from benchmark.cli.output import console, err_console, print_json, print_table
from benchmark.cli.progress import RunProgress, TuneProgress
from benchmark.contract import ZSBenchError

__all__ = ["RunProgress", "TuneProgress", "cli", "console", "err_console", "main", "print_json", "print_table"]


@click.group()
@click.version_option(package_name="zsbench")
def cli() -> None:
    """Zero-shot cross-modal retrieval benchmark: CFSA beside the field's baselines on frozen splits."""


for _command in (run.run, run.tune, methods.methods_cmd, datasets.datasets_group, perf.perf, report.report_cmd,
                 report.compare_cmd, report.export_cmd):
    cli.add_command(_command)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except ZSBenchError as err:
        err_console.print(f"[red]error:[/red] {escape(str(err))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except (click.exceptions.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except ValueError as err:
        err_console.print(f"[red]error:[/red] {escape(str(err))}", highlight=False, soft_wrap=True)
        sys.exit(2)
