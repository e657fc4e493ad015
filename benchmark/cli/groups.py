"""Click groups that do something when called alone: ``zsbench datasets`` lists, ``zsbench perf`` measures all."""

from __future__ import annotations

import click


def default_group(name: str, default: str):
    """Decorate a function (its docstring is the help) into a click group ``name`` that runs its subcommand
    ``default`` when given none."""
    def decorate(function) -> click.Group:
        def callback() -> None:
            ctx = click.get_current_context()
            if ctx.invoked_subcommand is None:
                ctx.invoke(group.commands[default])

        group = click.Group(name, callback=callback, invoke_without_command=True, help=function.__doc__)
        return group
    return decorate
