"""The README's commands work as written: each `help` block parses its `--help`, and the `run` blocks,
in one shell and in order against a freshly started local service, print what the README shows.

The markers are described in tests/docs/test_readme.py."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.readme import ROOT, marked_blocks, venv_python
from tests.support.servers import start_service


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
