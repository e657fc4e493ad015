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
