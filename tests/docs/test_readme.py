"""The README and docs/API.md agree with the code and stand on their own in a clone.

Shell blocks are marked for the tests by an HTML comment right above them:
`<!-- test: run -->` runs the block (in one shell, in order, against a freshly started local
service) and compares its output with the `text` block right below it; `run if METHOD PATH` does
so only when the live service has that operation; `help` runs the command with `--help`; `ci` must
be what `.ci/run` runs; `serve` is the first command: the install plus `python -m service`.
tests/system/test_readme_commands.py runs the `run` and `help` blocks.
"""

from __future__ import annotations

import re
from pathlib import Path

from service.web.errors import error_codes
from tests.support.readme import README, ROOT, marked_blocks

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
    assert (
        install == "python3 -m venv .venv && .venv/bin/pip install -q -c requirements-dev.txt -e '.[local]'"
    )


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


def _section(doc: Path, heading: str) -> str:
    """The text under `## heading`, up to the next heading of that level ('' when there is none)."""
    match = re.search(
        rf"^## {re.escape(heading)}[ \t]*\n(.*?)(?=^## |\Z)", doc.read_text("utf-8"), re.M | re.S
    )
    return match[1] if match else ""


def test_the_layout_names_every_folder_of_the_service() -> None:
    layout = _section(README, "Layout")
    assert layout, "the README has no ## Layout section"
    folders = sorted(init.parent.name for init in (ROOT / "service").glob("*/__init__.py"))
    assert folders
    missing = [f"service/{name}/" for name in folders if f"service/{name}/" not in layout]
    assert not missing, f"the README's Layout section does not name {', '.join(missing)}"
