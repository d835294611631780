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
from pathlib import Path

import httpx
import pytest

from service.web.errors import error_codes
from tests.support.readme import README, ROOT, marked_blocks, venv_python
from tests.support.servers import start_service

DOCS = [README, ROOT / "docs" / "API.md"]


def test_every_marker_is_understood() -> None:
    markers = re.findall(r"<!-- test: [^>]*-->", README.read_text("utf-8"))
    parsed = sum(len(marked_blocks(kind)) for kind in ("run", "help", "ci", "serve"))
    assert len(markers) == parsed
    assert len(marked_blocks("run")) >= 4 and all(b.output is not None for b in marked_blocks("run"))


def test_ci_runs_the_readme_second_command() -> None:
    (block,) = marked_blocks("ci")
    command = block.code.strip()
    ci_run = (ROOT / ".ci" / "run").read_text("utf-8")
    assert command in ci_run.splitlines()
    assert "-c requirements-dev.txt" in command


def test_the_first_command_installs_the_lock_and_serves_locally() -> None:
    (block,) = marked_blocks("serve")
    install, _, serve = block.code.strip().rpartition(" && ")
    assert serve == ".venv/bin/python -m service"
    assert install == "python3 -m venv .venv && .venv/bin/pip install -c requirements-dev.txt -e '.[local]'"


def test_help_commands_parse(tmp_path: Path) -> None:
    venv_python()
    for block in marked_blocks("help"):
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
    venv_python()
    for tool in ("curl", "jq"):
        if shutil.which(tool) is None:
            pytest.skip(f"the README's round uses {tool}, which is not installed")
    # As the README says: no secret to type; the service and `token` share the development secret.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "DATA_DIR": str(tmp_path / "data")}
    proc, base = start_service(env)
    try:
        document = httpx.get(f"{base}/openapi.json").json()
        operations = {(m, p) for p, methods in document["paths"].items() for m in methods}
        blocks = [b for b in marked_blocks("run") if b.needs is None or b.needs in operations]
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
