"""Money out of a Monero wallet: refunds and payouts (docs/payouts.md, "Monero").

Kassa spends only from a spend-capable monero-wallet-rpc the operator configures beside the view-only
one (`spend_wallet_rpc_url`, the same wallet's keys: custodial mode). A transaction is built with
`do_not_relay` (nothing reaches the network and the wallet does not remember it), recorded by the
core, then published with `relay_tx`; the network's fee is taken from the amount, so what the
destination receives plus the fee never exceeds what Kassa set aside. Without a spend wallet, the
view-only wallet builds an unsigned transaction for the merchant's own full wallet to sign
(`sign_transfer`), and publishes the signed set (`submit_transfer`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

from kassa.rails.base import (
    CounterpartUnavailable,
    DestinationInvalid,
    Outgoing,
    Prepared,
    SendRefused,
    SendRequest,
    Unsigned,
)
from kassa.rails.monero.rail import MoneroSettings, describe_error, spend_client, wallet_client
from kassa.rails.monero.rpc import (
    WALLET_RPC_ERROR_CODE_NOT_ENOUGH_UNLOCKED_MONEY,
    WALLET_RPC_ERROR_CODE_WRONG_TXID,
    MoneroError,
    MoneroRpcError,
    MoneroWalletRpc,
    TransferResult,
)

SENT_CONFIRMATIONS: Final = 10
"""Confirmations after which Kassa calls its own transaction final when the merchant set none (the
depth at which Monero unlocks outputs)."""
MAX_ATOMIC: Final = 2**64 - 1
SHORT_BY_THE_FEE: Final = frozenset({-16, -17})  # "tx not possible", "not enough money"


@asynccontextmanager
async def _reached(wallet: MoneroWalletRpc) -> AsyncIterator[MoneroWalletRpc]:
    """The wallet, its RPC failures as the contract's: an RPC error is the wallet's refusal, anything
    else (unreachable, HTTP, authentication) a counterpart that may answer later."""
    try:
        async with wallet:
            yield wallet
    except MoneroRpcError as exc:
        if exc.code == WALLET_RPC_ERROR_CODE_NOT_ENOUGH_UNLOCKED_MONEY:  # unlocks within 10 blocks
            raise CounterpartUnavailable("the wallet's money is still locked (10 blocks)") from None
        raise SendRefused(f"the wallet refused: {exc.message} (code {exc.code})") from None
    except MoneroError as exc:
        raise CounterpartUnavailable(describe_error(exc)) from None


async def check_destination(settings: MoneroSettings, destination: str) -> str:
    """A standard address, subaddress or integrated address of the wallet's network, checked by
    monero-wallet-rpc itself (`validate_address`: network byte, checksum, length)."""
    value = destination.strip()
    if not 90 <= len(value) <= 110 or not value.isalnum():
        raise DestinationInvalid("a Monero address is 95 (or, integrated, 106) base58 characters")
    try:
        async with wallet_client(settings) as wallet:
            checked = await wallet.validate_address(value)
            mine = (await wallet.get_address(settings.account_index, [0])).address
    except MoneroError as exc:
        raise CounterpartUnavailable(describe_error(exc)) from None
    if not checked.valid:
        raise DestinationInvalid(
            "not a valid Monero address of this wallet's network (wrong network, checksum or length)"
        )
    if value == mine:
        raise DestinationInvalid("this is the receiving wallet's own address")
    return value


async def _fee_inclusive(
    wallet: MoneroWalletRpc, settings: MoneroSettings, request: SendRequest
) -> TransferResult:
    """A transaction that sends `request.amount` less its own network fee (monero-wallet-rpc 0.18 adds
    the fee on top: ask once for the fee, then build the transaction for what is left)."""
    if request.amount > MAX_ATOMIC:
        raise SendRefused("the amount is beyond what a Monero transaction can carry")
    account = settings.account_index
    await wallet.refresh()  # know every output that arrived, and which are unlocked
    # The fee hangs on the transaction's size, not its amount: ask with half the amount, which the
    # wallet can pay even when the amount is all it holds.
    # Outputs sit on many subaddresses (one per order) and the wallet spends from one unless told:
    # name every subaddress that holds unlocked money.
    funded = await _funded_subaddresses(wallet, account)
    probe = await wallet.transfer(
        [(request.destination, max(request.amount // 2, 1))],
        account_index=account,
        subaddr_indices=funded,
        do_not_relay=True,
    )
    guess = probe.fee
    best: TransferResult | None = None
    for _ in range(8):
        if request.amount <= guess:
            break
        try:
            built = await wallet.transfer(
                [(request.destination, request.amount - guess)],
                account_index=account,
                subaddr_indices=funded,
                do_not_relay=True,
            )
        except MoneroRpcError as exc:
            if exc.code not in SHORT_BY_THE_FEE or best is not None:
                raise
            guess *= 2  # more inputs than the probe used: a bigger fee; leave more room for it
            continue
        if built.amount + built.fee > request.amount:
            guess = built.fee
            continue
        best = built
        if built.amount + built.fee == request.amount or guess == built.fee:
            break
        guess = built.fee  # room was left over: one more try, exactly at this transaction's fee
    if best is None:
        raise SendRefused(f"the amount does not cover the network fee (about {guess} atomic units)")
    return best


async def _funded_subaddresses(wallet: MoneroWalletRpc, account: int) -> list[int] | None:
    """The account's subaddresses with unlocked money (None: let the wallet choose)."""
    answer = await wallet.call("get_balance", {"account_index": account, "all_accounts": False})
    rows = answer.get("per_subaddress") if isinstance(answer, dict) else None
    if not isinstance(rows, list):
        return None
    indices = [
        int(row["address_index"])
        for row in rows
        if isinstance(row, dict) and int(row.get("unlocked_balance", 0)) > 0
    ]
    return indices or None


async def prepare_send(settings: MoneroSettings, request: SendRequest) -> Prepared:
    async with _reached(spend_client(settings)) as wallet:
        built = await _fee_inclusive(wallet, settings, request)
    return Prepared(built.tx_hash, built.amount, built.fee, built.tx_metadata)


async def relay(settings: MoneroSettings, prepared: Prepared) -> None:
    """Publish the prepared transaction (the daemon takes the same one again harmlessly). A refusal
    is checked against the wallet first: a transaction it already knows went out."""
    try:
        async with _reached(spend_client(settings)) as wallet:
            await wallet.relay_tx(prepared.blob, tx_hash=prepared.reference)
    except SendRefused:
        if (await outgoing(settings, prepared.reference)).state in ("pending", "confirmed"):
            return
        raise


async def outgoing(settings: MoneroSettings, reference: str) -> Outgoing:
    """The spend wallet's view of a transaction it sent (after a refresh); without a spend wallet,
    the view-only wallet's (which sees a transaction of its own wallet by its change)."""
    client = spend_client(settings) if settings.spend_wallet_rpc_url else wallet_client(settings)
    needed = settings.confirmations if settings.confirmations is not None else SENT_CONFIRMATIONS
    try:
        async with client as wallet:
            await wallet.refresh()
            entries = await wallet.get_transfer_by_txid(reference.split(",")[0])
    except MoneroRpcError as exc:
        if exc.code == WALLET_RPC_ERROR_CODE_WRONG_TXID:
            return Outgoing("unknown")
        raise CounterpartUnavailable(describe_error(exc)) from None
    except MoneroError as exc:
        raise CounterpartUnavailable(describe_error(exc)) from None
    if not entries:
        return Outgoing("unknown")
    if any(e.type == "failed" or e.double_spend_seen for e in entries):
        return Outgoing("failed")
    depth = max(e.confirmations for e in entries)
    if any(e.in_pool or e.type in ("pending", "pool") for e in entries) or depth < max(needed, 1):
        return Outgoing("pending", depth)
    return Outgoing("confirmed", depth)


async def prepare_unsigned(settings: MoneroSettings, request: SendRequest) -> Unsigned:
    """The view-only wallet's unsigned transaction set, for the merchant's full wallet to sign."""
    async with _reached(wallet_client(settings)) as wallet:
        built = await _fee_inclusive(wallet, settings, request)
    if not built.unsigned_txset:
        raise SendRefused("the wallet signed the transaction itself: it is not view-only")
    return Unsigned(built.unsigned_txset, built.amount, built.fee)


async def submit_signed(settings: MoneroSettings, unsigned: str, signed: str) -> Prepared:
    """Publish the merchant's signed set through the view-only wallet that made the unsigned one."""
    if not signed.strip() or not all(c in "0123456789abcdefABCDEF" for c in signed.strip()):
        raise DestinationInvalid("signed_tx is the hex signed_txset that sign_transfer gave")
    try:
        async with wallet_client(settings, timeout=60) as wallet:
            hashes = await wallet.submit_transfer(signed.strip())
    except MoneroRpcError as exc:
        raise DestinationInvalid(f"the wallet refused the signed transaction: {exc.message}") from None
    except MoneroError as exc:
        raise CounterpartUnavailable(describe_error(exc)) from None
    if not hashes:
        raise DestinationInvalid("the signed transaction set holds no transaction")
    return Prepared(",".join(hashes), 0, 0, "")
