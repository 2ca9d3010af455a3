"""``autovoice bench`` on a tiny run: the JSON follows its schema, the table and the plot are written, the
targets this machine cannot run are listed with a reason, and the queue throughput runs on real workers.

Nothing here asserts a speed (that is ``tests/performance``): only what the benchmark reports and that
its figures are consistent with each other.
"""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from audio_support import CliRun, SungClip

pytest_plugins = ["engines_fixtures"]
pytestmark = pytest.mark.timeout(1800)  # the session export and INT8 build can land in this module

REPEATS = 2
SCALING = (1.0, 3.0)


@pytest.fixture(scope="module")
def bench_engines(exported: Path, ort_int8: tuple[Path, dict, list[str]], tmp_path_factory: pytest.TempPathFactory
                  ) -> Path:
    """An engine folder holding the session's FP32 export and INT8 build (the benchmark reuses them)."""
    root = tmp_path_factory.mktemp("bench_engines")
    shutil.copytree(exported, root / "onnxruntime" / "fp32", ignore=shutil.ignore_patterns(".*"))
    shutil.copytree(ort_int8[0] / "onnxruntime" / "int8", root / "onnxruntime" / "int8")
    return root


@pytest.fixture(scope="module")
def tiny_run(run_cli: CliRun, sung_clip: SungClip, bench_engines: Path,
             tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, Any]:
    out = tmp_path_factory.mktemp("bench_out") / "speed.json"
    clip = sung_clip(seconds=2.0, sr=22050, seed=5)
    proc = run_cli(["bench", "--input", clip, "--voice", "testvoice", "--json", out, "--backends", "all",
                    "--repeats", str(REPEATS), "--e2e-repeats", "1", "--chunk-seconds", "1.5",
                    "--engine-dir", bench_engines, "--scaling", ",".join(f"{s:g}" for s in SCALING),
                    "--pool-workers", "", "--matmul-seconds", "0.2"], timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text()), out, proc


def test_json_follows_the_schema_with_every_target_measured_or_skipped_with_a_reason(
        tiny_run: tuple[dict[str, Any], Path, Any]) -> None:
    import jsonschema

    from benchmarks.artifacts import ALL_TARGETS
    from benchmarks.schema import SCHEMA

    data, _, _ = tiny_run
    jsonschema.validate(data, SCHEMA)
    measured = [r["label"] for r in data["results"]]
    skipped = {s["label"]: s["reason"] for s in data["skipped"]}
    assert measured[0] == "torch/fp32"  # the reference runs first
    assert {"onnxruntime/fp32", "onnxruntime/int8"} <= set(measured)
    assert sorted(measured + list(skipped)) == sorted(t.label for t in ALL_TARGETS)
    assert all(reason.strip() for reason in skipped.values())
    assert data["artifacts"]["built"] == []  # the fresh session artifacts were reused, not rebuilt


def test_component_timings_add_up_to_the_chunk_and_runs_are_counted(tiny_run: tuple[dict[str, Any], Path, Any]
                                                                    ) -> None:
    data, _, _ = tiny_run
    for r in data["results"]:
        comps = r["components"]
        assert all(comps[c]["n"] == REPEATS and comps[c]["min_ms"] <= comps[c]["median_ms"] <= comps[c]["max_ms"]
                   for c in comps)
        assert sum(c["min_ms"] for c in comps.values()) <= r["chunk"]["max_ms"] * 1.05
        assert r["chunk_seconds"] == pytest.approx(1.5, abs=0.011)
        assert r["threads"] == 1 and r["device"] == "cpu"
        e2e = r["end_to_end"]
        assert e2e["input_seconds"] == pytest.approx(2.0, abs=0.01)
        assert r["rtf"] == pytest.approx(e2e["seconds"][0] / e2e["input_seconds"], rel=1e-3)
        assert e2e["analysis_seconds"] > 0 and r["peak_mb"] >= r["rss_loaded_mb"] > 0
        assert len(e2e["minor_faults"]) == len(e2e["system_seconds"]) == len(e2e["seconds"])
        assert min(e2e["minor_faults"]) >= 0 and min(e2e["system_seconds"]) >= 0
        assert e2e["median_system_ms"] == pytest.approx(1000 * statistics.median(e2e["system_seconds"]), abs=0.01)
        assert e2e["median_minor_faults"] == statistics.median(e2e["minor_faults"])
        assert r["dominant_component"] in comps
    ort = next(r for r in data["results"] if r["label"] == "onnxruntime/int8")
    assert set(ort["component_precisions"].values()) <= {"onnxruntime/int8", "onnxruntime/fp32"}


def test_quality_deltas_are_zero_for_the_reference_and_small_for_onnx_fp32(
        tiny_run: tuple[dict[str, Any], Path, Any]) -> None:
    data, _, _ = tiny_run
    by = {r["label"]: r for r in data["results"]}
    assert by["torch/fp32"]["quality"]["mel_distance_db"] == 0.0
    assert by["torch/fp32"]["quality"]["f0_cents_mean"] in (0.0, None)
    fp32 = by["onnxruntime/fp32"]["quality"]
    assert fp32["mel_distance_db"] < 0.5, fp32  # the same function, computed by another runtime
    assert fp32["voicing_agreement"] > 0.95
    int8 = by["onnxruntime/int8"]["quality"]
    assert np.isfinite(int8["mel_distance_db"]) and int8["frames"] == fp32["frames"]
    assert by["torch/fp32"]["speedup"] == 1.0


def test_flops_and_achieved_rates_are_consistent(tiny_run: tuple[dict[str, Any], Path, Any]) -> None:
    data, _, _ = tiny_run
    peak = data["machine"]["matmul_peak"]
    assert peak["threads"] == 1 and len(peak["trials_gflops"]["torch"]) == 3
    assert peak["gflops"] == max(max(v) for v in peak["trials_gflops"].values()) > 0
    flops = data["hardware"]["flops"]["components"]
    assert all(f["flops_chunk"] > 0 for f in flops.values())
    seconds = data["hardware"]["flops"]["chunk_seconds"]
    for r in data["results"]:
        for c, a in r["achieved"].items():
            expected = flops[c]["flops_chunk"] / (r["components"][c]["median_ms"] / 1000) / 1e9
            assert a["gflops_per_second"] == pytest.approx(expected, rel=0.01)
            assert a["percent_of_peak"] == pytest.approx(100 * expected / peak["gflops"], rel=0.01)
    assert flops["flow_decoder"]["gflops_per_audio_second"] == pytest.approx(
        flops["flow_decoder"]["flops_chunk"] / seconds / 1e9, rel=1e-3)


def test_scaling_rows_cover_each_length(tiny_run: tuple[dict[str, Any], Path, Any]) -> None:
    data, _, _ = tiny_run
    (scaling,) = data["scaling"]
    assert scaling["label"] == "onnxruntime/fp32" and not scaling["failed"]
    assert [r["input_seconds"] for r in scaling["rows"]] == pytest.approx(list(SCALING), abs=0.01)
    assert all(r["rtf"] > 0 and r["peak_mb"] > 0 for r in scaling["rows"])
    assert scaling["rtf_spread"] >= 1.0
    assert data["pool"] is None  # --pool-workers "" turns the pool off


def test_markdown_table_and_png_plot_are_written(tiny_run: tuple[dict[str, Any], Path, Any]) -> None:
    import matplotlib.image

    data, out, proc = tiny_run
    md = out.with_suffix(".md").read_text()
    assert md.startswith("Machine: ") and "Command: `autovoice bench --input" in md
    for r in data["results"]:
        assert f"| {r['label']} |" in md
        e2e = r["end_to_end"]
        assert f"{r['label']} {e2e['median_system_ms']:.1f} ms and {e2e['median_minor_faults']:.0f}" in md
    for s in data["skipped"]:
        assert f"skipped {s['label']}: {s['reason']}" in md
    assert "| component | GFLOP per audio second |" in md and "| input s | wall s | RTF |" in md
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width = matplotlib.image.imread(png).shape[:2]
    assert width > 1000 and height > 300
    summary = proc.stdout.splitlines()
    assert any(line.startswith("onnxruntime/int8") and "RTF" in line for line in summary)


def test_bad_input_fails_with_one_line_and_writes_nothing(run_cli: CliRun, bad_input, tmp_path: Path) -> None:
    path, message = bad_input("not_audio", tmp_path / "in")
    out = tmp_path / "speed.json"
    proc = run_cli(["bench", "--input", path, "--voice", "testvoice", "--json", out, "--backends", "torch"])
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and message in proc.stderr.strip().splitlines()[-1]
    assert not out.exists()


def test_target_parsing_always_includes_the_reference() -> None:
    from benchmarks.artifacts import REFERENCE, parse_targets
    from engine.errors import ArtifactError

    assert parse_targets(None)[0] == REFERENCE and len(parse_targets(None)) == 7
    assert [t.label for t in parse_targets(["onnxruntime/int8"])] == ["torch/fp32", "onnxruntime/int8"]
    assert [t.label for t in parse_targets(["tensorrt"])] == ["torch/fp32", "tensorrt/fp32", "tensorrt/fp16",
                                                              "tensorrt/int8"]
    assert [t.label for t in parse_targets(["torch/fp32@cuda"])] == ["torch/fp32", "torch/fp32@cuda"]
    with pytest.raises(ArtifactError, match="unknown benchmark target 'onnx/fp8'"):
        parse_targets(["onnx/fp8"])


def test_tensorrt_is_skipped_with_its_reason_without_a_gpu(no_tensorrt: None, monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    from engines_fixtures import load_fake_tensorrt

    from benchmarks.artifacts import Target, unavailable_reason

    assert "not installed" in unavailable_reason(Target("tensorrt", "fp16", "cuda"))
    load_fake_tensorrt("10.13.0", monkeypatch)
    assert "executes on the host" in unavailable_reason(Target("tensorrt", "int8", "cuda"))
    monkeypatch.setenv("AUTOVOICE_BENCH_HOST_TENSORRT", "1")
    assert unavailable_reason(Target("tensorrt", "int8", "cuda")) is None


@pytest.mark.slow
def test_pool_throughput_with_a_real_redis_and_worker_process(cli_env: dict[str, str], sung_clip: SungClip,
                                                              voice_profile) -> None:
    from benchmarks.pool import measure_pool, unavailable_reason

    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    clip = sung_clip(seconds=1.0, seed=6)
    lines: list[str] = []
    res = measure_pool(clip, voice_profile, cli_env, worker_counts=[1], jobs=2, backend="torch", precision="fp32",
                       say=lines.append)
    (row,) = res["rows"]
    assert row["failed"] == [] and row["workers"] == 1 and row["jobs"] == 2
    assert row["audio_seconds_per_second"] == pytest.approx(2 * res["input_seconds"] / row["wall_seconds"], rel=0.01)
    assert 0 < row["mean_job_seconds"] <= row["wall_seconds"]
    assert any("audio s per s" in line for line in lines)


def test_peak_memory_is_the_measuring_process_own_not_its_parent() -> None:
    """``ru_maxrss`` survives ``exec``: a child started by a big parent would report the parent's size."""
    import subprocess
    import sys

    ballast = np.ones(300 * 2**20 // 8)  # 300 MB in this process
    proc = subprocess.run([sys.executable, "-c", "from benchmarks.child import peak_rss_mb; print(peak_rss_mb())"],
                          capture_output=True, text=True, timeout=60, check=True)
    assert float(proc.stdout) < 150, proc.stdout
    assert ballast.sum() > 0


def test_round_sizes_spread_the_chunk_runs_over_the_rounds() -> None:
    from benchmarks.child import round_sizes

    assert round_sizes(20, 9) == [3, 3, 2, 2, 2, 2, 2, 2, 2]
    assert round_sizes(2, 3) == [1, 1, 0]
    assert sum(round_sizes(7, 7)) == 7


def test_interleaved_rounds_measure_each_backend_and_report_one_that_fails(
        cli_env: dict[str, str], sung_clip: SungClip, bench_engines: Path, voice_profile, tmp_path: Path) -> None:
    """Two backend processes take turns; the one that cannot load is reported with its own one-line error,
    and the other's figures count every run of every round."""
    from benchmarks.interleave import measure_interleaved

    clip = sung_clip(seconds=2.0, seed=8)
    np.save(tmp_path / "voice.npy", np.asarray(voice_profile.embedding, dtype=np.float32))
    base = {"mode": "backend", "device": "cpu", "input": str(clip), "chunk_seconds": 1.5, "threads": 1,
            "voice_embedding": str(tmp_path / "voice.npy"), "voice_median_f0": None, "repeats": 3, "warmup": 1,
            "e2e_repeats": 2}
    children = {
        "onnxruntime/fp32": ({**base, "backend": "onnxruntime", "precision": "fp32", "engine_dir": str(bench_engines),
                              "output": str(tmp_path / "fp32.wav")}, cli_env),
        "onnxruntime/int8": ({**base, "backend": "onnxruntime", "precision": "int8",
                              "engine_dir": str(tmp_path / "no_engines"), "output": str(tmp_path / "int8.wav")},
                             cli_env),
    }
    lines: list[str] = []
    results, failed = measure_interleaved(children, tmp_path, repeats=3, rounds=2, timeout=300, say=lines.append)
    assert list(results) == ["onnxruntime/fp32"] and list(failed) == ["onnxruntime/int8"]
    reason = failed["onnxruntime/int8"]
    assert "no ONNX Runtime int8 model" in reason and "\n" not in reason, reason
    r = results["onnxruntime/fp32"]
    assert r["chunk"]["n"] == 3 and r["f0_extraction"]["n"] == 3
    assert all(c["n"] == 3 for c in r["components"].values())
    assert len(r["end_to_end"]["seconds"]) == 2 and len(r["end_to_end"]["seconds_no_f0"]) == 2
    assert (tmp_path / "fp32.wav").is_file() and not list(tmp_path.glob("*.scratch.wav"))
    assert sum("round" in line and "done" in line for line in lines) == 2
