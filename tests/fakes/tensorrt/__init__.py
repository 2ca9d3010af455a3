"""A stand-in ``tensorrt`` for CI machines without a GPU: the TensorRT 10.x / 11.x Python API surface that
AutoVoice uses, strict in the ways the real bindings are, executing engines with ONNX Runtime.

* The version comes from ``$FAKE_TENSORRT_VERSION`` at import ("10.13.0" by default; "11.x" gives the
  strongly-typed-only API). Tests reload the module to switch.
* Arguments are type-checked; unknown attributes cannot be set (as on pybind11 objects); APIs removed in
  the version raise ``AttributeError`` naming the release that removed them: the bindings API,
  ``max_workspace_size`` and ``execute_async_v2`` (10.0), and on 11.x the FP16/INT8 builder flags,
  ``int8_calibrator``, calibration profiles and ``IInt8EntropyCalibrator2``.
* The builder really parses the ONNX file, checks optimization profiles against the network's inputs,
  pulls batches through a calibrator's ``get_batch`` (reading host memory at the addresses it returns)
  and reads/writes calibration and timing caches.
* ``execute_async_v3`` runs the engine's ONNX with ONNX Runtime on the buffers at the addresses set with
  ``set_tensor_address``: host addresses (``EXECUTES_ON_HOST``), so callers use CPU tensors.
"""

from __future__ import annotations

import enum
import json
import os

import numpy as np
import onnx
from onnx import numpy_helper

__version__ = os.environ.get("FAKE_TENSORRT_VERSION", "10.13.0")
_MAJOR = int(__version__.split(".")[0])
EXECUTES_ON_HOST = True
_ENGINE_MAGIC = b"FAKE-TRT-ENGINE\n"
_CACHE_MAGIC = b"FAKE-TRT-TIMING\n"
_CALIB_MAGIC = b"FAKE-TRT-CALIB\n"
stats = {"calibration_batches": 0, "timing_cache_hits": 0, "builds": 0, "executions": 0}


def _check(value, types, what):
    types = types if isinstance(types, tuple) else (types,)
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise TypeError(f"{what}: incompatible function arguments ({type(value).__name__})")


class _Strict:
    """No new attributes; removed APIs name the release that removed them."""

    _removed: dict[str, str] = {}

    def __getattr__(self, name):
        if name in self._removed:
            raise AttributeError(f"{type(self).__name__}.{name} was removed in TensorRT {self._removed[name]}")
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __setattr__(self, name, value):
        if name in self._removed:
            raise AttributeError(f"{type(self).__name__}.{name} was removed in TensorRT {self._removed[name]}")
        if not name.startswith("_") and not hasattr(type(self), name):
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")
        object.__setattr__(self, name, value)


class ILogger:
    class Severity(enum.IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    def __init__(self):
        self._trt_initialized = True

    def log(self, severity, msg):
        raise NotImplementedError


class Logger(ILogger):
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = ILogger.Severity

    def __init__(self, min_severity=ILogger.Severity.WARNING):
        _check(min_severity, ILogger.Severity, "Logger(min_severity)")
        super().__init__()
        self.min_severity = min_severity
        self.messages = []

    def log(self, severity, msg):
        self.messages.append((severity, msg))


def _emit(logger, severity, msg):
    if not getattr(logger, "_trt_initialized", False):
        raise TypeError("ILogger subclass did not call ILogger.__init__")
    logger.log(severity, msg)


_FLAGS = ["TF32", "REFIT", "GPU_FALLBACK", "DISABLE_TIMING_CACHE", "SPARSE_WEIGHTS", "VERSION_COMPATIBLE"]
if _MAJOR == 10:
    _FLAGS += ["FP16", "BF16", "INT8", "FP8", "OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS",
               "DIRECT_IO"]
BuilderFlag = enum.IntEnum("BuilderFlag", _FLAGS, start=0)
NetworkDefinitionCreationFlag = enum.IntEnum(
    "NetworkDefinitionCreationFlag",
    {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1} if _MAJOR == 10 else {"STRONGLY_TYPED": 1})
MemoryPoolType = enum.IntEnum("MemoryPoolType", ["WORKSPACE", "DLA_MANAGED_SRAM", "DLA_LOCAL_DRAM",
                                                 "DLA_GLOBAL_DRAM", "TACTIC_DRAM", "TACTIC_SHARED_MEMORY"], start=0)
TensorIOMode = enum.IntEnum("TensorIOMode", ["NONE", "INPUT", "OUTPUT"], start=0)
DataType = enum.IntEnum("DataType", ["FLOAT", "HALF", "INT8", "INT32", "BOOL", "UINT8", "FP8", "BF16", "INT64"],
                        start=0)
_NP = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT8: np.int8, DataType.INT32: np.int32,
       DataType.BOOL: np.bool_, DataType.UINT8: np.uint8, DataType.INT64: np.int64}


def nptype(trt_type):
    _check(trt_type, DataType, "nptype")
    return _NP[trt_type]


class IHostMemory(bytes):
    @property
    def nbytes(self):
        return len(self)


def _dims(value, what):
    _check(value, (tuple, list), what)
    for d in value:
        _check(d, (int, np.integer), what)
    return tuple(int(d) for d in value)


class ITensor(_Strict):
    def __init__(self, name, shape, dtype):
        self._name, self._shape, self._dtype = name, shape, dtype

    name = property(lambda self: self._name)
    shape = property(lambda self: self._shape)
    dtype = property(lambda self: self._dtype)


class INetworkDefinition(_Strict):
    _removed = {"has_implicit_batch_dimension": "10.0"}

    def __init__(self, strongly_typed):
        self._strongly_typed, self._model, self._inputs, self._outputs = strongly_typed, None, [], []

    num_inputs = property(lambda self: len(self._inputs))
    num_outputs = property(lambda self: len(self._outputs))

    def get_input(self, index):
        _check(index, int, "get_input")
        return self._inputs[index]

    def get_output(self, index):
        _check(index, int, "get_output")
        return self._outputs[index]


class _ParserError:
    def __init__(self, desc):
        self._desc = desc

    def desc(self):
        return self._desc

    def code(self):
        return 1

    def node(self):
        return -1


class OnnxParser(_Strict):
    def __init__(self, network, logger):
        _check(network, INetworkDefinition, "OnnxParser(network)")
        _check(logger, ILogger, "OnnxParser(logger)")
        self._network, self._logger, self._errors = network, logger, []

    num_errors = property(lambda self: len(self._errors))

    def get_error(self, index):
        _check(index, int, "get_error")
        return self._errors[index]

    def clear_errors(self):
        self._errors.clear()

    def parse_from_file(self, model):
        _check(model, str, "parse_from_file(model)")
        try:
            proto = onnx.load(model)  # external weight files are read from beside the model
            onnx.checker.check_model(proto)
        except Exception as exc:  # noqa: BLE001
            self._errors.append(_ParserError(f"cannot read {model}: {exc}"))
            return False
        for node in proto.graph.node:
            to_double = any(a.name == "to" and a.i == onnx.TensorProto.DOUBLE for a in node.attribute)
            if node.op_type == "Cast" and to_double:
                self._errors.append(_ParserError(f"{node.name}: Cast to DOUBLE is not supported"))
                return False
            problem = _asymmetric_quantization(proto.graph, node)
            if problem:
                self._errors.append(_ParserError(problem))
                return False
        net = self._network
        net._model = proto
        elem = {onnx.TensorProto.FLOAT: DataType.FLOAT, onnx.TensorProto.FLOAT16: DataType.HALF}
        for src, dst in ((proto.graph.input, net._inputs), (proto.graph.output, net._outputs)):
            for vi in src:
                shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in vi.type.tensor_type.shape.dim)
                dst.append(ITensor(vi.name, shape, elem[vi.type.tensor_type.elem_type]))
        return True


def _asymmetric_quantization(graph, node) -> str | None:
    """The ONNX parser's Q/DQ rules: a DequantizeLinear reads an activation type (an int32 bias is refused:
    "only activation types allowed as input to this layer"), and quantization is symmetric int8 (an
    all-zero int8 zero point)."""
    if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
        return None
    init = {t.name: t for t in graph.initializer}
    x = init.get(node.input[0])
    if node.op_type == "DequantizeLinear" and x is not None and x.data_type == onnx.TensorProto.INT32:
        return f"Invalid Node - {node.name}: only activation types allowed as input to this layer."
    if len(node.input) < 3 or not node.input[2]:
        return None
    zp = init.get(node.input[2])
    if zp is None or zp.data_type != onnx.TensorProto.INT8 or np.any(numpy_helper.to_array(zp) != 0):
        return (f"{node.name}: TensorRT only supports symmetric quantization. The zero point for the "
                "QuantizeLinear/DequantizeLinear operator must be all zeros.")
    return None


class IOptimizationProfile(_Strict):
    def __init__(self):
        self._shapes = {}

    def set_shape(self, input, min, opt, max):  # noqa: A002 - the real binding's keyword names
        _check(input, str, "set_shape(input)")
        lo, mid, hi = (_dims(v, "set_shape") for v in (min, opt, max))
        ordered = len(lo) == len(mid) == len(hi) and all(0 <= a <= b <= c for a, b, c in zip(lo, mid, hi, strict=True))
        if not ordered:
            raise ValueError(f"set_shape({input}): need 0 <= min <= opt <= max, got {lo} {mid} {hi}")
        self._shapes[input] = (lo, mid, hi)

    def get_shape(self, input):  # noqa: A002
        return list(self._shapes[input])


class ITimingCache(_Strict):
    def __init__(self, entries):
        self._entries = dict(entries)

    def serialize(self):
        return IHostMemory(_CACHE_MAGIC + json.dumps(self._entries).encode())

    def reset(self):
        self._entries.clear()


class IInt8Calibrator:  # not _Strict: Python subclasses keep their own attributes, as with the real trampolines
    def __init__(self):
        self._trt_initialized = True


if _MAJOR == 10:
    class IInt8EntropyCalibrator2(IInt8Calibrator):
        pass


class IBuilderConfig(_Strict):
    _removed = {"max_workspace_size": "10.0", "set_tactic_sources_v1": "10.0"}
    if _MAJOR >= 11:
        _removed = {**_removed, "int8_calibrator": "11.0", "set_calibration_profile": "11.0",
                    "get_calibration_profile": "11.0", "set_quantization_flag": "11.0"}

    def __init__(self):
        self._pools, self._flags, self._profiles = {}, {BuilderFlag.TF32}, []
        self._cache, self._calibrator, self._calibration_profile = None, None, None

    def set_memory_pool_limit(self, pool, pool_size):
        _check(pool, MemoryPoolType, "set_memory_pool_limit(pool)")
        _check(pool_size, int, "set_memory_pool_limit(pool_size)")
        self._pools[pool] = pool_size

    def get_memory_pool_limit(self, pool):
        return self._pools.get(pool, 1 << 40)

    def set_flag(self, flag):
        _check(flag, BuilderFlag, "set_flag")
        self._flags.add(flag)

    def clear_flag(self, flag):
        _check(flag, BuilderFlag, "clear_flag")
        self._flags.discard(flag)

    def get_flag(self, flag):
        return flag in self._flags

    def add_optimization_profile(self, profile):
        _check(profile, IOptimizationProfile, "add_optimization_profile")
        self._profiles.append(profile)
        return len(self._profiles) - 1

    def create_timing_cache(self, serialized_timing_cache):
        _check(serialized_timing_cache, (bytes, bytearray, memoryview), "create_timing_cache")
        raw = bytes(serialized_timing_cache)
        if raw and not raw.startswith(_CACHE_MAGIC):
            raise RuntimeError("timing cache is corrupt")
        return ITimingCache(json.loads(raw[len(_CACHE_MAGIC):]) if raw else {})

    def set_timing_cache(self, cache, ignore_mismatch):
        _check(cache, ITimingCache, "set_timing_cache(cache)")
        _check(ignore_mismatch, bool, "set_timing_cache(ignore_mismatch)")
        self._cache = cache
        return True

    def get_timing_cache(self):
        return self._cache

    if _MAJOR == 10:
        @property
        def int8_calibrator(self):
            return self._calibrator

        @int8_calibrator.setter
        def int8_calibrator(self, calibrator):
            _check(calibrator, (IInt8Calibrator, type(None)), "int8_calibrator")
            self._calibrator = calibrator

        def set_calibration_profile(self, profile):
            _check(profile, IOptimizationProfile, "set_calibration_profile")
            self._calibration_profile = profile
            return True


from ._build import Builder, ICudaEngine, IExecutionContext, Runtime  # noqa: E402,F401
