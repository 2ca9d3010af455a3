"""Peak memory does not grow with the input's length (``benchmarks/memory.py``, each length in its own process).

The README's figures are 1 vs 10 minutes; here 30 s vs 90 s (the same 3x ratio as 1 vs 3 minutes at half
the time). Both are longer than one F0-analysis block (30 s) and many conversion chunks, so everything a
longer file could accumulate is already in play.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_peak_memory_is_flat_in_input_length(cli_env: dict[str, str], untrained_checkpoint: Path,
                                              tmp_path: Path) -> None:
    out = tmp_path / "memory.json"
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "memory.py"), "--minutes", "0.5", "1.5",
         "--checkpoint", str(untrained_checkpoint), "--threads", "1", "--jobs", "2", "--json", str(out)],
        env=cli_env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    short, long = sorted(report["runs"], key=lambda r: r["minutes"])
    assert long["input_seconds"] == pytest.approx(3 * short["input_seconds"])
    assert long["chunks"] >= 3 * short["chunks"] - 1  # really three times the work
    assert short["growth_mb"] > 0
    assert report["ratio"] == pytest.approx(long["growth_mb"] / short["growth_mb"], rel=1e-2)
    assert report["ratio"] <= 1.2, report
