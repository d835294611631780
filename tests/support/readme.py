"""The README's shell blocks marked for testing, and the interpreter they run with.

A block is marked by an HTML comment right above it: `<!-- test: KIND -->`, or
`<!-- test: run if METHOD PATH -->`; the `text` block right below, if any, is its expected output.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
_BLOCK = re.compile(
    r"<!-- test: (?P<kind>[a-z]+)(?: if (?P<method>[A-Z]+) (?P<path>\S+))? -->\n"
    r"```bash\n(?P<code>.*?)```\n(?:\s*```text\n(?P<output>.*?)```\n)?",
    re.DOTALL,
)


@dataclass(frozen=True)
class Block:
    kind: str
    code: str
    output: str | None
    needs: tuple[str, str] | None


def marked_blocks(kind: str) -> list[Block]:
    """The README's blocks marked `<!-- test: KIND -->`, in order."""
    found = []
    for m in _BLOCK.finditer(README.read_text("utf-8")):
        if m["kind"] == kind:
            needs = (m["method"].lower(), m["path"]) if m["method"] else None
            found.append(Block(m["kind"], m["code"], m["output"], needs))
    return found


def venv_python() -> Path:
    """The README says `.venv/bin/python`: run it only when that is the interpreter under test."""
    python = ROOT / ".venv" / "bin" / "python"
    if not python.exists() or Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        pytest.skip("the README's commands use ./.venv, which is not the environment running the tests")
    return python
