"""Quality benchmark: ``python -m benchmarks.quality --corpus DIR [...]`` is ``autovoice eval --corpus DIR [...]``.

Converts held-out songs sung by training voices to seen and unseen target voices with the model, the
WORLD envelope-swap baseline and the oracle, measures every output with the same metrics
(:mod:`engine.evaluation`), prints the table and writes JSON and markdown. The README's table comes from::

    python -m benchmarks.quality --corpus data/corpus --json benchmarks/results/quality.json \\
        --markdown benchmarks/results/quality.md
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Run ``autovoice eval`` with ``argv`` (default: this script's arguments)."""
    from autovoice.cli import main as cli_main

    return cli_main(["eval", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
