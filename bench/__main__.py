"""`make bench`: run the benchmarks (or the ones named) and print each against its baseline."""

from __future__ import annotations

import sys

from bench import dashboard, evaluation, ingest

BENCHMARKS = {"evaluation": evaluation.run, "ingest": ingest.run, "dashboard": dashboard.run}


def main() -> None:
    names = sys.argv[1:] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise SystemExit(
            f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}"
        )
    for name in names:
        BENCHMARKS[name]()


if __name__ == "__main__":
    main()
