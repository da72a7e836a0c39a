"""Kassa: a self-hosted payment gateway."""

__version__ = "0.1.0"
