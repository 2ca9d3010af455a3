"""ONNX Runtime backend: one session per component, built once and reused for every chunk.

Threads come from ``runtime.threads`` (0 = the cores this process may use). With ``runtime.spin`` (the
default) a session's threads spin between the ops of a run instead of sleeping and being woken for each
one, and stop spinning when the run returns, so an idle session, the F0 tracker and other processes lose
no time to them. On 2 cores that makes a whole conversion about 9% faster. Where processes share cores
beyond their thread counts, spinning threads take turns from each other (about 40% slower there): set
``runtime.spin: false``. Workers on one host split its cores between them, so they do not.

The CUDA execution provider is used when the device is CUDA and ONNX Runtime has it (``onnxruntime-gpu``);
otherwise the CPU one.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from engine.config import Config
from engine.errors import ArtifactError
from engine.export.manifest import Manifest, verify_artifact
from engine.models.inference import COMPONENT_IO

log = logging.getLogger(__name__)

ORT_BACKENDS = ("onnxruntime", "onnx")  # a plain `autovoice export` folder is a valid FP32 ORT folder


def thread_count(cfg: Config) -> int:
    return cfg.runtime.threads or len(os.sched_getaffinity(0))


def session_options(threads: int, spin: bool = True):  # -> ort.SessionOptions
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")  # one inter-op thread: none to spin
    opts.add_session_config_entry("session.force_spinning_stop", "1")  # idle between runs
    opts.log_severity_level = 3
    return opts


def providers_for(device: str) -> list:
    """CUDA EP (then CPU) for a CUDA device when ONNX Runtime has it; else CPU only."""
    import onnxruntime as ort

    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def cuda_available() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


class OrtRunner:
    """One component as an ONNX Runtime session (the :class:`~engine.backends.base.ComponentRunner` contract)."""

    backend = "onnxruntime"

    def __init__(self, path: str | Path, component: str, precision: str = "fp32", threads: int = 1,
                 device: str = "cpu", manifest: Manifest | None = None, spin: bool = True) -> None:
        import onnxruntime as ort

        self.component = component
        self.precision = precision
        self.path = Path(path)
        self.manifest = manifest
        self.inputs, outputs = COMPONENT_IO[component]
        self.output = outputs[0]
        try:
            self.session = ort.InferenceSession(str(self.path), session_options(threads, spin),
                                                providers=providers_for(device))
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types for bad models
            raise ArtifactError(f"{component}: ONNX Runtime cannot load {self.path}: {exc}") from exc
        names = [i.name for i in self.session.get_inputs()]
        if names != list(self.inputs):
            raise ArtifactError(f"{component}: {self.path.name} has inputs {names}, expected {list(self.inputs)}")
        self.providers = self.session.get_providers()

    def __call__(self, **inputs: np.ndarray) -> np.ndarray:
        feed = {n: np.ascontiguousarray(inputs[n], dtype=np.float32) for n in self.inputs}
        return np.asarray(self.session.run([self.output], feed)[0], dtype=np.float32)


def ort_folder(engine_dir: str | Path, precision: str) -> Path:
    """Where ``build-engines --backend onnxruntime --precision P`` puts its models."""
    return Path(engine_dir) / "onnxruntime" / precision


def candidate_folders(engine_dir: str | Path, precision: str) -> list[Path]:
    """Folders that may hold ORT models for ``precision``: the built one, and for FP32 a plain export."""
    folders = [ort_folder(engine_dir, precision)]
    if precision == "fp32":
        folders.append(Path(engine_dir))
    return folders


def load_ort_runner(cfg: Config, checkpoint_sha256: str, engine_dir: str | Path, component: str, precision: str,
                    device: str = "cpu") -> OrtRunner:
    """The fresh ORT model of ``component`` for ``precision``, or :class:`ArtifactError` saying why not."""
    if precision == "fp16" and not (device.startswith("cuda") and cuda_available()):
        raise ArtifactError("ONNX Runtime FP16 needs the CUDA execution provider (onnxruntime-gpu and a CUDA "
                            "device); on CPU use --precision fp32 or int8")
    reasons = []
    for folder in candidate_folders(engine_dir, precision):
        if not (folder / f"{component}.json").is_file():
            reasons.append(f"no {component}.json in {folder}")
            continue
        manifest, path = verify_artifact(folder, component, checkpoint_sha256, backends=ORT_BACKENDS,
                                         precision=precision)
        if manifest.backend == "onnx" and precision != "fp32":
            continue
        return OrtRunner(path, component, manifest.precision, thread_count(cfg), device, manifest,
                         spin=cfg.runtime.spin)
    raise ArtifactError(f"{component}: no ONNX Runtime {precision} model ({'; '.join(reasons)}); run "
                        f"`autovoice build-engines --backend onnxruntime --precision {precision}`")
