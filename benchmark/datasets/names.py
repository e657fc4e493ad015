"""Class-name normalisation: one key per class whatever the source's spelling."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from benchmark.contract import ZSBenchError

_NON_WORD = re.compile(r"[^0-9a-z]+")


def normalize_class_name(name: str) -> str:
    """``hot-air_balloon``, ``hot air balloon``, ``Hot_Air_Balloon`` -> ``hot_air_balloon``."""
    return _NON_WORD.sub("_", name.strip().lower()).strip("_")


def _squashed(name: str) -> str:
    return normalize_class_name(name).replace("_", "")


class ClassNameIndex:
    """Maps any known spelling of a class (normalised, squashed or a listed alias) to its class id."""

    def __init__(self, class_names: Iterable[str], aliases: Mapping[str, str] | None = None, dataset: str = "?"):
        self.class_names = tuple(class_names)
        self.dataset = dataset
        self._ids: dict[str, int] = {}
        for i, name in enumerate(self.class_names):
            for key in (normalize_class_name(name), _squashed(name)):
                other = self._ids.get(key)
                if other is not None and other != i:
                    raise ZSBenchError(
                        f"{dataset}: class names {self.class_names[other]!r} and {name!r} normalise to the same "
                        f"key {key!r}; class names must be distinct"
                    )
                self._ids[key] = i
        for alias, canonical in (aliases or {}).items():
            self._ids[normalize_class_name(alias)] = self.id_of(canonical)
            self._ids[_squashed(alias)] = self.id_of(canonical)

    def id_of(self, name: str) -> int:
        for key in (normalize_class_name(name), _squashed(name)):
            if key in self._ids:
                return self._ids[key]
        raise ZSBenchError(
            f"{self.dataset}: unknown class name {name!r}; it matches none of the {len(self.class_names)} classes "
            f"(see `zsbench datasets info {self.dataset}`)"
        )

    def ids_of(self, names: Iterable[str]) -> list[int]:
        return [self.id_of(n) for n in names]
