"""Every command line the README shows is accepted as written: composed by Hydra and validated."""

from __future__ import annotations

import re
import shlex

import pytest
from hydra import compose, initialize_config_dir

from wsl import CHECKOUT, CONF_DIR
from wsl.config_schema import validate_config

README = (CHECKOUT / "README.md").read_text(encoding="utf-8") if CHECKOUT else ""


def readme_commands() -> list[str]:
    """``python -m wsl.run ...`` / ``wsl ...`` / ``torchrun ... -m wsl.run ...`` in code blocks and inline
    code, without placeholders (``<name>``, ``[overrides]``, ``...``)."""
    blocks, prose, block = [], [], None
    # fenced blocks of any language, each opening fence paired with its closing one
    for line in README.splitlines():
        if line.lstrip().startswith("```"):
            if block is None:
                block = []
            else:
                blocks.append("\n".join(block))
                block = None
        elif block is None:
            prose.append(line)
        else:
            block.append(line)
    spans = blocks + re.findall(r"`([^`\n]+)`", "\n".join(prose))
    found = []
    for span in spans:
        for line in span.splitlines():
            line = line.split("#", 1)[0].strip()
            if re.match(r"^(python -m wsl\.run|wsl |torchrun .*-m wsl\.run)", line) and not re.search(
                r"<|\[overrides\]|\.\.\.|--help", line
            ):
                found.append(line)
    return sorted(set(found))


def overrides(command: str) -> list[str]:
    """The Hydra overrides of a command; a multirun sweep (``-m a=x,y``) is checked at its first value."""
    args = shlex.split(command)
    args = args[args.index("wsl.run") + 1 :] if "wsl.run" in args else args[1:]
    out = []
    for a in args:
        if a in ("-m", "--multirun"):
            continue
        key, _, value = a.partition("=")
        if "," in value and not value.startswith("["):
            value = value.split(",")[0]
        out.append(f"{key}={value}")
    return out


def test_the_readme_shows_commands():
    assert len(readme_commands()) >= 15


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_composes_and_validates(command):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides(command))
    validate_config(cfg)
