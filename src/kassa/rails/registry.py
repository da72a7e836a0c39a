"""Finds rails by name through the `kassa.rails` entry-point group."""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from kassa.rails.base import Rail


class UnknownRail(LookupError):
    pass


@cache
def rail_classes() -> dict[str, type[Rail]]:
    found: dict[str, type[Rail]] = {}
    for ep in entry_points(group="kassa.rails"):
        found[ep.name] = ep.load()
    return found


def get_rail(name: str) -> Rail:
    try:
        cls = rail_classes()[name]
    except KeyError:
        raise UnknownRail(f"unknown payment rail {name!r}") from None
    return cls()


def known_rails() -> list[str]:
    return sorted(rail_classes())
