"""The customer's refund link: where Kassa asks a payer for the address to send a refund to.

The link carries the refund's id signed with the server key (itsdangerous, with its own salt) and
the time it was made; it works for `KASSA_REFUND_LINK_DAYS` days, also after a key rotation while
the retired key is in `KASSA_OLD_SECRET_KEYS`. Nothing is stored: a link made again is as good as
the first. Whoever has the link can only say where that one refund goes, once,
and only to an address its rail accepts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from kassa.clock import Clock

SALT = "kassa.refund-link"


class LinkInvalid(Exception):
    """Not a refund link of this server."""


class LinkExpired(Exception):
    """A refund link past its time."""


class RefundLinks:
    def __init__(
        self, secret: str, base_url: str, max_age: timedelta, clock: Clock, old_secrets: Sequence[str] = ()
    ) -> None:
        class ClockSigner(TimestampSigner):  # Kassa's clock, so tests can move time
            def get_timestamp(self) -> int:
                return int(clock.now().timestamp())

        # itsdangerous signs with the last key and verifies against each (hmac.compare_digest).
        keys = [*reversed(old_secrets), secret]
        self.serializer = URLSafeTimedSerializer(keys, salt=SALT, signer=ClockSigner)
        self.base_url = base_url
        self.max_age = max_age

    def url(self, refund_id: str) -> str:
        return f"{self.base_url}/refund/{self.serializer.dumps(refund_id)}"

    def read(self, token: str) -> str:
        """The refund id a link names; LinkExpired or LinkInvalid."""
        try:
            refund_id = self.serializer.loads(token, max_age=int(self.max_age.total_seconds()))
        except SignatureExpired:
            raise LinkExpired("this refund link has expired: ask the shop for a new one") from None
        except BadSignature:
            raise LinkInvalid("this is not a refund link of this server") from None
        if not isinstance(refund_id, str):
            raise LinkInvalid("this is not a refund link of this server")
        return refund_id
