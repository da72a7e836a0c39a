"""Re-sealing every stored secret with the current server key (`kassa secrets rotate`).

After the server key changes (the old one kept in `KASSA_OLD_SECRET_KEYS`), this walks each sealed
column in primary-key order, a batch per transaction with the rows locked, and writes back each value
not yet sealed with the current key. Values already sealed with it are left alone, so a second run
changes nothing; once a run reports nothing unreadable, the old keys can be dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Table, select, update

from kassa.crypto import SecretBox
from kassa.db.database import Database
from kassa.db.tables import merchants, payment_methods, users, webhook_endpoints

# Every column that holds a value sealed by SecretBox.
SEALED: tuple[tuple[Table, tuple[str, ...]], ...] = (
    (merchants, ("callback_secret",)),
    (payment_methods, ("secrets",)),
    (webhook_endpoints, ("secret", "previous_secret")),
    (users, ("totp_secret",)),
)


@dataclass
class RotationReport:
    resealed: dict[str, int] = field(default_factory=dict)  # "table.column" -> values re-sealed
    rows: int = 0  # rows written
    unreadable: list[str] = field(default_factory=list)  # "table.column pk=N": no key opens it

    @property
    def total(self) -> int:
        return sum(self.resealed.values())


async def reseal_all(db: Database, box: SecretBox, batch_size: int = 500) -> RotationReport:
    """Re-seal every sealed value with `box`'s current key; see the module's docstring."""
    report = RotationReport()
    for table, columns in SEALED:
        for column in columns:
            report.resealed[f"{table.name}.{column}"] = 0
        last = 0
        while True:
            async with db.transaction() as tx:
                query = (
                    select(table.c.pk, *(table.c[c] for c in columns))
                    .where(table.c.pk > last)
                    .order_by(table.c.pk)
                    .limit(batch_size)
                )
                if db.is_postgres:
                    query = query.with_for_update()
                rows = (await tx.conn.execute(query)).all()
                for row in rows:
                    values = {}
                    for column in columns:
                        sealed = row._mapping[column]
                        if sealed is None:
                            continue
                        try:
                            fresh = box.reseal(sealed)
                        except ValueError:
                            report.unreadable.append(f"{table.name}.{column} pk={row.pk}")
                            continue
                        if fresh is not None:
                            values[column] = fresh
                            report.resealed[f"{table.name}.{column}"] += 1
                    if values:
                        await tx.conn.execute(update(table).where(table.c.pk == row.pk).values(**values))
                        report.rows += 1
            if len(rows) < batch_size:
                break
            last = rows[-1].pk
    return report
