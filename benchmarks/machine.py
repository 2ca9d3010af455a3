"""What the benchmark ran on, how busy it was, and the machine's measured float32 matmul peak."""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

MATMUL_SIZE = 2048          # a 2048^3 matmul is 17 GFLOP: long enough to time, short enough to repeat
MATMUL_SECONDS = 2.0        # per trial
MATMUL_TRIALS = 3           # the best trial is the peak (the others lost time to other processes)
QUIET_LOAD = 1.5            # a load average below this (on a 2-core machine) counts as quiet


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The SIMD extensions that decide int8 and fp32 kernel speed (AVX2, AVX-512, VNNI, AMX)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "amx_bf16")
                    return [f for f in wanted if f in flags]
    except OSError:
        pass
    return []


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def memory_mb() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20)
    except (ValueError, OSError):
        return 0


def gpu_description() -> dict[str, Any] | None:
    """The first visible CUDA GPU (name, compute capability, memory), or None. Imports torch."""
    import torch

    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    return {"name": str(props.name), "compute_capability": f"{props.major}.{props.minor}",
            "memory_mb": int(props.total_memory // 2**20), "count": torch.cuda.device_count()}


def versions() -> dict[str, str]:
    """Versions of the runtimes that decide the figures (``none`` where one is not installed)."""
    out = {"python": platform.python_version()}
    for name in ("torch", "onnxruntime", "numpy", "tensorrt"):
        module = sys.modules.get(name)
        if module is None:
            try:
                module = __import__(name)
            except ImportError:
                out[name] = "none"
                continue
        out[name] = str(getattr(module, "__version__", "unknown"))
    return out


def describe(threads: int) -> dict[str, Any]:
    """The ``machine`` section of the benchmark JSON (without the matmul peak, measured separately)."""
    load = load_average()
    return {"host": platform.node(), "cpu": cpu_model(), "cpu_flags": cpu_flags(), "cores": cores(),
            "threads": threads, "memory_mb": memory_mb(), "os": f"{platform.system()} {platform.release()}",
            "gpu": gpu_description(), "versions": versions(), "load_average_start": load,
            "quiet": bool(load) and load[0] < QUIET_LOAD,
            "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _best_rate(step: Callable[[], Any], flop: float, seconds: float, trials: int) -> list[float]:
    step()  # warm-up: thread pool, kernel dispatch, page faults
    rates = []
    for _ in range(trials):
        n, t0 = 0, time.perf_counter()
        while True:
            step()
            n += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds:
                break
        rates.append(n * flop / elapsed / 1e9)
    return rates


def ort_matmul_rates(threads: int, size: int, seconds: float, trials: int) -> list[float]:
    """The same matmul through ONNX Runtime's own GEMM (MLAS), with the benchmark's session settings."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper

    spec = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [size, size]) for n in ("a", "b", "c")]
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "matmul", spec[:2], spec[2:])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    from engine.backends.onnxruntime_backend import session_options

    session = ort.InferenceSession(model.SerializeToString(), session_options(threads),
                                   providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {"a": rng.standard_normal((size, size), dtype=np.float32),
            "b": rng.standard_normal((size, size), dtype=np.float32)}
    return _best_rate(lambda: session.run(None, feed), 2.0 * size ** 3, seconds, trials)


def matmul_peak(threads: int, size: int = MATMUL_SIZE, seconds: float = MATMUL_SECONDS,
                trials: int = MATMUL_TRIALS, device: str = "cpu") -> dict[str, Any]:
    """The float32 matmul rate this process reaches with ``threads`` threads: the practical FLOP/s ceiling
    the components' achieved rates are compared with. On the CPU both GEMMs in play are timed, PyTorch's
    (MKL, which takes a slower path on AMD CPUs) and ONNX Runtime's (MLAS); the faster one is the peak.

    Returns:
        ``gflops`` (best trial of the faster library), ``trials_gflops`` per library, ``size``,
        ``threads``, ``device``.
    """
    import torch

    torch.set_num_threads(threads)
    dev = torch.device(device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(dev)
    b = torch.randn(size, size, generator=gen).to(dev)
    out = torch.empty(size, size, device=dev)
    flop = 2.0 * size ** 3

    def step() -> None:
        torch.matmul(a, b, out=out)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    with torch.inference_mode():
        trials_by = {"torch": _best_rate(step, flop, seconds, trials)}
    if dev.type == "cpu":
        try:
            trials_by["onnxruntime"] = ort_matmul_rates(threads, size, seconds, trials)
        except ImportError:
            pass
    best = max(trials_by, key=lambda k: max(trials_by[k]))
    return {"gflops": round(max(trials_by[best]), 2), "library": best,
            "trials_gflops": {k: [round(r, 2) for r in v] for k, v in trials_by.items()}, "size": size,
            "threads": threads, "device": device, "dtype": "float32"}
