"""The README's commands work as written, and the docs stand on their own in a clone.

Shell blocks are marked for this test by an HTML comment right above them:
`<!-- test: run -->` runs the block (in one shell, in order, against a freshly started local
service) and compares its output with the `text` block right below it; `run if METHOD PATH` does
so only when the live service has that operation; `help` runs the command with `--help`; `ci` must
be what `.ci/run` runs; `serve` is the first command: the install plus `python -m service`.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from service.web.errors import error_codes
from tests.support.servers import start_service

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = [README, ROOT / "docs" / "API.md"]
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


def _blocks(kind: str) -> list[Block]:
    found = []
    for m in _BLOCK.finditer(README.read_text("utf-8")):
        if m["kind"] == kind:
            needs = (m["method"].lower(), m["path"]) if m["method"] else None
            found.append(Block(m["kind"], m["code"], m["output"], needs))
    return found


def _venv_python() -> Path:
    """The README says `.venv/bin/python`: run it only when that is the interpreter under test."""
    python = ROOT / ".venv" / "bin" / "python"
    if not python.exists() or Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        pytest.skip("the README's commands use ./.venv, which is not the environment running the tests")
    return python


def test_every_marker_is_understood() -> None:
    markers = re.findall(r"<!-- test: [^>]*-->", README.read_text("utf-8"))
    parsed = sum(len(_blocks(kind)) for kind in ("run", "help", "ci", "serve"))
    assert len(markers) == parsed
    assert len(_blocks("run")) >= 4 and all(b.output is not None for b in _blocks("run"))


def test_ci_runs_the_readme_second_command() -> None:
    (block,) = _blocks("ci")
    command = block.code.strip()
    ci_run = (ROOT / ".ci" / "run").read_text("utf-8")
    assert command in ci_run.splitlines()
    assert "-c requirements-dev.txt" in command


def test_the_first_command_installs_the_lock_and_serves_locally() -> None:
    (block,) = _blocks("serve")
    install, _, serve = block.code.strip().rpartition(" && ")
    assert serve == ".venv/bin/python -m service"
    assert install == "python3 -m venv .venv && .venv/bin/pip install -c requirements-dev.txt -e '.[local]'"


def test_help_commands_parse(tmp_path: Path) -> None:
    _venv_python()
    for block in _blocks("help"):
        result = subprocess.run(
            ["bash", "-c", block.code.strip() + " --help"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, block.code + result.stderr


def test_the_frontend_round_runs_as_written(tmp_path: Path) -> None:
    _venv_python()
    for tool in ("curl", "jq"):
        if shutil.which(tool) is None:
            pytest.skip(f"the README's round uses {tool}, which is not installed")
    # As the README says: no secret to type; the service and `token` share the development secret.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "DATA_DIR": str(tmp_path / "data")}
    proc, base = start_service(env)
    try:
        document = httpx.get(f"{base}/openapi.json").json()
        operations = {(m, p) for p, methods in document["paths"].items() for m in methods}
        blocks = [b for b in _blocks("run") if b.needs is None or b.needs in operations]
        script = ["set -euo pipefail"]
        for number, block in enumerate(blocks):
            script += [f"echo '@@ block {number}'", block.code]
        result = subprocess.run(
            ["bash", "-c", "\n".join(script)],
            cwd=ROOT,
            env={**env, "API": base},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    outputs = re.split(r"^@@ block \d+\n", result.stdout, flags=re.MULTILINE)[1:]
    assert len(outputs) == len(blocks)
    for block, output in zip(blocks, outputs, strict=True):
        assert output == block.output, f"{block.code}\nprinted:\n{output}\nthe README says:\n{block.output}"


OUTSIDE_PATHS = ("../" + "shared", "/" + "work/")


def test_docs_link_only_inside_the_repository() -> None:
    for doc in DOCS:
        text = doc.read_text("utf-8")
        # Folders of the machine the project was written on, which a clone does not have.
        assert not any(outside in text for outside in OUTSIDE_PATHS), doc
        for target in re.findall(r"\]\(([^)]+)\)", text):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, anchor = target.partition("#")
            linked = (doc.parent / path).resolve() if path else doc
            assert linked.is_file() and linked.is_relative_to(ROOT), f"{doc.name}: {target}"
            if anchor and linked.suffix == ".md":
                assert anchor in _anchors(linked), f"{doc.name}: {target}"


def _anchors(doc: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", doc.read_text("utf-8"), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_the_reference_lists_every_error_code() -> None:
    reference = (ROOT / "docs" / "API.md").read_text("utf-8")
    table = reference[reference.index("## Errors") : reference.index("## Limits")]
    listed = set(re.findall(r"^\| \d{3} \| `([A-Z_]+)` \|", table, flags=re.MULTILINE))
    assert listed == set(error_codes())
