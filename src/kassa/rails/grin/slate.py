"""Reading the JSON slates a Grin sender hands over (``grin-wallet send``), V4 and V3.

Only what Kassa needs is read: the slate id, the amount and, for V4, the state and TTL. Field names
and encodings follow grin-wallet's serialisation (``libwallet/src/slate_versions/v4.rs`` and
``v3.rs``, documented in the Foreign API reference,
https://docs.rs/grin_wallet_api/latest/grin_wallet_api/trait.ForeignRpc.html):

* V4 (grin-wallet >= 4.0): ``{"ver": "4:2", "id": "<uuid>", "sta": "S1", "amt": "6000000000",
  "fee": "7000000", "ttl": "1234", "off": "<hex>", "sigs": [...], "proof": {...}}``. ``amt``, ``fee``
  and ``ttl`` are u64 written as decimal strings and left out when zero; ``ver`` is
  ``"<slate version>:<block header version>"``.
* V3 (grin-wallet 3.x): ``{"version_info": {"version": 3, "orig_version": 3,
  "block_header_version": 2}, "num_participants": 2, "id": "<uuid>", "tx": {...}, "amount": "...",
  "fee": "...", "height": "...", "lock_height": "...", "ttl_cutoff_height": null,
  "participant_data": [...], "payment_proof": null}``.

u64 fields are accepted as decimal strings or JSON integers, as grin's ``string_or_u64`` does.
Anything else is refused with :class:`SlateError`, whose message is written for the customer who
pasted the slate. :func:`parse_slate` raises nothing but :class:`SlateError`, whatever it is given.
Amounts are in nanogrin (1 GRIN = 10**9).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "NANOGRIN_PER_GRIN",
    "SLATE_STATES",
    "SlateError",
    "SlateInfo",
    "parse_slate",
    "slate_version_of",
]

NANOGRIN_PER_GRIN: Final = 10**9
U64_LIMIT: Final = 2**64

# SlateState of grin-wallet (libwallet/src/slate_versions/common.rs): standard S1..S3, invoice I1..I3.
SLATE_STATES: Final = frozenset({"NA", "S1", "S2", "S3", "I1", "I2", "I3"})

_UUID_RE: Final = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_DIGITS_RE: Final = re.compile(r"[0-9]{1,20}")
_VER_RE: Final = re.compile(r"([0-9]{1,5}):([0-9]{1,5})")


class SlateError(ValueError):
    """The slate cannot be used; the message is a sentence that can be shown to the customer."""


@dataclass(frozen=True, slots=True)
class SlateInfo:
    """What Kassa reads from a slate."""

    version: int  # 3 or 4
    id: str  # lower-case UUID text
    amount: int  # nanogrin; 0 for a V4 slate past S1/I1 without "amt" (e.g. the S2 receive_tx answers)
    state: str | None  # V4 "sta", e.g. "S1"; None for V3
    ttl_cutoff_height: int | None  # block height from which the wallet refuses the slate; None: no TTL


def slate_version_of(obj: object) -> int | None:
    """The slate format version ``obj`` announces (``ver`` or ``version_info.version``), or None."""
    if not isinstance(obj, dict):
        return None
    ver = obj.get("ver")
    if isinstance(ver, str):
        match = _VER_RE.fullmatch(ver)
        return int(match.group(1)) if match else None
    info = obj.get("version_info")
    if isinstance(info, dict):
        version = info.get("version")
        if isinstance(version, int) and not isinstance(version, bool) and 0 <= version < 2**16:
            return version
    return None


def parse_slate(obj: object) -> SlateInfo:
    """Check a decoded JSON slate (V4 or V3) and return its id, amount, state and TTL."""
    if isinstance(obj, str) and "BEGINSLATEPACK" in obj.upper():
        raise SlateError(
            "this is an armored slatepack; paste the slate as JSON (grin-wallet send -m file) instead"
        )
    if not isinstance(obj, dict):
        raise SlateError("the slate must be a JSON object")
    has_ver = "ver" in obj
    has_info = "version_info" in obj
    if has_ver and has_info:
        raise SlateError("the slate has both 'ver' and 'version_info', so its version is unclear")
    if has_ver:
        return _parse_v4(obj)
    if has_info:
        return _parse_v3(obj)
    raise SlateError("this is not a Grin slate: it has neither 'ver' nor 'version_info'")


def _unsupported(version: int) -> SlateError:
    return SlateError(f"slate version {version} is not supported; send a V4 or V3 slate")


def _parse_v4(obj: dict[str, Any]) -> SlateInfo:
    ver = obj["ver"]
    if not isinstance(ver, str):
        raise SlateError("the slate version 'ver' must be text such as \"4:2\"")
    match = _VER_RE.fullmatch(ver)
    if match is None:
        raise SlateError("the slate version 'ver' must look like \"4:2\" (slate version:header version)")
    version = int(match.group(1))
    if version != 4:
        raise _unsupported(version)
    slate_id = _slate_id(obj)
    state = obj.get("sta")
    if state is None:
        raise SlateError("the slate has no state ('sta')")
    if not isinstance(state, str) or state not in SLATE_STATES:
        raise SlateError("the slate state 'sta' is not one of S1, S2, S3, I1, I2, I3")
    if "amt" in obj:
        amount = _u64(obj["amt"], "amount")
    elif state in ("S1", "I1"):
        raise SlateError("the slate has no amount")
    else:
        amount = 0  # grin leaves "amt" out of the slates after S1/I1 (receive_tx compacts its answer)
    if "fee" in obj:
        _u64(obj["fee"], "fee")
    ttl = _u64(obj["ttl"], "TTL", unit="a block height") if "ttl" in obj else 0
    sigs = obj.get("sigs")
    if not isinstance(sigs, list):
        raise SlateError("the slate has no signature data ('sigs')")
    return SlateInfo(4, slate_id, amount, state, ttl or None)


def _parse_v3(obj: dict[str, Any]) -> SlateInfo:
    info = obj["version_info"]
    if not isinstance(info, dict):
        raise SlateError("the slate's 'version_info' must be an object")
    version = info.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise SlateError("the slate's 'version_info' has no version number")
    if version != 3:
        raise _unsupported(version)
    slate_id = _slate_id(obj)
    if "amount" not in obj:
        raise SlateError("the slate has no amount")
    amount = _u64(obj["amount"], "amount")
    if "fee" in obj:
        _u64(obj["fee"], "fee")
    raw_ttl = obj.get("ttl_cutoff_height")
    ttl = 0 if raw_ttl is None else _u64(raw_ttl, "TTL", unit="a block height")
    if not isinstance(obj.get("tx"), dict):
        raise SlateError("the slate has no transaction ('tx')")
    if not isinstance(obj.get("participant_data"), list):
        raise SlateError("the slate has no participant data")
    return SlateInfo(3, slate_id, amount, None, ttl or None)


def _slate_id(obj: dict[str, Any]) -> str:
    raw = obj.get("id")
    if raw is None:
        raise SlateError("the slate has no id")
    if not isinstance(raw, str) or _UUID_RE.fullmatch(raw) is None:
        raise SlateError("the slate id is not a UUID such as 0436430c-2b02-624c-2032-570501212b00")
    return raw.lower()


def _u64(value: object, what: str, *, unit: str = "a whole number of nanogrin") -> int:
    """A u64 as grin writes it: a decimal string (usual) or a JSON integer."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _DIGITS_RE.fullmatch(value):
        number = int(value)
    else:
        raise SlateError(f"the slate {what} must be {unit}, written as digits")
    if not 0 <= number < U64_LIMIT:
        raise SlateError(f"the slate {what} is out of range")
    return number
