"""Finds methods: the built-in packages register theirs on import; a user's is ``module:Class``."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from benchmark.contract import METHOD_REGISTRY, Method, ZSBenchError

#: Packages whose every module is imported to collect registered methods.
METHOD_PACKAGES = ("baselines", "cfsa")
_discovered = False


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    for package_name in METHOD_PACKAGES:
        package = importlib.import_module(package_name)
        importlib.invalidate_caches()
        for info in pkgutil.iter_modules(package.__path__, prefix=f"{package_name}."):
            importlib.import_module(info.name)
    _discovered = True


def available_methods() -> dict[str, tuple[type[Method], dict[str, Any]]]:
    """Registered name -> (class, overrides), sorted by name."""
    _discover()
    return dict(sorted(METHOD_REGISTRY.items()))


def describe_methods() -> list[dict[str, Any]]:
    """One row per registered method (``zsbench methods``): its name, ``module:Class``, registered overrides,
    quick-mode parameters and the names of its tuning search space."""
    return [{"name": name, "class": f"{cls.__module__}:{cls.__name__}", "overrides": overrides,
             "quick_params": dict(cls.quick_params), "search_space": sorted(cls.search_space)}
            for name, (cls, overrides) in available_methods().items()]


def resolve_method(spec: str) -> tuple[str, type[Method], dict[str, Any]]:
    """A registered name, or ``package.module:ClassName`` for a method that follows the contract."""
    if ":" in spec:
        module_name, _, class_name = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise ZSBenchError(f"cannot import module {module_name!r} for method {spec!r}: {err}") from None
        cls = getattr(module, class_name, None)
        if cls is None:
            raise ZSBenchError(f"module {module_name!r} has no class {class_name!r} (method {spec!r})")
        if not (isinstance(cls, type) and issubclass(cls, Method)):
            raise ZSBenchError(
                f"{spec!r} is not a benchmark.contract.Method subclass; see README 'Adding a method'"
            )
        return spec, cls, {}
    methods = available_methods()
    if spec not in methods:
        raise ZSBenchError(f"unknown method {spec!r}; known methods: {', '.join(methods)} (or give module:Class)")
    cls, overrides = methods[spec]
    return spec, cls, overrides


def build_method(spec: str, params: dict[str, Any] | None = None, budget: str = "cpu") -> tuple[str, Method]:
    """Instantiate a method at its defaults with the overrides of its training ``budget``, then its registered
    (variant) overrides, then ``params`` on top."""
    name, cls, overrides = resolve_method(spec)
    budgets = getattr(cls, "budgets", {"cpu": {}})
    if budget not in budgets:
        raise ZSBenchError(f"{name} has no {budget!r} training budget (its budgets: {', '.join(budgets)})")
    merged = {**budgets[budget], **overrides, **(params or {})}
    try:
        method = cls(**merged)
    except TypeError as err:
        raise ZSBenchError(f"bad hyper-parameters for method {name!r}: {err}") from None
    return name, method


def _type_name(cls: type[Method], field_name: str) -> str:
    import typing

    try:
        hint = typing.get_type_hints(cls)[field_name]
    except Exception:  # noqa: BLE001 - a method of one's own with an unresolvable annotation: its default's type
        return ""
    text = str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")
    return text.replace("NoneType", "None")


def _search_text(space: Any) -> str:
    kind = type(space).__name__
    if kind == "Choice":
        return "one of " + ", ".join(map(str, space.values))
    if kind in ("LogUniform", "Uniform"):
        return f"{space.low:g}..{space.high:g}" + (" (log)" if kind == "LogUniform" else "")
    if kind == "IntRange":
        return f"{space.low}..{space.high} integers" + (" (log)" if space.log else "")
    return str(space)


def hyper_parameters(spec: str) -> list[dict[str, Any]]:
    """Every hyper-parameter of a method: name, type, default (its registered overrides applied) and the
    tuning search space (empty when ``zsbench tune`` leaves it fixed)."""
    name, method = build_method(spec)
    _, cls, _ = resolve_method(spec)
    space = getattr(cls, "search_space", {}) or {}
    return [{"name": key, "type": _type_name(cls, key) or type(value).__name__, "default": value,
             "search": _search_text(space[key]) if key in space else ""}
            for key, value in method.get_params().items()]


def coerce_param(spec: str, param: str, value: Any, where: str) -> Any:
    """``value`` (as read from ``--param`` or a grid file) checked against the type of the method's field ``param``;
    a one-line error naming the parameter and what it takes otherwise."""
    rows = {row["name"]: row for row in hyper_parameters(spec)}
    if param not in rows:
        raise ZSBenchError(f"{where}: {spec} has no hyper-parameter {param!r}; its hyper-parameters: "
                           f"{', '.join(rows)} (zsbench methods {spec} lists them)")
    default, type_text = rows[param]["default"], rows[param]["type"]
    if "None" in type_text and isinstance(value, str) and value.lower() == "none":
        return None
    base = type_text.split("[")[0].split(" | ")[0] or type(default).__name__
    # Accepted values are returned as given (an int for a float field stays an int): a run's identity, and so
    # the name of its record, is what earlier versions wrote for the same command.
    if base in ("tuple", "list") and isinstance(value, list):
        return value
    if base == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if base == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if (base, type(value).__name__) in (("bool", "bool"), ("str", "str")) or base not in (
            "tuple", "list", "float", "int", "bool", "str"):
        return value
    raise ZSBenchError(f"{where}: {spec}.{param} takes {type_text or base} (default {_toml(default)}), got "
                       f"{value!r}; e.g. --param {spec}.{param}={_toml(default)}")


def _toml(value: Any) -> str:
    """``value`` as one writes it after ``--param NAME=`` (TOML: true, 20, 1e-4, mmd, [1, 2])."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)
