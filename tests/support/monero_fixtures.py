"""Pytest fixtures for the Monero regtest harness.

Import them in a ``conftest.py``::

    from tests.support.monero_fixtures import monero_regtest  # noqa: F401
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.support.monero_regtest import MoneroBinariesMissing, MoneroRegtest, find_monero_binaries

MERCHANT_RPC_USER = "kassa"


@pytest.fixture(scope="session")
def monero_regtest() -> Iterator[MoneroRegtest]:
    """A started :class:`MoneroRegtest` shared by the whole session (~10-13 s to start).

    The merchant monero-wallet-rpc requires digest auth: ``net.merchant_rpc_login`` holds the
    (user, password). Tests share its view-only wallet, so each should create its own subaddresses
    and look only at those. Fails (does not skip) when the Monero binaries are missing: the
    project's Makefile installs them.
    """
    missing: str | None = None
    try:
        find_monero_binaries()
    except MoneroBinariesMissing as exc:
        missing = str(exc)
    if missing is not None:
        pytest.fail(missing, pytrace=False)
    with MoneroRegtest(merchant_rpc_login=(MERCHANT_RPC_USER, secrets.token_urlsafe(12))) as net:
        yield net
