"""The engines table over a real ONNX Runtime INT8 build: what the build job reports of each artifact (from
the manifests the build wrote), and how the studio shows when it was built, its parity and its freshness."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import redis

from engine.config import Config
from engine.export.manifest import read_manifest
from engine.models.inference import COMPONENT_IO
from studio import engines
from workers.hostinfo import HostInfo
from workers.jobs import built_artifacts
from workers.runtime import WorkerRuntime
from workers.settings import Timing

pytest_plugins = ["engines_fixtures"]

CPU_HOST = HostInfo(host="studio-host", device="cpu", gpu="cpu", gpu_index="", memory_mb=1024, trt_version="none",
                    cores=2)


@pytest.fixture(scope="module")
def serving_sha(eng_cfg: Config) -> str:
    """The model identity a worker serving ``eng_cfg`` publishes once its (torch) pipeline is loaded."""
    runtime = WorkerRuntime(redis.Redis(), eng_cfg, CPU_HOST, Timing.from_env(), worker_name="w1")
    assert runtime.checkpoint_sha256() == ""  # nothing loaded: nothing to judge freshness by
    runtime.converter("torch", "fp32")
    return runtime.checkpoint_sha256()


def heartbeat(sha: str, loaded: dict[str, dict[str, str]]) -> dict[str, object]:
    """The fields of a worker's heartbeat that the table reads."""
    return {"name": "w1", "checkpoint_sha256": sha, "engines": loaded}


def test_build_artifacts_carry_the_manifests_times_parity_and_freshness(ort_int8, serving_sha: str) -> None:
    engine_dir, summary, _ = ort_int8
    folder = engine_dir / "onnxruntime" / "int8"
    arts = built_artifacts(summary, "none")
    assert [a["component"] for a in arts] == list(COMPONENT_IO)
    for art in arts:
        m = read_manifest(folder, art["component"])
        assert (art["backend"], art["precision"], art["created"]) == ("onnxruntime", m.precision, m.created)
        assert art["fresh"] is True and art["stale_reason"] == "" and art["checkpoint_sha256"] == summary[
            "checkpoint_sha256"]
        worst = max(m.quality["parity"].values())
        assert 0 <= worst < 1e-4  # the export's measured ONNX Runtime vs PyTorch error
        text = engines.parity_text(art)
        q = m.quality["int8"]
        assert text == (f"rel. error vs PyTorch {worst:.2g}, int8.snr_db={q['snr_db']:.3g}, "
                        f"int8.f0_delta_cents={q['f0_delta_cents']:.3g}"), text
        assert engines.built_at(art, None) == m.created.replace("T", " ").rstrip("Z") + " UTC"
    # A worker serving the same checkpoint: fresh, and in use once its pipeline has the component loaded.
    assert serving_sha == summary["checkpoint_sha256"]
    serving = heartbeat(serving_sha, {"onnxruntime/int8": {c: f"onnxruntime/{a['precision']}"
                                                           for c, a in zip(COMPONENT_IO, arts, strict=True)}})
    assert {engines.freshness(a, [serving]) for a in arts} == {"fresh, in use"}
    assert {engines.freshness(a, [heartbeat(serving_sha, {})]) for a in arts} == {"fresh (built)"}
    # Workers serving another checkpoint would refuse these engines: the table says so.
    other = dict(serving, checkpoint_sha256="0" * 64)
    assert engines.freshness(arts[0], [other]) == (f"stale: made from checkpoint {summary['checkpoint_sha256'][:12]}, "
                                                   "the workers here serve 000000000000; rebuild")


def test_an_artifact_changed_after_its_build_is_reported_stale(ort_int8, tmp_path: Path) -> None:
    engine_dir, summary, _ = ort_int8
    copy = tmp_path / "int8"
    shutil.copytree(engine_dir / "onnxruntime" / "int8", copy)
    with (copy / "vocoder.onnx").open("ab") as f:
        f.write(b"\0")
    (copy / "pitch_encoder.json").unlink()
    arts = {a["component"]: a for a in built_artifacts(summary | {"folder": str(copy)}, "none")}
    assert arts["vocoder"]["fresh"] is False and "does not match its manifest" in arts["vocoder"]["stale_reason"]
    assert engines.freshness(arts["vocoder"], []).startswith("stale: vocoder (onnxruntime/")
    assert engines.freshness(arts["pitch_encoder"], []).startswith("stale: pitch_encoder: no manifest at ")
    assert engines.built_at(arts["pitch_encoder"], None) == ""
    assert all(arts[c]["fresh"] for c in COMPONENT_IO if c not in ("vocoder", "pitch_encoder"))
