"""EIP-681 payment request URIs for the EVM rail: what the checkout's QR code and wallet link carry.

* native coin (ETH, or the chain's own): ``ethereum:<to>@<chain_id>?value=<wei>``
* ERC-20 token: ``ethereum:<token>@<chain_id>/transfer?address=<to>&uint256=<amount>``, a call of
  the token contract's ``transfer(address, uint256)``, the amount in the token's atomic units.

Choices, against EIP-681 (ERC-681) and what wallets read:

* the chain id is always written (``@1``, ``@137``, ...): without it a wallet pays on whatever chain
  it is on, and a payment on the wrong chain never reaches the order;
* amounts are exact decimal integers in atomic units (wei, or the token's smallest unit), never the
  scientific notation EIP-681 encourages (``2.014e18``): wallets have read it through floating
  point and paid other amounts (MetaMask Mobile issues #1871 and #7769; its PR #30832, 2026, still
  fixed a loss of precision of large ``uint256`` values), while a plain integer of up to 78 digits
  reads the same everywhere;
* addresses are written in their EIP-55 checksummed form, so that a wallet that checks it can tell a
  corrupted URI; ENS names are not taken (a payment address must not depend on a lookup);
* no ``pay-`` prefix (optional in EIP-681; plain ``ethereum:0x…`` is also what EIP-67 wallets read),
  no ``gas``/``gasPrice`` (the wallet knows the current fees better than a URI made earlier).
"""

from __future__ import annotations

from typing import Final

from kassa.rails.evm.keys import checksum_address

__all__ = ["MAX_UINT256", "native_uri", "token_uri"]

MAX_UINT256: Final = 2**256 - 1
"""The largest amount a ``uint256`` (and an EVM value in wei) holds."""


def _amount(value: int, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"the {what} is a whole number of atomic units (an int), not {type(value).__name__}")
    if not 1 <= value <= MAX_UINT256:
        raise ValueError(f"the {what} must be at least 1 and at most 2**256 - 1 atomic units")
    return str(value)


def _chain(chain_id: int) -> str:
    if isinstance(chain_id, bool) or not isinstance(chain_id, int) or not 1 <= chain_id <= MAX_UINT256:
        raise ValueError("the chain id is a whole number >= 1 (1 for Ethereum mainnet)")
    return str(chain_id)


def native_uri(to: str, wei: int, chain_id: int) -> str:
    """The URI requesting `wei` (≥ 1) of the chain's native coin to address `to` on chain `chain_id`.

    ``native_uri("0x9858effd232b4033e47d90003d41ec34ecaeda94", 10**18, 1)`` is
    ``"ethereum:0x9858EfFD232B4033E47d90003D41EC34EcaEda94@1?value=1000000000000000000"``. Raises
    ValueError for a malformed address (or a mixed-case one whose EIP-55 checksum is wrong), an amount
    or a chain id that is not a positive int.
    """
    return f"ethereum:{checksum_address(to)}@{_chain(chain_id)}?value={_amount(wei, 'amount in wei')}"


def token_uri(token: str, to: str, amount: int, chain_id: int) -> str:
    """The URI requesting `amount` (≥ 1, in the token's atomic units: 1 USDC is 10**6) of the ERC-20
    token at contract address `token` to address `to` on chain `chain_id`.

    Raises ValueError as :func:`native_uri` does, and when `to` is the token contract itself (tokens
    sent to their own contract are, for most tokens, lost).
    """
    contract, recipient = checksum_address(token), checksum_address(to)
    if contract == recipient:
        raise ValueError("the recipient is the token contract itself: tokens sent there are usually lost")
    return (
        f"ethereum:{contract}@{_chain(chain_id)}/transfer"
        f"?address={recipient}&uint256={_amount(amount, 'token amount')}"
    )
