"""``zsbench methods [NAME]``: the registered methods (rows from :func:`benchmark.registry.describe_methods`), or
one method's hyper-parameters (:func:`benchmark.registry.hyper_parameters`)."""

from __future__ import annotations

import click

from benchmark.cli.output import print_json, print_table


@click.command("methods")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def methods_cmd(name, as_json) -> None:
    """List the registered methods, or NAME's hyper-parameters (default, type, tuning search space)."""
    from benchmark.registry import describe_methods, hyper_parameters

    if name:
        rows = hyper_parameters(name)
        if as_json:
            print_json(rows)
            return
        print_table(f"{name}: hyper-parameters (set one with --param {name}.NAME=VALUE)",
                    ["name", "type", "default", "search space (zsbench tune)"],
                    [[r["name"], r["type"], repr(r["default"]) if isinstance(r["default"], str) else str(r["default"]),
                      r["search"] or "fixed"] for r in rows])
        return
    rows = describe_methods()
    if as_json:
        print_json(rows)
        return
    print_table("methods (zsbench methods NAME lists one's hyper-parameters)", ["name", "class", "overrides"],
                [[r["name"], r["class"], ", ".join(f"{k}={v}" for k, v in r["overrides"].items())] for r in rows])
