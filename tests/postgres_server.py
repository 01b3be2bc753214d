"""A real PostgreSQL server for the tests, started in a temporary folder on a random loopback port.

initdb and pg_ctl refuse to run as root, so as root (CI) they run as the `postgres` system user on a
folder that user owns. Password logins over TCP only (scram-sha-256), like a real deployment, so a
wrong password is refused as it would be there. Durability is switched off: the tests need speed, and
a restart test stops the server cleanly or with `immediate` (which still keeps committed data, since
the files are not lost, only not fsynced).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

PASSWORD = "ollacord-test-password"
SUPERUSER = "postgres"
RUN_AS = "postgres"  # the system user the binaries run as when the tests run as root


def find_bin_dir() -> Path | None:
    """Where initdb and pg_ctl are: OLLACORD_PG_BIN, Debian's /usr/lib/postgresql/<n>/bin, or the PATH."""
    candidates = [os.environ.get("OLLACORD_PG_BIN", "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    which = shutil.which("pg_ctl")
    if which:
        candidates.append(str(Path(which).parent))
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    return None


def missing_reason() -> str | None:
    """Why no server can be started here, or None."""
    if find_bin_dir() is None:
        return "PostgreSQL server binaries (initdb, pg_ctl) not found; install PostgreSQL 14+ or set OLLACORD_PG_BIN"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(RUN_AS)
        except KeyError:
            return f"running as root, and there is no {RUN_AS!r} system user to run initdb and pg_ctl as"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster: initdb once, then start, stop and restart it as the tests need."""

    def __init__(self, bin_dir: Path, root: Path, port: int | None = None, *, durable: bool = False) -> None:
        self.bin_dir = bin_dir
        # A server that a test stops with `immediate` must not lose commits: with synchronous_commit off, the
        # last few hundred milliseconds of them would still be in its memory only.
        self.durable = durable
        self.root = root
        self.data = root / "data"
        self.log = root / "server.log"
        self.port = port or free_port()

    # -- running the binaries

    def _as_owner(self, *command: str) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", RUN_AS, "--", *command]
        return list(command)

    def _run(self, *command: str, timeout: float = 60) -> None:
        result = subprocess.run(self._as_owner(*command), capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}\n{log}")

    @classmethod
    def create(cls, bin_dir: Path, parent: Path | None = None) -> PostgresServer:
        """A new cluster in a fresh temporary folder owned by the user the server runs as."""
        root = Path(tempfile.mkdtemp(prefix="ollacord-pg-", dir=parent))
        server = cls(bin_dir, root)
        if os.geteuid() == 0:
            owner = pwd.getpwnam(RUN_AS)
            os.chown(root, owner.pw_uid, owner.pw_gid)
        root.chmod(0o700)
        password_file = root / "password"
        password_file.write_text(PASSWORD + "\n")
        if os.geteuid() == 0:
            os.chown(password_file, owner.pw_uid, owner.pw_gid)
        server._run(
            str(bin_dir / "initdb"),
            "-D",
            str(server.data),
            "-U",
            SUPERUSER,
            f"--pwfile={password_file}",
            "--auth-host=scram-sha-256",
            "--auth-local=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        password_file.unlink()
        # Kept as initdb left it, so copies can start while this one runs.
        shutil.copytree(server.data, server.template, symlinks=True)
        return server

    @property
    def template(self) -> Path:
        return self.root / "template"

    def copy(self, *, durable: bool = True) -> PostgresServer:
        """A second, stopped cluster with the same users, as this one was right after initdb."""
        root = Path(tempfile.mkdtemp(prefix="ollacord-pg-", dir=self.root.parent))
        shutil.copytree(self.template, root / "data", symlinks=True)
        if os.geteuid() == 0:
            owner = pwd.getpwnam(RUN_AS)
            for path in [root, *root.rglob("*")]:
                os.chown(path, owner.pw_uid, owner.pw_gid, follow_symlinks=False)
        root.chmod(0o700)
        (root / "data").chmod(0o700)
        return PostgresServer(self.bin_dir, root, durable=durable)

    def start(self) -> None:
        """Start and wait until it accepts connections."""
        options = " ".join(
            [
                f"-c port={self.port}",
                "-c listen_addresses=127.0.0.1",
                "-c unix_socket_directories=''",
                "-c fsync=off",
                f"-c synchronous_commit={'on' if self.durable else 'off'}",
                "-c full_page_writes=off",
                "-c max_connections=300",
                "-c shared_buffers=32MB",
            ]
        )
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop: `fast` ends sessions cleanly, `immediate` like a crash (recovery at the next start)."""
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def remove(self) -> None:
        if self.running():
            with contextlib.suppress(RuntimeError):
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    # -- addresses

    def url(self, database: str = "postgres", *, password: str = PASSWORD, user: str = SUPERUSER) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run `sql` with psql over TCP; its output (tuples only)."""
        env = {**os.environ, "PGPASSWORD": PASSWORD}
        result = subprocess.run(
            [
                str(self.bin_dir / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                SUPERUSER,
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-Atc",
                sql,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql {sql!r} failed: {result.stderr}")
        return result.stdout

    def new_database(self) -> str:
        """A fresh, empty database; returns its name."""
        name = f"t_{uuid.uuid4().hex[:12]}_{secrets.randbelow(1000)}"
        self.psql(f"CREATE DATABASE {name}")
        return name

    def drop_database(self, name: str) -> None:
        self.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
