"""Checks made before the daemon touches anything: its ports are free, and no other syncd process
uses the same SQLite ledger (an OS lock on ``<db>.lock``, held for the life of the process)."""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from pathlib import Path
from typing import IO

from syncd.errors import SyncdError

# Exit status of `syncd run`, `syncd demo` and `syncd reconcile` when they cannot start.
EXIT_CANNOT_START = 3

_held: list[IO[str]] = []  # open lock files: closing one would release its lock


class StartupError(SyncdError):
    """syncd cannot start here and now (a port is taken, the ledger is in use); exit 3."""


def ensure_port_free(host: str, port: int, setting: str = "server.port") -> None:
    """Raise StartupError, naming ``host:port`` and what to do, unless a server could listen there."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # As uvicorn does: a port left in TIME_WAIT by a stopped daemon is free to use.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise StartupError(_bind_problem(host, port, setting, exc)) from exc


def _bind_problem(host: str, port: int, setting: str, exc: OSError) -> str:
    where = f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"cannot listen on {where}: the port is already in use (another syncd, or another"
            f" program); stop it or set {setting} to a free port"
        )
    if exc.errno == errno.EACCES:
        return f"cannot listen on {where}: permission denied (ports below 1024 need privileges); set {setting}"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {where}: {host} is not an address of this machine; set server.host"
    return f"cannot listen on {where}: {exc.strerror or exc}"


def sqlite_path(database_url: str) -> Path | None:
    """The file of a ``sqlite:///`` URL (None for PostgreSQL or an in-memory database)."""
    if not database_url.startswith("sqlite:///"):
        return None
    path = database_url.removeprefix("sqlite:///").split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path)


def lock_ledger(database_url: str) -> Path | None:
    """Take the ledger's lock for this process's life; StartupError if another process holds it.

    PostgreSQL needs no such lock: replicas share it on purpose and a lease picks the active one.
    Returns the lock file's path, or None when there is nothing to lock.
    """
    database = sqlite_path(database_url)
    if database is None:
        return None
    lock_path = database.with_name(database.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle = lock_path.open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        handle.seek(0)
        holder = handle.read().strip()
        handle.close()
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise StartupError(f"cannot lock {lock_path}: {exc.strerror or exc}") from exc
        who = f"another syncd (pid {holder})" if holder.isdigit() else "another syncd"
        raise StartupError(
            f"{who} is already using the ledger {database} (lock {lock_path}); one SQLite ledger"
            " serves one daemon: stop the other one, or give this one its own database_url"
            " (several replicas share a PostgreSQL database instead)"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    _held.append(handle)
    return lock_path
