"""The README holds: its commands run, its configs and YAML examples validate, its sample output is
what syncd prints, and its events example works against the demo config."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from syncd.cli import main
from syncd.config import parse_config
from syncd.errors import ConfigError
from syncd.startup import StartupError, ensure_port_free, lock_ledger
from tests.docs.support import README, REPO, argv_of, as_config, code_blocks, dummy_env, shell_commands

BLOCKS = code_blocks(README)
# Commands the test cannot run offline or without side effects, by program: each is still listed
# so that a new kind of command in the README has to be looked at.
NOT_RUN = {"docker", "curl", "export", "python3", ".venv/bin/pip"}


def _syncd_commands() -> list[tuple[str, list[str]]]:
    found = []
    for block in BLOCKS:
        if block.lang != "sh":
            continue
        for command in shell_commands(block):
            words = argv_of(command)
            if words and words[0] in ("syncd", ".venv/bin/syncd"):
                found.append((f"{block.where()}: {command}", words[1:]))
    return found


def _help_of(words: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as caught:
        main([*words, "--help"])
    assert caught.value.code == 0
    return capsys.readouterr().out


def _subcommands(capsys: pytest.CaptureFixture[str]) -> set[str]:
    """The commands `syncd --help` lists in its usage line."""
    match = re.search(r"\{([a-z,-]+)\}", _help_of([], capsys))
    assert match, "syncd --help lists no commands"
    return set(match.group(1).split(","))


def test_readme_opens_with_what_syncd_does_and_the_two_commands() -> None:
    """The README starts by saying what syncd does, then `make run` and `make test`, both real targets."""
    text = README.read_text(encoding="utf-8")
    opening = text.split("```", 1)[0]
    assert "keeps a seller's stock in step across sales channels" in opening
    first = next(b for b in BLOCKS if b.lang == "sh")
    assert [argv_of(c) for c in shell_commands(first)] == [["make", "run"], ["make", "test"]]
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^run: .*\n\t\$\(BIN\)/syncd demo$", makefile, re.M)
    assert re.search(r"^test: .*\n\t\$\(BIN\)/pytest$", makefile, re.M)


def test_readme_has_every_part_of_the_documentation() -> None:
    """Quick starts, quantities with a worked example, configuration, operations, metrics,
    troubleshooting and benchmarks are all there."""
    headings = re.findall(r"^##+ (.+)$", README.read_text(encoding="utf-8"), re.M)
    for heading in [
        "Quick start: the demo",
        "Quick start: a real shop",
        "How it works",
        "A worked example",
        "Commands",
        "Configuration",
        "HTTP endpoints",
        "Metrics and alerts",
        "Operations",
        "With PostgreSQL: `compose.yaml`",
        "Databases, upgrades and migrations",
        "Troubleshooting",
        "Benchmarks",
    ]:
        assert heading in headings, f"README has no section {heading!r}"


def test_every_syncd_command_in_the_readme_exists_with_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    """Each `syncd ...` line names a real subcommand, and every option it uses is one that subcommand has."""
    commands = _syncd_commands()
    assert len(commands) >= 8
    subcommands = _subcommands(capsys)
    for where, words in commands:
        if words == ["--help"]:
            assert "exit codes" in _help_of([], capsys)
            continue
        assert words[0] in subcommands, f"{where}: no subcommand {words[0]!r}"
        leading = words[: next((i for i, w in enumerate(words) if w.startswith("-")), len(words))]
        help_text = _help_of(leading, capsys)
        for option in (w.split("=", 1)[0] for w in words[1:] if w.startswith("-")):
            assert re.search(rf"(^|[\s,\[]){re.escape(option)}\b", help_text), f"{where}: {option} is not an option"


def test_every_subcommand_has_help_and_a_line_in_the_readme(capsys: pytest.CaptureFixture[str]) -> None:
    """`syncd COMMAND --help` works for every command, and each command is shown in the README."""
    documented = {words[0] for _, words in _syncd_commands() if words and not words[0].startswith("-")}
    subcommands = _subcommands(capsys)
    assert {"run", "check-config", "health", "demo"} <= subcommands
    for name in subcommands:
        assert f"usage: syncd {name}" in _help_of([name], capsys)
        assert name in documented, f"`syncd {name}` is not shown in the README's Commands section"


def test_readme_commands_that_run_offline_succeed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a copy of the config folder, the README's cp, check-config, help and docs commands run as shown
    (with the variables its configs name set), and every other command is a known kind."""
    shutil.copytree(REPO / "config", tmp_path / "config")
    monkeypatch.chdir(tmp_path)
    for name, value in dummy_env(*(p.read_text() for p in (REPO / "config").glob("*.yaml"))).items():
        monkeypatch.setenv(name, value)
    ran = 0
    for block in [b for b in BLOCKS if b.lang == "sh"]:
        for command in shell_commands(block):
            words, where = argv_of(command), f"{block.where()}: {command}"
            if not words or re.match(r"^[A-Za-z_][A-Za-z0-9_]*=\$\(", command):
                continue  # a variable an example sets (the events example runs in its own test)
            if words[0] in ("syncd", ".venv/bin/syncd") and words[1] == "check-config":
                assert main(words[1:]) == 0, f"{where}\n{capsys.readouterr()}"
                ran += 1
            elif words[0] in ("syncd", ".venv/bin/syncd") and words[1:] == ["--help"]:
                _help_of([], capsys)
                ran += 1
            elif words[0] == "cp":
                shutil.copy(words[1], words[2])
                ran += 1
            elif words[:3] == ["python", "-m", "syncd.docs"]:
                assert subprocess.run([sys.executable, "-m", "syncd.docs", "--check"], cwd=REPO).returncode == 0
                ran += 1
            elif words[0] == "make":
                target = words[1]
                assert re.search(rf"^{re.escape(target)}:", (REPO / "Makefile").read_text(), re.M), where
            elif words[0] in ("syncd", ".venv/bin/syncd"):
                continue  # needs a daemon, a network or a shop: its options are checked above
            else:
                assert words[0] in NOT_RUN, f"{where}: a command this test does not know how to check"
    assert ran >= 4


def test_every_yaml_example_in_the_readme_validates() -> None:
    """Config examples (whole files or fragments) pass the config models; compose and Prometheus
    examples are valid YAML of their kind."""
    checked = 0
    for block in [b for b in BLOCKS if b.lang == "yaml"]:
        data = yaml.safe_load(block.body)
        if block.tag == "compose":
            assert {"db", "syncd"} <= set(data["services"]), block.where()
        elif block.tag == "prometheus":
            assert all(rule["expr"] for group in data["groups"] for rule in group["rules"]), block.where()
        else:
            assert block.tag == "", f"{block.where()}: unknown kind of YAML example {block.tag!r}"
            parse_config(as_config(data), block.where(), env=dummy_env(block.body))
        checked += 1
    assert checked >= 6


def test_whole_config_examples_and_shipped_configs_pass_check_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`syncd check-config` accepts every complete config of the README and every file in config/."""
    files = sorted((REPO / "config").glob("*.yaml"))
    for block in [b for b in BLOCKS if b.lang == "yaml" and not b.tag]:
        data = yaml.safe_load(block.body)
        if isinstance(data, dict) and {"erp", "channels"} <= set(data):
            path = tmp_path / f"readme-{block.line}.yaml"
            path.write_text(block.body, encoding="utf-8")
            files.append(path)
    assert len(files) >= 3
    monkeypatch.chdir(tmp_path)
    for path in files:
        for name, value in dummy_env(path.read_text()).items():
            monkeypatch.setenv(name, value)
        assert main(["check-config", str(path)]) == 0, f"{path}\n{capsys.readouterr().err}"


def _text_block_containing(fragment: str) -> list[str]:
    block = next(b for b in BLOCKS if b.lang == "text" and fragment in b.body)
    return block.body.strip().splitlines()


def test_configuration_error_sample_is_what_syncd_prints(tmp_path: Path) -> None:
    """The README's sample of a bad config's errors is, line for line, what syncd reports for such a file."""
    sample = _text_block_containing("configuration error")
    assert sample[0] == "syncd: configuration error:"
    data = as_config({})
    data["channels"] = [{**data["channels"][0], "policy": {"buffer": -1}}]
    data["schedule"] = {"reconcile_interval": "soon"}
    data["stock"] = {"low_stock_threshold": "often"}
    with pytest.raises(ConfigError) as caught:
        parse_config(data, "config/syncd.yaml", env={})
    assert sorted(caught.value.problems) == sorted(sample[1:])


def test_start_up_samples_are_what_syncd_prints(tmp_path: Path) -> None:
    """The README's one-line start-up failures (port taken, ledger in use) match syncd's messages."""
    port_line, lock_line = _text_block_containing("cannot listen on")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StartupError) as caught:
            ensure_port_free("127.0.0.1", port)
    assert f"syncd: {caught.value}".replace(f":{port}:", ":8080:") == port_line
    database = tmp_path / "data" / "syncd.db"
    lock_ledger(f"sqlite:///{database}")
    with pytest.raises(StartupError) as caught:
        lock_ledger(f"sqlite:///{database}")
    message = f"syncd: {caught.value}".replace(str(tmp_path) + "/", "").replace(f"pid {os.getpid()}", "pid 4242")
    assert message == lock_line


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get_json(url: str, token: str | None = None) -> object:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with opener.open(urllib.request.Request(url, headers=headers), timeout=2) as response:
        return json.loads(response.read())


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("curl") is None or shutil.which("bash") is None, reason="needs curl and bash")
def test_events_example_works_against_the_demo_config(tmp_path: Path) -> None:
    """The README's events example, run as written against a daemon started from config/demo.yaml,
    adds an event that is active now (its dates come from the clock, its token from the demo config)."""
    example = next(b for b in BLOCKS if b.lang == "sh" and "/api/events" in b.body)
    port = _free_port()
    demo = (REPO / "config" / "demo.yaml").read_text(encoding="utf-8")
    demo = demo.replace("sqlite:///data/demo/syncd.db", f"sqlite:///{tmp_path / 'syncd.db'}")
    demo = demo.replace("port: 8080", f"port: {port}")
    for sandbox_port in ("8101", "8102", "8103", "8104"):  # no sandbox: nothing to write to
        demo = demo.replace(f"127.0.0.1:{sandbox_port}", f"127.0.0.1:{_free_port()}")
    config = tmp_path / "demo.yaml"
    config.write_text(demo, encoding="utf-8")
    # The demo's defaults apply (no SYNCD_* set), and loopback is reached directly, not by a proxy.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_") and "proxy" not in k.lower()}
    env["PYTHONPATH"] = str(REPO)
    log = tmp_path / "daemon.log"
    with log.open("wb") as out:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "syncd.cli", "run", "--config", str(config)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert daemon.poll() is None, log.read_text()
            try:
                _get_json(f"{base}/health")
                break
            except (urllib.error.URLError, OSError):
                assert time.monotonic() < deadline, "the demo config's daemon did not start"
                time.sleep(0.2)
        script = example.body.replace("http://127.0.0.1:8080", base)
        result = subprocess.run(["bash", "-e", "-c", script], env=env, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        events = _get_json(f"{base}/api/events", token="demo-api-token-0123456789")  # the demo's api.token
        assert isinstance(events, list)
        (event,) = [e for e in events if e["name"] == "friday-live"]
        assert event["active"] is True and event["channel"] == "tiktok" and event["reserve"] == 50
        assert datetime.fromisoformat(event["start"]) <= datetime.now(UTC) < datetime.fromisoformat(event["end"])
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=20)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


def test_worked_example_is_what_the_planner_computes() -> None:
    """The README's worked example (three stock levels, three channels) gives the planner's targets."""
    from syncd.core import ChannelPolicy, SkuStock, channel_targets

    text = README.read_text(encoding="utf-8")
    example = text[text.index("### A worked example") : text.index("### Flash sales")]
    policies = [
        ChannelPolicy("tiktok", priority=1, weight=3),
        ChannelPolicy("shopify", share=50, buffer=1, priority=1, weight=1),
        ChannelPolicy("webstore", cap=10, priority=2),
    ]
    steps = [
        (3, ["tiktok **15**", "= **6**", "at **10**"]),
        (11, ["tiktok **7**", "**2**", "webstore **7**"]),
        (14, ["tiktok **3**", "shopify **1**", "**0**"]),
    ]
    for reserved, stated in steps:
        targets = channel_targets(SkuStock("TEE-BLK-M", 20, reserved, 2, 5), policies)
        numbers = [int(re.sub(r"\D", "", s)) for s in stated]
        assert [targets["tiktok"], targets["shopify"], targets["webstore"]] == numbers
        for fragment in stated:
            assert fragment in example


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_readme_links_lead_somewhere() -> None:
    """Every #anchor link names a heading of the README, and every relative link a file of the repository."""
    text = README.read_text(encoding="utf-8")
    anchors = {_slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert links
    for link in links:
        if link.startswith("#"):
            assert link[1:] in anchors, f"no heading for {link}"
        elif not re.match(r"^[a-z]+://", link):
            assert (REPO / link.split("#")[0]).exists(), f"{link} does not exist"
