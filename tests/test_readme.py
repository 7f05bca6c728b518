"""The README's scale and text-to-image sections name only commands and options that exist (each parses
with --help)."""

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sgbench.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"
SCALE = "## Reproducing the paper at scale (GPUs and your own weights)"
TEXT_TO_IMAGE = "## Text-to-image"


def section_commands(section: str = SCALE) -> list[list[str]]:
    """Every `sgbench ...` / `torchrun ... -m sgbench.cli ...` command of a section, as argument lists."""
    text = README.read_text()
    body = text[text.index(section) + len(section):]
    body = body[: body.index("\n## ")]
    lines = [line for block in re.findall(r"```bash\n(.*?)```", body, re.S) for line in block.splitlines()]
    lines += re.findall(r"`(sgbench [^`]+)`", body)  # inline commands in the notes
    commands = []
    for line in lines:
        words = shlex.split(line, comments=True)
        if words and words[0] == "sgbench":
            commands.append(words[1:])
        elif "sgbench.cli" in words:
            commands.append(words[words.index("sgbench.cli") + 1 :])
    return commands


def test_the_section_names_the_whole_path():
    names = {" ".join(c[:2]) if c[0] in ("data", "stats", "eval") else c[0] for c in section_commands()}
    assert {"data encode", "train", "import", "stats import-adm", "sample", "eval fid", "compare", "bench"} <= names


def test_the_text_to_image_section_names_its_path():
    names = {" ".join(c[:2]) for c in section_commands(TEXT_TO_IMAGE)}
    assert {"bench t2i", "export geneval", "ingest geneval", "eval hpsv3", "eval geneval"} <= names


@pytest.mark.parametrize("command", section_commands() + section_commands(TEXT_TO_IMAGE), ids=lambda c: " ".join(c[:2]))
def test_every_command_parses(command):
    result = CliRunner().invoke(app, [*command, "--help"])  # --help is eager: unknown options still fail
    assert result.exit_code == 0, f"sgbench {' '.join(command)}: {result.output}"
