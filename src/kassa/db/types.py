"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, Numeric, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine


class Amount(TypeDecorator[int]):
    """A non-negative integer up to 2**256, exact on both databases.

    PostgreSQL keeps it as NUMERIC(78, 0). SQLite integers stop at 2**63, so there it is text
    left-padded with zeros to 78 digits: equality and ordering still work in SQL.
    """

    impl = String(78)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(78, 0, asdecimal=True))
        return dialect.type_descriptor(String(78))

    def process_bind_param(self, value: int | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "postgresql":
            return Decimal(value)
        return f"{value:078d}"

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        if value is None:
            return None
        return int(value)


class SignedTotal(TypeDecorator[int]):
    """A signed integer of any size, exact on both databases (ledger amounts and balances).

    PostgreSQL keeps it as NUMERIC (no precision limit: sums may pass 2**256), and adds in SQL.
    SQLite keeps decimal text, which its own `+` would add through a 64-bit integer or a float: the
    ledger adds kept balances with `kassa_add`, a Python function it defines on the connection.
    """

    impl = Numeric(asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(asdecimal=True))
        return dialect.type_descriptor(String(120))

    def process_bind_param(self, value: int | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("a ledger amount is an int")
        return Decimal(value) if dialect.name == "postgresql" else str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        if value is None:
            return None
        return int(value)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out (SQLite stores naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


PrimaryKey = BigInteger().with_variant(Integer(), "sqlite")
"""An auto-incrementing key: BIGINT on PostgreSQL, the rowid alias on SQLite."""
