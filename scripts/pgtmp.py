"""A private PostgreSQL in a temporary directory on loopback, for tests and benchmarks.

    python -m scripts.pgtmp run -- CMD ARGS...   # from the repository root: start, run CMD with
                                                 # KASSA_TEST_POSTGRES_URL set, stop

As a library: `with TempPostgres() as pg: pg.url` (an asyncpg SQLAlchemy URL).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import TracebackType

from scripts.procs import free_port

SEARCH = ["/usr/local/bin", *sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)]


def _binary(name: str) -> str:
    for folder in SEARCH:
        candidate = Path(folder) / name
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise SystemExit(f"{name} not found: install PostgreSQL (apt-get install -y postgresql)")


class TempPostgres:
    def __init__(self, database: str = "kassa") -> None:
        self.database = database
        self.dir = Path(tempfile.mkdtemp(prefix="kassa-pg-"))
        self.port = free_port()
        self.user = "kassa"

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *args: str) -> None:
        kwargs = {}
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            kwargs = {"user": "postgres"}
        subprocess.run(args, check=True, capture_output=True, **kwargs)  # type: ignore[call-overload]

    def start(self) -> TempPostgres:
        data = self.dir / "data"
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        self._run(_binary("initdb"), "-D", str(data), "-U", self.user, "--auth=trust", "-E", "UTF8")
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            _binary("pg_ctl"), "-D", str(data), "-o", options, "-l", str(self.dir / "log"), "-w", "start"
        )
        self.create_database(self.database)
        return self

    def create_database(self, name: str) -> str:
        self._run(
            _binary("psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            self.user,
            "-d",
            "postgres",
            "-c",
            f"CREATE DATABASE {name}",
        )
        return f"postgresql+asyncpg://{self.user}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        data = self.dir / "data"
        if data.exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                self._run(_binary("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> TempPostgres:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]
    ) -> None:
        self.stop()


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[0] != "run" or argv[1] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    with TempPostgres() as pg:
        env = {**os.environ, "KASSA_TEST_POSTGRES_URL": pg.url}
        print(f"pgtmp: PostgreSQL on 127.0.0.1:{pg.port} ({pg.dir})", file=sys.stderr)
        return subprocess.call(argv[2:], env=env)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
