"""The search space of a tuning study: each method's declared ranges as Optuna distributions, checked before
any trial (see ``benchmark.execution.tuning``)."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from benchmark.contract import Choice, IntRange, LogUniform, Method, Uniform, ZSBenchError
from benchmark.core.lengths import length_param
from benchmark.core.spec import DEFAULT_BUDGET
from benchmark.registry import build_method, resolve_method


def _optuna():
    try:
        import optuna
    except ImportError:  # pragma: no cover - a dependency
        raise ZSBenchError("zsbench tune needs optuna: pip install 'optuna>=4,<5'") from None
    optuna.logging.set_verbosity(logging.WARNING)
    return optuna


def distribution(name: str, method_name: str, space: Any, default: Any):
    """The Optuna distribution of one declared range, checked against the hyper-parameter's default type."""
    optuna = _optuna()
    d = optuna.distributions
    where = f"{method_name}: search space of {name!r}"
    if isinstance(space, Choice):
        if not space.values:
            raise ZSBenchError(f"{where} is an empty Choice")
        return d.CategoricalDistribution(list(space.values))
    if isinstance(default, bool):
        raise ZSBenchError(f"{where}: a switch takes Choice((False, True)), not {type(space).__name__}")
    if isinstance(space, IntRange):
        if not isinstance(default, int):
            raise ZSBenchError(f"{where}: IntRange for a {type(default).__name__} hyper-parameter; use LogUniform/Uniform")
        if space.low > space.high or space.step < 1 or (space.log and space.low < 1):
            raise ZSBenchError(f"{where}: IntRange({space.low}, {space.high}) is empty or not positive on a log scale")
        return d.IntDistribution(space.low, space.high, log=space.log, step=space.step)
    if isinstance(space, LogUniform | Uniform):
        if isinstance(default, int):
            raise ZSBenchError(f"{where}: a float range for an integer hyper-parameter; use IntRange")
        if not space.low < space.high or (isinstance(space, LogUniform) and space.low <= 0):
            raise ZSBenchError(f"{where}: {type(space).__name__}({space.low}, {space.high}) is empty or not positive")
        return d.FloatDistribution(space.low, space.high, log=isinstance(space, LogUniform))
    raise ZSBenchError(f"{where} is {space!r}; use LogUniform, Uniform, IntRange or Choice from benchmark.contract")


def checked_space(spec: str, base_params: dict[str, Any], training: str = DEFAULT_BUDGET
                  ) -> tuple[str, dict[str, Any], Method]:
    """(method name, param -> distribution, the method at its base parameters); fails before any trial on a
    space naming an unknown hyper-parameter, an empty or mistyped range, or ends the method refuses.

    A registered variant's overrides (an ablation's ``cycle_weight=0``) and the parameters fixed with
    ``--param`` are not searched: they define what is being tuned."""
    name, cls, overrides = resolve_method(spec)
    _, method = build_method(spec, base_params, training)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    space = {}
    for param, declared in cls.search_space.items():
        if param not in fields:
            raise ZSBenchError(f"{name}: search space names {param!r}, which is not one of its hyper-parameters")
        if param in overrides or param in base_params or param == length_param(method):
            continue  # fixed by the variant or by --param, or the length (selected per trial, not searched)
        space[param] = distribution(param, name, declared, getattr(method, param))
        ends = declared.values if isinstance(declared, Choice) else (declared.low, declared.high)
        for value in ends:
            try:
                build_method(spec, {**base_params, param: value}, training)[1].validate_params()
            except (ZSBenchError, ValueError, TypeError) as err:
                raise ZSBenchError(f"{name}: search space of {param!r} includes {value!r}, which the method refuses "
                                   f"({err})") from None
    return name, space, method


def _in_space(declared: Any, value: Any) -> bool:
    if isinstance(declared, Choice):
        return value in declared.values
    return declared.low <= value <= declared.high
