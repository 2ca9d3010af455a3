"""What a worker runs on: host name, GPU model and memory (or the CPU), TensorRT version, its build queue."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import asdict, dataclass

from workers import keys


@dataclass(frozen=True)
class HostInfo:
    host: str
    device: str          # "cuda" or "cpu"
    gpu: str             # GPU model name, or "cpu"
    gpu_index: str       # the physical GPU index (CUDA_VISIBLE_DEVICES), "" for CPU workers
    memory_mb: int       # GPU memory, or host memory for a CPU worker
    trt_version: str     # "none" where TensorRT is not installed
    cores: int

    @property
    def build_queue(self) -> str:
        return keys.build_queue(self.host, self.gpu)

    def as_dict(self) -> dict[str, str | int]:
        return asdict(self) | {"build_queue": self.build_queue}


def host_name() -> str:
    return os.environ.get("AUTOVOICE_HOSTNAME") or socket.gethostname()


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _host_memory_mb() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20)
    except (ValueError, OSError):
        return 0


def tensorrt_version() -> str:
    try:
        import tensorrt  # type: ignore[import-not-found]
    except ImportError:
        return "none"
    return str(getattr(tensorrt, "__version__", "unknown"))


def detect(gpu_index: int | None) -> HostInfo:
    """Describe this worker's device; call after ``CUDA_VISIBLE_DEVICES`` is set (it imports torch)."""
    import torch

    if gpu_index is not None and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return HostInfo(host=host_name(), device="cuda", gpu=str(props.name), gpu_index=str(gpu_index),
                        memory_mb=int(props.total_memory // 2**20), trt_version=tensorrt_version(),
                        cores=cpu_count())
    return HostInfo(host=host_name(), device="cpu", gpu="cpu", gpu_index="", memory_mb=_host_memory_mb(),
                    trt_version="none", cores=cpu_count())


def visible_gpus() -> list[int]:
    """Physical indices of the GPUs this process may use, without importing torch (for ``autovoice up``).

    Honours ``CUDA_VISIBLE_DEVICES`` when it lists indices; otherwise asks ``nvidia-smi``.
    """
    mask = os.environ.get("CUDA_VISIBLE_DEVICES")
    if mask is not None:
        items = [m.strip() for m in mask.split(",") if m.strip()]
        if all(m.isdigit() for m in items):
            return [int(m) for m in items]
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    return [int(line) for line in out.split() if line.strip().isdigit()]
