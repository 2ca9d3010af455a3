"""TensorRT runtime (10.x and 11.x): one deserialized engine and execution context per component.

TensorRT is optional and imported only here, when a TensorRT runner is asked for. The runtime uses the
named-tensor API only: ``set_input_shape``, ``set_tensor_address`` and ``execute_async_v3`` on the
current torch CUDA stream, with device buffers held as torch CUDA tensors. Engines are specific to a GPU
model and TensorRT version, so they live in ``<engine_dir>/tensorrt/<gpu>-sm<cc>-trt<version>/<precision>``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from engine.errors import ArtifactError
from engine.export.manifest import Manifest, verify_artifact
from engine.models.inference import COMPONENT_IO

log = logging.getLogger(__name__)
SUPPORTED_MAJORS = (10, 11)


def import_tensorrt() -> ModuleType:
    """The ``tensorrt`` module, or :class:`ArtifactError` saying why it cannot be used."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise ArtifactError("TensorRT is not installed on this host (it needs a CUDA GPU and `pip install "
                            "tensorrt`); use --backend onnxruntime") from exc
    if trt_major(trt) not in SUPPORTED_MAJORS:
        raise ArtifactError(f"TensorRT {trt.__version__} is not supported: AutoVoice needs 10.x or 11.x")
    return trt


def trt_major(trt: ModuleType) -> int:
    return int(str(trt.__version__).split(".")[0])


def executes_on_host(trt: ModuleType) -> bool:
    """True for a TensorRT-API implementation that runs engines on host memory (the CI test double)."""
    return bool(getattr(trt, "EXECUTES_ON_HOST", False))


def buffer_device(trt: ModuleType, device: str = "cuda") -> torch.device:
    """Where the runner's input/output buffers live: the CUDA device, or host memory for a host executor."""
    if executes_on_host(trt):
        return torch.device("cpu")
    if not device.startswith("cuda"):
        raise ArtifactError(f"TensorRT runs on a CUDA device, and this process runs on {device}; use --device cuda")
    if not torch.cuda.is_available():
        raise ArtifactError("TensorRT needs a CUDA GPU and none is visible to this process")
    return torch.device(device)


def device_identity(trt: ModuleType, device: str = "cuda") -> tuple[str, str]:
    """``(gpu name, compute capability "major.minor")`` of the device engines are built for."""
    dev = buffer_device(trt, device)
    if dev.type == "cpu":
        return "host", "0.0"
    major, minor = torch.cuda.get_device_capability(dev)
    return torch.cuda.get_device_name(dev), f"{major}.{minor}"


def engine_key(trt: ModuleType, device: str = "cuda") -> str:
    """The per-host folder name: GPU model, compute capability and TensorRT version."""
    name, cc = device_identity(trt, device)
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "gpu"
    return f"{slug}-sm{cc.replace('.', '')}-trt{trt.__version__}"


def trt_folder(engine_dir: str | Path, key: str, precision: str) -> Path:
    return Path(engine_dir) / "tensorrt" / key / precision


def make_logger(trt: ModuleType, say=None):  # -> trt.ILogger
    """A TensorRT logger that forwards warnings and errors to ``say`` (the build log) or to logging."""

    class _Logger(trt.ILogger):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity, msg: str) -> None:  # noqa: ANN001 - trt.ILogger.Severity
            if int(severity) <= int(trt.ILogger.Severity.WARNING):
                (say or log.warning)(f"TensorRT: {msg}")

    return _Logger()


class TrtRunner:
    """One component as a TensorRT engine (the :class:`~engine.backends.base.ComponentRunner` contract)."""

    backend = "tensorrt"

    def __init__(self, engine_path: str | Path, component: str, precision: str = "fp32", device: str = "cuda",
                 manifest: Manifest | None = None) -> None:
        trt = import_tensorrt()
        self.trt = trt
        self.component = component
        self.precision = precision
        self.manifest = manifest
        self.device = buffer_device(trt, device)
        self.inputs, outputs = COMPONENT_IO[component]
        self.output = outputs[0]
        self._runtime = trt.Runtime(make_logger(trt))
        engine = self._runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
        if engine is None:
            raise ArtifactError(f"{component}: TensorRT {trt.__version__} cannot load {engine_path}; rebuild it")
        self.engine = engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        ins = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if sorted(ins) != sorted(self.inputs) or self.output not in names:
            raise ArtifactError(f"{component}: engine {engine_path} has tensors {names}, expected "
                                f"{list(self.inputs)} -> {self.output}")
        for n in names:
            if engine.get_tensor_dtype(n) != trt.DataType.FLOAT:
                raise ArtifactError(f"{component}: engine tensor {n} is {engine.get_tensor_dtype(n)}, expected FLOAT")
        self.context = engine.create_execution_context()

    def _stream(self) -> int:
        return int(torch.cuda.current_stream(self.device).cuda_stream) if self.device.type == "cuda" else 0

    def __call__(self, **inputs: np.ndarray) -> np.ndarray:
        buffers = {}
        for name in self.inputs:
            t = torch.from_numpy(np.ascontiguousarray(inputs[name], dtype=np.float32)).to(self.device)
            if not self.context.set_input_shape(name, tuple(t.shape)):
                lo, _, hi = self.engine.get_tensor_profile_shape(name, 0)
                raise ArtifactError(f"{self.component}: input {name} of shape {tuple(t.shape)} is outside the "
                                    f"engine's profile {tuple(lo)}..{tuple(hi)}; widen tensorrt.profile_seconds "
                                    "and rebuild")
            self.context.set_tensor_address(name, int(t.data_ptr()))
            buffers[name] = t
        shape = tuple(int(d) for d in self.context.get_tensor_shape(self.output))
        out = torch.empty(shape, dtype=torch.float32, device=self.device)
        self.context.set_tensor_address(self.output, int(out.data_ptr()))
        if not self.context.execute_async_v3(self._stream()):
            raise ArtifactError(f"{self.component}: TensorRT execution failed")
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()
        return out.cpu().numpy()


def load_trt_runner(checkpoint_sha256: str, engine_dir: str | Path, component: str, precision: str,
                    device: str = "cuda") -> TrtRunner:
    """The fresh engine of ``component`` for this GPU and TensorRT, or :class:`ArtifactError` saying why not."""
    trt = import_tensorrt()
    name, cc = device_identity(trt, device)
    folder = trt_folder(engine_dir, engine_key(trt, device), precision)
    if not (folder / f"{component}.json").is_file():
        raise ArtifactError(f"{component}: no TensorRT {precision} engine for {name} (sm {cc}, TensorRT "
                            f"{trt.__version__}) in {folder}; run `autovoice build-engines --backend tensorrt "
                            f"--precision {precision}` on this host")
    manifest, path = verify_artifact(folder, component, checkpoint_sha256, backends=("tensorrt",),
                                     precision=precision, tensorrt_version=str(trt.__version__), compute_capability=cc)
    return TrtRunner(path, component, manifest.precision, device, manifest)
