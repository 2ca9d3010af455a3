"""Speed benchmark: ``python -m benchmarks.speed --input WAV --voice REF --json OUT.json [...]`` is
``autovoice bench`` with the same arguments (see :mod:`benchmarks.harness`). The README's figures come from::

    autovoice bench --input IN.wav --voice REF --json benchmarks/results/speed.json
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Run ``autovoice bench`` with ``argv`` (default: this script's arguments)."""
    from autovoice.cli import main as cli_main

    return cli_main(["bench", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
