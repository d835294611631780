"""`python -m tests`: lint, format check, type check, then the whole suite; exits non-zero on any failure.

Arguments go to pytest: `python -m tests -m "not system"` leaves out tests/system/ for a quick loop.
"""

from __future__ import annotations

import subprocess
import sys


def main() -> int:
    steps = [
        [sys.executable, "-m", "ruff", "check", "."],
        [sys.executable, "-m", "ruff", "format", "--check", "."],
        # Strict on service/, as configured in pyproject.toml.
        [sys.executable, "-m", "mypy"],
        [sys.executable, "-m", "pytest", *sys.argv[1:]],
    ]
    for step in steps:
        print("+", " ".join(step[2:]), flush=True)
        code = subprocess.call(step)
        if code != 0:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
