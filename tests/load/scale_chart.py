"""Draw the scale benchmark's p50 and p99 latency per operation against table size, from its report.json files.

    python -m tests.load.scale_chart docs/scale.png scale-report/report.json [more/report.json ...]

Every report contributes its small and its large database; sizes measured more than once keep
the last. matplotlib is not a dependency of the service: `pip install matplotlib` first.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def points(reports: list[dict[str, Any]], stat: str) -> dict[str, dict[int, float]]:
    """{operation: {tasks in the table: `stat` ms}}."""
    by_op: dict[str, dict[int, float]] = {}
    for report in reports:
        for label in ("small", "large"):
            size = report[label]
            for op, t in size["timings"].items():
                by_op.setdefault(op, {})[size["tasks"]] = t[stat]
    return by_op


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        print("scale_chart: needs matplotlib (pip install matplotlib)", file=sys.stderr)
        return 1
    out, reports = Path(args[0]), [json.loads(Path(p).read_text()) for p in args[1:]]
    fig, axes = plt.subplots(1, 2, figsize=(14, 7), dpi=100, sharey=True)
    for ax, stat in zip(axes, ("p50_ms", "p99_ms"), strict=True):
        for op, series in points(reports, stat).items():
            sizes = sorted(series)
            ax.plot(sizes, [series[s] for s in sizes], marker="o", label=op)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_xlabel("tasks in the table")
        ax.set_title(f"{stat[:3]} latency, ms (one request at a time)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize="x-small", ncol=2)  # some 20 operations since contract v3
    fig.suptitle("Latency against table size (measured user: 100 tasks at 10k, 100,000 above)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    print(f"scale_chart: wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
