"""A name → implementation registry: built-ins first known, plugins' added at configure.

``frameworks.registry`` and ``launch.registry`` are each one of these, so a name is
listed in exactly one place and every error about it names the valid ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, Protocol, TypeVar


class Named(Protocol):
    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=Named)


class Registry(Generic[T]):
    def __init__(self, kind: str, builtin: Iterable[T]) -> None:
        self.kind = kind
        self._builtin = tuple(builtin)
        self._items: dict[str, T] = {item.name: item for item in self._builtin}

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._items))

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            valid = ", ".join(self.names())
            raise KeyError(f"unknown {self.kind} {name!r} (valid: {valid})") from None

    def all(self) -> tuple[T, ...]:
        return tuple(self._items[name] for name in self.names())

    def install(self, added: Iterable[T]) -> None:
        """The built-ins plus ``added``; the first of each name wins, so a plugin's (listed
        before the built-ins by the hook) may replace a built-in one."""
        chosen: dict[str, T] = {}
        for item in (*added, *self._builtin):
            chosen.setdefault(item.name, item)
        self._items = chosen
