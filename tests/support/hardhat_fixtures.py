"""Pytest fixtures for the local Hardhat node (EVM rail tests).

Import them in a ``conftest.py``::

    from tests.support.hardhat_fixtures import hardhat_node  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.hardhat_node import HardhatMissing, HardhatNode, find_node_tools


@pytest.fixture(scope="session")
def hardhat_node() -> Iterator[HardhatNode]:
    """A started :class:`HardhatNode` shared by the whole session (~2.5 s to start; the first run
    on a machine also runs ``npm ci`` in tests/support/evm, ~25 s).

    Tests share the chain and the 20 dev accounts: each should deploy its own token or use its own
    receiving addresses, not assume the height, and leave automine on and every snapshot reverted.
    Fails (does not skip) when node or npm is missing: scripts/system-deps.sh installs them.
    """
    missing: str | None = None
    try:
        find_node_tools()
    except HardhatMissing as exc:
        missing = str(exc)
    if missing is not None:
        pytest.fail(missing, pytrace=False)
    with HardhatNode() as node:
        yield node
