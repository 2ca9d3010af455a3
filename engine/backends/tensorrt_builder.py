"""Building TensorRT engines (10.x and 11.x) from the exported ONNX.

* ``OnnxParser.parse_from_file`` (weights in the file or in external files beside it), after the
  float64 casts of the ONNX Runtime export are turned into identities (TensorRT has no FP64).
* One optimization profile from ``tensorrt.profile_seconds`` (min/opt/max seconds -> frames, and samples
  for the audio-rate inputs); its maximum covers the longest pipeline chunk plus its model context.
* A timing cache shared by every build for this GPU and TensorRT version; the workspace limit from
  ``tensorrt.workspace_mb``.
* 10.x: weak typing with ``BuilderFlag.FP16`` / ``INT8`` (INT8 from a Q/DQ model, or implicit with an
  ``IInt8EntropyCalibrator2`` reading the calibration set, with a calibration cache). 11.x: strongly
  typed only; FP16 comes from an FP16 ONNX and INT8 from the Q/DQ ONNX.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import onnx
import torch

from engine.backends.tensorrt_backend import make_logger, trt_major
from engine.calibration import examples
from engine.config import Config
from engine.errors import ArtifactError
from engine.export.graph import strip_double_casts
from engine.export.specs import ComponentSpec
from engine.pipeline import CONTEXT_FRAMES

MAX_BATCH = 4  # the pipeline converts one chunk at a time; a little room for batched callers


def profile_frames(cfg: Config, sample_rate: int, hop: int) -> tuple[int, int, int]:
    """(min, opt, max) frames of the shape profile; max covers the longest chunk and its context."""
    p = cfg.tensorrt.profile_seconds

    def frames(seconds: float) -> int:
        return max(2, int(round(seconds * sample_rate / hop)))

    lo, opt = frames(p.min), frames(p.opt)
    hi = frames(max(p.max, cfg.inference.chunk_seconds)) + 2 * CONTEXT_FRAMES
    if not lo <= opt <= hi:
        raise ArtifactError(f"tensorrt.profile_seconds must have min <= opt <= max, got {p.min}/{p.opt}/{p.max}")
    return lo, opt, hi


def profile_shapes(spec: ComponentSpec, frames: tuple[int, int, int], hop: int) -> dict[str, list[list[int]]]:
    """``{input: [min, opt, max]}`` shapes for one component."""
    lo, opt, hi = frames
    return {ts.name: [list(ts.shape(1, lo, hop)), list(ts.shape(1, opt, hop)), list(ts.shape(MAX_BATCH, hi, hop))]
            for ts in spec.inputs}


def make_calibrator(trt: ModuleType, data: dict[str, np.ndarray], spec: ComponentSpec, cache: Path,
                    device: torch.device):  # -> trt.IInt8EntropyCalibrator2
    """An entropy calibrator that feeds the calibration set's rows for ``spec`` one at a time (TensorRT 10)."""
    base = trt.IInt8EntropyCalibrator2

    class NpzCalibrator(base):  # type: ignore[misc,valid-type]
        def __init__(self) -> None:
            base.__init__(self)
            self.feeds = examples(data, spec)
            self.held: list[torch.Tensor] = []
            self.batches = 0

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list[str], p_str: object = None) -> list[int] | None:
            feed = next(self.feeds, None)
            if feed is None:
                return None
            self.held = [torch.from_numpy(feed[n]).to(device) for n in names]  # alive until the next batch
            self.batches += 1
            return [int(t.data_ptr()) for t in self.held]

        def read_calibration_cache(self) -> bytes | None:
            return cache.read_bytes() if cache.is_file() else None

        def write_calibration_cache(self, blob: object) -> None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
            tmp.write_bytes(bytes(blob))  # type: ignore[call-overload]
            os.replace(tmp, cache)

    return NpzCalibrator()


@dataclass
class EngineRequest:
    component: str
    onnx_path: Path
    engine_path: Path
    spec: ComponentSpec
    fp16_flag: bool = False                        # 10.x only
    int8_flag: bool = False                        # 10.x only: a Q/DQ model, or with a calibrator
    calibration: dict[str, np.ndarray] | None = None  # 10.x implicit INT8: rows to calibrate on
    calibration_cache: Path | None = None

    @property
    def strict_fp32(self) -> bool:
        return not (self.fp16_flag or self.int8_flag)


def build_engine(trt: ModuleType, req: EngineRequest, cfg: Config, frames: tuple[int, int, int], hop: int,
                 timing_cache: bytes, device: torch.device, say: Callable[[str], None]) -> tuple[bytes, dict]:
    """Build and write one engine; return the updated timing cache and what was done.

    Raises:
        ArtifactError: the parser or the builder failed (TensorRT's own lines are in the log).
    """
    major = trt_major(trt)
    c = req.component
    if major >= 11 and (req.fp16_flag or req.int8_flag or req.calibration is not None):
        raise ArtifactError(f"{c}: TensorRT {trt.__version__} has no precision flags or calibrator; FP16 and INT8 "
                            "come from an FP16 or Q/DQ ONNX")
    model = onnx.load(str(req.onnx_path))
    stripped = strip_double_casts(model)
    prepared = req.engine_path.with_name(f".{req.engine_path.stem}.trt.onnx")
    onnx.save(model, str(prepared))
    logger = make_logger(trt, say)
    builder = trt.Builder(logger)
    weak = major == 10 and not req.strict_fp32
    network = builder.create_network(0 if weak else 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    try:
        if not parser.parse_from_file(str(prepared)):
            errors = "; ".join(str(parser.get_error(i).desc()) for i in range(parser.num_errors))
            raise ArtifactError(f"{c}: TensorRT cannot parse {req.onnx_path.name}: {errors}")
    finally:
        prepared.unlink(missing_ok=True)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(cfg.tensorrt.workspace_mb) << 20)
    shapes = profile_shapes(req.spec, frames, hop)
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in shapes.items():
        profile.set_shape(name, tuple(lo), tuple(opt), tuple(hi))
    config.add_optimization_profile(profile)
    config.set_timing_cache(config.create_timing_cache(timing_cache), False)
    if req.strict_fp32:
        config.clear_flag(trt.BuilderFlag.TF32)  # FP32 means FP32: the flow and the phase path need it
    if req.fp16_flag:
        config.set_flag(trt.BuilderFlag.FP16)
    if req.int8_flag:
        config.set_flag(trt.BuilderFlag.INT8)
    calibrator = None
    if req.calibration is not None:
        if req.calibration_cache is None:
            raise ArtifactError(f"{c}: implicit INT8 needs a calibration cache path")
        calibrator = make_calibrator(trt, req.calibration, req.spec, req.calibration_cache, device)
        config.int8_calibrator = calibrator
        calib_profile = builder.create_optimization_profile()
        first = next(examples(req.calibration, req.spec))
        for name in shapes:
            shape = tuple(int(d) for d in first[name].shape)
            calib_profile.set_shape(name, shape, shape, shape)
        config.set_calibration_profile(calib_profile)
    say(f"{c}: building TensorRT {trt.__version__} engine ({'weak' if weak else 'strong'} typing"
        f"{', FP16 flag' if req.fp16_flag else ''}{', INT8 flag' if req.int8_flag else ''}"
        f"{', calibrator' if calibrator else ''})")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ArtifactError(f"{c}: TensorRT could not build the engine (see the TensorRT lines in the log)")
    req.engine_path.write_bytes(bytes(serialized))
    new_cache = bytes(config.get_timing_cache().serialize())
    info = {"profile_shapes": shapes, "double_casts_stripped": stripped,
            "calibration_batches": calibrator.batches if calibrator is not None else 0}
    return new_cache, info
