"""The layer benchmark (``benchmarks/layers.py``): both libraries run the same exported stack, and say so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import layers


def test_layer_benchmark_writes_json_and_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "layers.json"
    assert layers.main(["--families", "resconv,gated_wn,linear", "--frames", "40", "--width", "32",
                        "--threads", "1", "--rounds", "2", "--runs", "1", "--matmul-seconds", "0.05",
                        "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert [r["name"] for r in data["layers"]] == ["resconv", "gated_wn", "linear"]
    assert data["machine"]["matmul_peak"]["gflops"] > 0
    for row in data["layers"]:
        # The ONNX graph computes what the PyTorch module does: a different graph would time something else.
        assert row["max_rel_error"] < 1e-4, row
        assert row["torch_ms"] > 0 and row["onnxruntime_ms"] > 0
        # The ratio is of the unrounded medians; the milliseconds are rounded to 0.1 microsecond.
        assert row["ratio"] == pytest.approx(row["torch_ms"] / row["onnxruntime_ms"], rel=1e-2, abs=2e-3)
        assert row["gflop"] > 0
    # 5 layers of Linear 32 -> 64 -> 32 over 40 frames: 2 products of 2 x 40 x 32 x 64 FLOPs each.
    assert data["layers"][2]["gflop"] == pytest.approx(5 * 2 * 2 * 40 * 32 * 64 / 1e9, abs=1e-4)
    table = out.with_suffix(".md").read_text()
    assert "| gated_wn |" in table and "--families resconv,gated_wn,linear" in table
    assert "| resconv |" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--families", "resconv,attention"], "unknown layer families attention"),
    (["--families", ","], "unknown layer families (none given)"),
    (["--rounds", "0"], "--rounds must be at least 1, not 0"),
])
def test_layer_benchmark_refuses_bad_arguments(argv: list[str], message: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        layers.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
