"""What one access-log line costs, step by step, in-process: `python -m tests.load.log_cost`.

It times the old path through `logging` (LogRecord, JSON formatter, a locked write + flush per
line) piece by piece, then `service.access_log.AccessLog` (msgspec into a buffer, one write per
event-loop tick), writing to a pipe drained by `cat`, as a platform's log router reads stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import os
import subprocess
import time
from collections.abc import Callable

from service.ops.access_log import AccessLog
from service.ops.logs import JsonFormatter

FIELDS = {
    "method": "GET",
    "route": "/api/{user_id}/tasks",
    "status": 200,
    "duration_ms": 1.234,
    "request_id": "0123456789abcdef0123456789abcdef",
    "user": "89abcdef01234567",
}


def _drained_pipe() -> tuple[int, subprocess.Popen[bytes]]:
    """A pipe that another process reads, as a platform's log router reads stdout."""
    reader = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert reader.stdin is not None
    return reader.stdin.fileno(), reader


def _per_call(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def _logging_path(n: int, fd: int) -> dict[str, float]:
    logger = logging.getLogger("bench.access")
    logger.propagate = False
    record = logger.makeRecord(
        "bench.access", logging.INFO, __file__, 1, "request", (), None, extra={"fields": FIELDS}
    )
    formatter = JsonFormatter()
    stream = io.TextIOWrapper(os.fdopen(os.dup(fd), "wb", buffering=8192), line_buffering=False)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    line = formatter.format(record)
    costs = {
        "finding the caller (findCaller)": _per_call(logger.findCaller, n),
        "record creation (makeRecord)": _per_call(
            lambda: logger.makeRecord(
                "bench.access", logging.INFO, __file__, 1, "request", (), None, extra={"fields": FIELDS}
            ),
            n,
        ),
        "formatting (JsonFormatter)": _per_call(lambda: formatter.format(record), n),
        "write + flush syscall per line": _per_call(lambda: (stream.write(line + "\n"), stream.flush()), n),
    }
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    costs["whole logger.info(..., extra=...)"] = _per_call(
        lambda: logger.info("request", extra={"fields": FIELDS}), n
    )
    logger.removeHandler(handler)
    stream.close()
    return costs


async def _access_log_path(n: int, fd: int, per_tick: int) -> dict[str, float]:
    log = AccessLog(fd)
    method, route, status, _, request_id, user = FIELDS.values()

    async def run(write: bool) -> float:
        start = time.perf_counter()
        for i in range(n):
            if write:
                log.write(method, route, status, 0.001234, request_id, user)
            if i % per_tick == 0:
                await asyncio.sleep(0)  # one event-loop tick, as between requests: the flush runs
        log.flush()
        return (time.perf_counter() - start) / n * 1e6

    # The ticks cost the same with or without a log: count only the difference.
    ticks = await run(write=False)
    return {
        f"AccessLog.write, {per_tick} line(s) per tick (encode + share of one write)": await run(True) - ticks
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=200_000, help="lines per measurement")
    args = parser.parse_args()
    fd, reader = _drained_pipe()
    results = _logging_path(args.n, fd)
    for per_tick in (1, 8):
        results.update(asyncio.run(_access_log_path(args.n, fd, per_tick)))
    assert reader.stdin is not None
    reader.stdin.close()
    reader.wait()
    width = max(map(len, results))
    for name, micros in results.items():
        print(f"{name:<{width}}  {micros:6.2f} µs")


if __name__ == "__main__":
    main()
