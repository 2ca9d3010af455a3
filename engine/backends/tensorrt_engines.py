"""A folder of TensorRT engines for one precision: which ONNX and flags each component gets, the build,
the INT8 quality gate on what TensorRT actually computes, and the manifests.

Precision per version:
* fp16: 10.x sets ``BuilderFlag.FP16``; 11.x builds an FP16-converted ONNX. The flow decoder and the
  vocoder stay FP32 (the flow's inverse and the harmonic phase drift in FP16).
* int8 ``qdq``: the Q/DQ models judged with ONNX Runtime (see :mod:`engine.export.quality`); 10.x adds
  ``BuilderFlag.INT8``, 11.x builds them strongly typed.
* int8 ``calibrator`` (10.x only): implicit INT8 with an entropy calibrator for the content encoder,
  flow decoder and mel projection; the pitch encoder and vocoder stay FP32, because implicit calibration
  would quantize their F0 inputs.
Every INT8 engine is then judged again against ONNX Runtime FP32; a refused one is rebuilt FP32.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from engine.backends.onnxruntime_backend import OrtRunner, thread_count
from engine.backends.tensorrt_backend import (
    TrtRunner,
    buffer_device,
    device_identity,
    import_tensorrt,
    trt_major,
)
from engine.backends.tensorrt_builder import EngineRequest, build_engine, profile_frames
from engine.backends.torch_backend import FP32_COMPONENTS
from engine.checkpoint import LoadedCheckpoint, file_sha256
from engine.config import Config
from engine.errors import ArtifactError
from engine.export.graph import convert_fp16
from engine.export.manifest import Manifest, write_manifest
from engine.export.quality import gate
from engine.export.specs import component_specs
from engine.models.inference import COMPONENT_IO

IMPLICIT_INT8 = ("content_encoder", "flow_decoder", "mel_projection")


def _plan(trt_version_major: int, precision: str, int8_mode: str, sources: dict[str, tuple[Path, Manifest]],
          chosen: dict[str, Path], accepted: dict[str, bool], data: dict | None, calib_sha: str | None,
          staging: Path, work: Path, host_dir: Path, specs: dict) -> tuple[dict[str, EngineRequest], dict[str, str]]:
    """One :class:`EngineRequest` per component and the precision each engine will have."""
    major = trt_version_major
    requests, kinds = {}, {}
    for c in COMPONENT_IO:
        src = sources[c][0]
        req = EngineRequest(c, src, staging / f"{c}.engine", specs[c])
        kind = "fp32"
        if precision == "fp16" and c not in FP32_COMPONENTS:
            kind = "fp16"
            if major == 10:
                req.fp16_flag = True
            else:
                req.onnx_path = work / f"{c}.fp16.onnx"
                convert_fp16(src, req.onnx_path, c)
        elif precision == "int8" and int8_mode == "calibrator" and c in IMPLICIT_INT8:
            kind = "int8"
            req.int8_flag, req.calibration = True, data
            req.calibration_cache = host_dir / "calibration" / f"{(calib_sha or '')[:16]}-{c}.cache"
        elif precision == "int8" and int8_mode == "qdq" and accepted.get(c):
            kind = "int8"
            req.onnx_path, req.int8_flag = chosen[c], major == 10
        requests[c], kinds[c] = req, kind
    return requests, kinds


def build_tensorrt(cfg: Config, ckpt: LoadedCheckpoint, sources: dict[str, tuple[Path, Manifest]], precision: str,
                   int8_mode: str, data: dict | None, calib_sha: str | None, staging: Path, work: Path,
                   host_dir: Path, device: str, say: Callable[[str], None],
                   progress: Callable[[str, int, int], None] | None) -> dict[str, dict]:
    """Build every component's engine into ``staging`` with manifests; return per-component results."""
    from engine.build import derive_manifest, int8_candidates

    trt = import_tensorrt()
    major = trt_major(trt)
    if precision == "int8" and int8_mode == "calibrator" and major >= 11:
        raise ArtifactError(f"TensorRT {trt.__version__} has no INT8 calibrator (implicit quantization was removed "
                            "in 11); use --int8-mode qdq")
    gpu, cc = device_identity(trt, device)
    dev = buffer_device(trt, device)
    model, audio = ckpt.model.model_config, ckpt.model.audio_config
    specs = component_specs(model, audio)
    frames = profile_frames(cfg, audio.sample_rate, audio.hop_length)
    cache_file = host_dir / "timing.cache"
    timing = cache_file.read_bytes() if cache_file.is_file() else b""
    say(f"TensorRT {trt.__version__} on {gpu} (sm {cc}); profile {frames[0]}/{frames[1]}/{frames[2]} frames; "
        f"timing cache {'reused' if timing else 'new'}")
    chosen: dict[str, Path] = {c: sources[c][0] for c in COMPONENT_IO}
    verdicts: dict[str, dict] = {}
    if precision == "int8" and int8_mode == "qdq":
        chosen, verdicts = int8_candidates(cfg, ckpt, sources, data or {}, work, say, progress)
    accepted = {c: bool(v.get("accepted")) for c, v in verdicts.items()}
    requests, kinds = _plan(major, precision, int8_mode, sources, chosen, accepted, data, calib_sha, staging, work,
                            host_dir, specs)
    infos = {}
    for i, (c, req) in enumerate(requests.items()):
        timing, infos[c] = build_engine(trt, req, cfg, frames, audio.hop_length, timing, dev, say)
        if progress:
            progress("building", i + 1, len(requests))
    int8 = [c for c in COMPONENT_IO if kinds[c] == "int8"]
    trt_verdicts: dict[str, dict] = {}
    if int8 and data is not None:
        threads = thread_count(cfg)
        reference = {c: OrtRunner(sources[c][0], c, "fp32", threads) for c in COMPONENT_IO}
        candidates = {c: TrtRunner(requests[c].engine_path, c, "int8", device) for c in int8}
        say("judging the INT8 engines TensorRT built against ONNX Runtime FP32")
        for c, v in gate(cfg, model, audio, reference, candidates, data, specs, say).items():
            trt_verdicts[c] = v.to_dict()
            if not v.accepted:
                kinds[c] = "fp32"
                requests[c] = EngineRequest(c, sources[c][0], staging / f"{c}.engine", specs[c])
                timing, infos[c] = build_engine(trt, requests[c], cfg, frames, audio.hop_length, timing, dev, say)
    tmp = cache_file.with_name(f".{cache_file.name}.{os.getpid()}.tmp")
    tmp.write_bytes(timing)
    os.replace(tmp, cache_file)
    results = {}
    for c, req in requests.items():
        m = derive_manifest(sources[c][1], req.engine_path, backend="tensorrt", precision=kinds[c],
                            onnx_sha=file_sha256(req.onnx_path))
        m.tensorrt_version, m.gpu_name, m.compute_capability = str(trt.__version__), gpu, cc
        m.profile_shapes = infos[c]["profile_shapes"]
        m.calibration_sha256 = calib_sha
        if c in verdicts:
            m.quality["int8_onnxruntime"] = verdicts[c]
        if c in trt_verdicts:
            m.quality["int8_tensorrt"] = trt_verdicts[c]
        if infos[c]["calibration_batches"]:
            m.quality["calibration_batches"] = infos[c]["calibration_batches"]
        if kinds[c] != precision:
            reason = (trt_verdicts.get(c) or verdicts.get(c) or {}).get("reason") or (
                "the F0 path stays FP32" if precision == "int8" else "the flow's inverse and the phase need FP32")
            m.notes.append(f"{precision} not used for {c}: {reason}")
            say(f"{c}: engine kept FP32 ({reason})")
        write_manifest(staging, m)
        results[c] = {"precision": kinds[c], **({"int8": trt_verdicts[c]} if c in trt_verdicts else {})}
    return results
