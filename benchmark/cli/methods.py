"""``zsbench methods``: the registered methods (rows from :func:`benchmark.registry.describe_methods`)."""

from __future__ import annotations

import click

from benchmark.cli.output import print_json, print_table


@click.command("methods")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def methods_cmd(as_json) -> None:
    """List the registered methods."""
    from benchmark.registry import describe_methods

    rows = describe_methods()
    if as_json:
        print_json(rows)
        return
    print_table("methods", ["name", "class", "overrides"],
                [[r["name"], r["class"], ", ".join(f"{k}={v}" for k, v in r["overrides"].items())] for r in rows])
