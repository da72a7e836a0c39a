"""Pytest fixtures for the litecoind regtest harness.

Import them in a ``conftest.py``::

    from tests.support.litecoin_fixtures import litecoin_regtest  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.litecoin_regtest import LitecoindMissing, LitecoinRegtest, find_litecoind


@pytest.fixture(scope="session")
def litecoin_regtest() -> Iterator[LitecoinRegtest]:
    """A started :class:`LitecoinRegtest` shared by the whole session (~1 s to start).

    Tests share the chain and the payer: each should create its own watch-only wallet (or use fresh
    addresses) and not assume the height. Fails (does not skip) when litecoind is missing:
    scripts/system-deps.sh installs it.
    """
    missing: str | None = None
    try:
        find_litecoind()
    except LitecoindMissing as exc:
        missing = str(exc)
    if missing is not None:
        pytest.fail(missing, pytrace=False)
    with LitecoinRegtest() as node:
        yield node
