"""Reading the documentation the way a user does: its code blocks, their commands and configs."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
CONFIG_REFERENCE = REPO / "docs" / "configuration.md"

_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
_REQUIRED_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Block:
    source: str
    line: int
    lang: str
    tag: str  # the word after the language: "compose", "prometheus", or ""
    body: str

    def where(self) -> str:
        return f"{self.source}:{self.line}"


def code_blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    blocks = []
    for match in _FENCE.finditer(text):
        words = match.group("info").split()
        indent = len(match.group("indent"))
        body = "\n".join(line[indent:] for line in match.group("body").splitlines())
        line = text.count("\n", 0, match.start()) + 1
        blocks.append(
            Block(path.name, line, words[0] if words else "", words[1] if len(words) > 1 else "", body)
        )
    return blocks


def shell_commands(block: Block) -> list[str]:
    """The commands of a sh block: continuation lines joined, comments and blank lines dropped."""
    commands: list[str] = []
    pending = ""
    for raw in block.body.splitlines():
        line = raw.rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        # A comment after a command is set off by two spaces in these docs.
        line = re.split(r"\s{2,}#|^\s*#", line, maxsplit=1)[0].strip()
        if line:
            commands.append(line)
    return commands


def argv_of(command: str) -> list[str]:
    """The words of a command, without leading VAR=value assignments."""
    words = shlex.split(command)
    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
        words.pop(0)
    return words


def dummy_env(*texts: str) -> dict[str, str]:
    """A value for every ``${VAR}`` without a default in ``texts``, as an operator would set them."""
    env: dict[str, str] = {}
    for text in texts:
        for name in _REQUIRED_VAR.findall(text):
            env[name] = "https://hooks.example.com/T0/B0/x" if name.endswith("_URL") else f"{name.lower()}-0123456789"
    return env


def base_config() -> dict[str, Any]:
    """A valid config that fragments of the docs are merged into."""
    return {
        "erp": {"type": "mock_erp", "base_url": "http://127.0.0.1:8101", "api_key": "erp-key-0123"},
        "channels": [
            {
                "name": "webstore",
                "type": "woocommerce",
                "base_url": "https://shop.example.com",
                "consumer_key": "ck_x",
                "consumer_secret": "cs_x",
            },
            {
                "name": "tiktok",
                "type": "tiktok_shop",
                "app_key": "k",
                "app_secret": "s",
                "access_token": "a",
                "refresh_token": "r",
                "shop_cipher": "c",
            },
            {"name": "shopify", "type": "shopify", "shop_domain": "example.myshopify.com", "access_token": "t"},
        ],
    }


def merge(base: Any, fragment: Any) -> Any:
    """``fragment`` laid over ``base``: a mapping with its own ``type`` (a connector entry)
    replaces what was there, other mappings merge key by key, lists take the fragment's items."""
    if isinstance(fragment, dict) and isinstance(base, dict):
        if "type" in fragment:
            return fragment
        return {**base, **{k: merge(base.get(k), v) for k, v in fragment.items()}}
    if isinstance(fragment, list) and isinstance(base, list):
        return [merge(base[i], item) if i < len(base) else item for i, item in enumerate(fragment)]
    return fragment


def as_config(fragment: Any) -> dict[str, Any]:
    """A YAML example of the docs as a whole config: a bare list is a list of channels."""
    if isinstance(fragment, list):
        fragment = {"channels": fragment}
    assert isinstance(fragment, dict), f"a config example must be a mapping or a list, not {fragment!r}"
    return merge(base_config(), fragment)
