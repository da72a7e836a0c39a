"""GNU Taler's long-polled order status, `/public/poll-payment` (docs/compat/taler.md)."""

from kassa.compat.taler.routes import router

__all__ = ["router"]
