"""LibrePay's invoice protocol (docs/compat/librepay.md)."""

from kassa.compat.librepay.routes import router

__all__ = ["router"]
