"""KnockturnAllee's merchant and payment protocol (docs/compat/knockturnallee.md)."""

from kassa.compat.knockturn.routes import router

__all__ = ["router"]
