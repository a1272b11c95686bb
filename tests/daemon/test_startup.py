"""Starting up: a taken port or a ledger in use by another syncd stops the start with one line and
exit code 3, before anything is recorded; `syncd health` answers for the container's probe."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from syncd.cli import main
from syncd.startup import EXIT_CANNOT_START, lock_ledger, sqlite_path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def listening() -> Iterator[int]:
    """A port some other program is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def write_config(tmp_path: Path, port: int, name: str = "syncd.yaml") -> Path:
    path = tmp_path / name
    path.write_text(
        textwrap.dedent(f"""\
            database_url: sqlite:///{tmp_path / "data" / "syncd.db"}
            server: {{host: 127.0.0.1, port: {port}}}
            erp: {{type: mock_erp, base_url: "http://127.0.0.1:{free_port()}", api_key: erp-test-key, retry_attempts: 1}}
            channels:
              - name: webstore
                type: woocommerce
                base_url: "http://127.0.0.1:{free_port()}"
                consumer_key: ck_test
                consumer_secret: cs_test
                retry_attempts: 1
            logging: {{format: json}}
            """),
        encoding="utf-8",
    )
    return path


def syncd(*args: str, cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "syncd.cli", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def wait_healthy(port: int, proc: subprocess.Popen[str]) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, f"syncd exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}"
        try:
            with opener.open(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        assert time.monotonic() < deadline, "syncd did not answer /health within 60 s"
        time.sleep(0.2)


def test_run_on_a_taken_port_exits_3_with_one_line_and_records_nothing(tmp_path: Path) -> None:
    """`syncd run` on a port already in use says which host:port and what to do, exits 3, no traceback,
    and records no run in the ledger."""
    with listening() as port:
        code, err = finish(syncd("run", "--config", str(write_config(tmp_path, port)), cwd=tmp_path))
    assert code == EXIT_CANNOT_START == 3
    lines = err.strip().splitlines()
    assert lines == [
        f"syncd: cannot listen on 127.0.0.1:{port}: the port is already in use (another syncd, or"
        " another program); stop it or set server.port to a free port"
    ]
    database = tmp_path / "data" / "syncd.db"
    if database.exists():
        with sqlite3.connect(database) as db:
            tables = {row[0] for row in db.execute("select name from sqlite_master where type='table'")}
            assert "run" not in tables or db.execute("select count(*) from run").fetchone()[0] == 0


def test_demo_on_a_taken_sandbox_port_names_the_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`syncd demo` with a sandbox's port taken exits 3 with one line naming 127.0.0.1:port and the key."""
    demo = (REPO / "config" / "demo.yaml").read_text(encoding="utf-8")
    with listening() as port:
        config = tmp_path / "demo.yaml"
        config.write_text(
            demo.replace("sqlite:///data/demo/syncd.db", f"sqlite:///{tmp_path / 'demo.db'}").replace(
                "http://127.0.0.1:8101", f"http://127.0.0.1:{port}"
            ),
            encoding="utf-8",
        )
        monkeypatch.chdir(tmp_path)
        assert main(["demo", "--config", str(config), "--duration", "0"]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"127.0.0.1:{port}" in err and "erp.base_url" in err and "already in use" in err


@pytest.mark.slow
def test_second_daemon_on_one_sqlite_file_refuses_to_start(tmp_path: Path) -> None:
    """While one `syncd run` holds a SQLite ledger, a second one (and a `reconcile --once`) exits 3
    naming the first one's pid and the file; once the first stops, the ledger is free again."""
    first_port = free_port()
    first = syncd("run", "--config", str(write_config(tmp_path, first_port)), cwd=tmp_path)
    try:
        wait_healthy(first_port, first)
        second_config = write_config(tmp_path, free_port(), name="second.yaml")
        for args in (["run"], ["reconcile", "--once"]):
            code, err = finish(syncd(*args, "--config", str(second_config), cwd=tmp_path))
            assert code == 3, err
            assert len(err.strip().splitlines()) == 1, err
            assert f"another syncd (pid {first.pid}) is already using the ledger" in err
            assert str(tmp_path / "data" / "syncd.db") in err
        first.send_signal(signal.SIGTERM)
        assert finish(first, timeout=30)[0] == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    # The lock goes with the process: a new daemon may take the ledger.
    assert lock_ledger(f"sqlite:///{tmp_path / 'data' / 'syncd.db'}") == tmp_path / "data" / "syncd.db.lock"


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///data/syncd.db", Path("data/syncd.db")),
        ("sqlite:////var/lib/syncd/syncd.db", Path("/var/lib/syncd/syncd.db")),
        ("sqlite:///:memory:", None),
        ("postgresql+psycopg://syncd@db:5432/syncd", None),
        ("postgresql://syncd@db/syncd", None),
    ],
)
def test_only_sqlite_files_are_locked(url: str, path: Path | None) -> None:
    """The ledger lock applies to SQLite files only; PostgreSQL replicas share their database."""
    assert sqlite_path(url) == path
    if path is None:
        assert lock_ledger(url) is None


def test_health_without_a_daemon_exits_1_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """`syncd health` exits 1 and says so when nothing answers /health."""
    port = free_port()
    assert main(["health", "--url", f"http://127.0.0.1:{port}", "--timeout", "2"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"syncd health: no answer from http://127.0.0.1:{port}/health")
    assert len(err.splitlines()) == 1


def test_sandbox_on_a_taken_port_exits_3_naming_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    """`syncd sandbox NAME --port P` with P taken says so in one line and exits 3."""
    with listening() as port:
        assert main(["sandbox", "woocommerce", "--port", str(port)]) == 3
    err = capsys.readouterr().err.strip()
    assert err == (
        f"syncd: cannot listen on 127.0.0.1:{port}: the port is already in use (another syncd, or"
        " another program); stop it or set --port to a free port"
    )
