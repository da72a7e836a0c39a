"""Finds rails by name through the `kassa.rails` entry-point group (third parties ship their own)."""

from __future__ import annotations

import logging
from functools import cache
from importlib.metadata import entry_points

from kassa.rails.base import Rail

log = logging.getLogger("kassa.rails")


class UnknownRail(LookupError):
    pass


@cache
def rail_classes() -> dict[str, type[Rail]]:
    found: dict[str, type[Rail]] = {}
    for ep in entry_points(group="kassa.rails"):
        try:
            found[ep.name] = ep.load()
        except Exception as exc:  # one broken plugin must not take the others down
            log.error("payment rail %r (%s) cannot be loaded: %s", ep.name, ep.value, exc)
    return found


@cache
def get_rail(name: str) -> Rail:
    try:
        cls = rail_classes()[name]
    except KeyError:
        raise UnknownRail(f"unknown payment rail {name!r}") from None
    return cls()


def known_rails() -> list[str]:
    return sorted(rail_classes())
