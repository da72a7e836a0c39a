"""Apply Alembic migrations programmatically (used by `kassa migrate`, `kassa serve` and tests)."""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def head_revisions() -> set[str]:
    """The revisions a fully migrated database is at (read from the migration scripts, once)."""
    from alembic.script import ScriptDirectory

    global _heads
    if _heads is None:
        _heads = set(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())
    return _heads


_heads: set[str] | None = None


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate to `revision`. Runs in its own thread: Alembic's env starts its own event loop."""
    error: list[BaseException] = []

    def run() -> None:
        try:
            command.upgrade(alembic_config(database_url), revision)
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=run, name="kassa-migrate")
    thread.start()
    thread.join()
    if error:
        raise error[0]
