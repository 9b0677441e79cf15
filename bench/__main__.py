"""`make bench`: run every benchmark and print its ratio to the in-run baseline."""

from __future__ import annotations

from bench import evaluation


def main() -> None:
    for benchmark in (evaluation,):
        benchmark.run()


if __name__ == "__main__":
    main()
