"""The fake's builder, runtime, engine and execution context (see the package docstring)."""

from __future__ import annotations

import base64
import ctypes
import json

import numpy as np
import onnx
import onnxruntime as ort

from . import (
    _CACHE_MAGIC,
    _CALIB_MAGIC,
    _ENGINE_MAGIC,
    _MAJOR,
    BuilderFlag,
    DataType,
    IBuilderConfig,
    IHostMemory,
    IInt8Calibrator,
    ILogger,
    INetworkDefinition,
    IOptimizationProfile,
    ITimingCache,
    MemoryPoolType,
    NetworkDefinitionCreationFlag,
    TensorIOMode,
    __version__,
    _check,
    _dims,
    _emit,
    _Strict,
    stats,
)

ERROR, WARNING = ILogger.Severity.ERROR, ILogger.Severity.WARNING
_PRECISION_FLAGS = ("FP16", "BF16", "INT8", "FP8")


def _read_host(address: int, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
    count = int(np.prod(shape))
    buf = (ctypes.c_byte * (count * np.dtype(dtype).itemsize)).from_address(address)
    return np.frombuffer(buf, dtype=dtype, count=count).reshape(shape).copy()


def _write_host(address: int, array: np.ndarray) -> None:
    array = np.ascontiguousarray(array)
    ctypes.memmove(address, array.ctypes.data, array.nbytes)


def _session(model_bytes: bytes) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


class Builder(_Strict):
    _removed = {"max_batch_size": "10.0", "max_workspace_size": "10.0", "build_engine": "10.0",
                "build_cuda_engine": "8.0"}
    if _MAJOR >= 11:
        _removed = {**_removed, "platform_has_fast_fp16": "11.0", "platform_has_fast_int8": "11.0"}

    def __init__(self, logger):
        _check(logger, ILogger, "Builder(logger)")
        self._logger = logger

    if _MAJOR == 10:
        platform_has_fast_fp16 = property(lambda self: True)
        platform_has_fast_int8 = property(lambda self: True)

    def create_network(self, flags=0):
        _check(flags, int, "create_network(flags)")
        known = sum(1 << int(f) for f in NetworkDefinitionCreationFlag)
        if flags & ~known:
            raise ValueError(f"create_network: unknown flag bits {flags:#x}")
        strongly = _MAJOR >= 11 or bool(flags & (1 << int(NetworkDefinitionCreationFlag.STRONGLY_TYPED)))
        return INetworkDefinition(strongly)

    def create_builder_config(self):
        return IBuilderConfig()

    def create_optimization_profile(self):
        return IOptimizationProfile()

    def _fail(self, msg):
        _emit(self._logger, ERROR, msg)
        return None

    def _check_profiles(self, network, profiles):
        for t in network._inputs:
            for p in profiles:
                if t.name not in p._shapes:
                    if -1 in t.shape:
                        return f"optimization profile has no shape for dynamic input {t.name}"
                    continue
                for shape in p._shapes[t.name]:
                    if len(shape) != len(t.shape) or any(d not in (-1, s) for d, s in zip(t.shape, shape, strict=True)):
                        return f"profile shape {shape} for {t.name} does not match the network's {t.shape}"
        if any(-1 in t.shape for t in network._inputs) and not profiles:
            return "network has dynamic inputs but the config has no optimization profile"
        return None

    def build_serialized_network(self, network, config):
        _check(network, INetworkDefinition, "build_serialized_network(network)")
        _check(config, IBuilderConfig, "build_serialized_network(config)")
        if network._model is None:
            return self._fail("network has no layers: parse a model first")
        flags = {f.name for f in config._flags}
        if network._strongly_typed and flags & set(_PRECISION_FLAGS):
            return self._fail(f"precision flags {sorted(flags & set(_PRECISION_FLAGS))} are not allowed on a "
                              "strongly typed network")
        problem = self._check_profiles(network, config._profiles)
        if problem:
            return self._fail(problem)
        if MemoryPoolType.WORKSPACE not in config._pools:
            _emit(self._logger, WARNING, "no workspace limit set; using the device memory")
        model = network._model
        qdq = any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)
        if qdq and not network._strongly_typed and "INT8" not in flags:
            return self._fail("Q/DQ layers in a weakly typed network need BuilderFlag.INT8")
        calibration = None
        if "INT8" in flags and not qdq:
            calibration = self._calibrate(network, config)
            if calibration is None:
                return None
        cache = config._cache
        hits = 0
        if cache is not None:
            for node in model.graph.node:
                if node.op_type in ("Conv", "MatMul"):
                    key = f"{node.op_type}|{','.join(sorted(flags))}|{node.input[1] if len(node.input) > 1 else ''}"
                    hits += key in cache._entries
                    cache._entries[key] = "tactic-0"
        stats["timing_cache_hits"] += hits
        stats["builds"] += 1
        payload = {
            "version": __version__, "onnx": base64.b64encode(model.SerializeToString()).decode(),
            "inputs": [[t.name, list(t.shape), int(t.dtype)] for t in network._inputs],
            "outputs": [[t.name, list(t.shape), int(t.dtype)] for t in network._outputs],
            "profiles": [{k: [list(s) for s in v] for k, v in p._shapes.items()} for p in config._profiles],
            "flags": sorted(flags), "strongly_typed": network._strongly_typed, "qdq": qdq,
            "fp16_weights": any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer),
            "calibration": calibration,
        }
        return IHostMemory(_ENGINE_MAGIC + json.dumps(payload).encode())

    def _calibrate(self, network, config):
        cal = config._calibrator
        if cal is None:
            return self._fail("INT8 without Q/DQ layers needs a calibrator (or per-tensor dynamic ranges)")
        if not getattr(cal, "_trt_initialized", False):
            return self._fail("calibrator did not call IInt8EntropyCalibrator2.__init__")
        cached = cal.read_calibration_cache()
        if cached:
            raw = bytes(cached)
            if not raw.startswith(_CALIB_MAGIC):
                return self._fail("calibration cache is corrupt")
            return json.loads(raw[len(_CALIB_MAGIC):]) | {"from_cache": True}
        batch = cal.get_batch_size()
        _check(batch, int, "get_batch_size()")
        profile = config._calibration_profile
        dynamic = any(-1 in t.shape for t in network._inputs)
        if dynamic and profile is None:
            return self._fail("dynamic shapes need a calibration profile (set_calibration_profile)")
        names = [t.name for t in network._inputs]
        shapes = {t.name: tuple(profile._shapes[t.name][1]) if dynamic else t.shape for t in network._inputs}
        session = _session(network._model.SerializeToString())
        ranges: dict[str, float] = {}
        count = 0
        while True:
            pointers = cal.get_batch(names)
            if not pointers:
                break
            _check(pointers, list, "get_batch() result")
            if len(pointers) != len(names):
                return self._fail(f"get_batch returned {len(pointers)} pointers for {len(names)} inputs")
            feed = {}
            for name, ptr in zip(names, pointers, strict=True):
                _check(ptr, int, f"get_batch() pointer for {name}")
                feed[name] = _read_host(ptr, shapes[name])
            outs = session.run(None, feed)
            named = list(feed.items()) + [(o.name, v) for o, v in zip(session.get_outputs(), outs, strict=True)]
            for name, value in named:
                ranges[name] = max(ranges.get(name, 0.0), float(np.max(np.abs(value))))
            count += 1
            stats["calibration_batches"] += 1
        if count == 0:
            return self._fail("the calibrator gave no batches")
        table = {"batches": count, "ranges": ranges}
        cal.write_calibration_cache(memoryview(_CALIB_MAGIC + json.dumps(table).encode()))
        return table


class Runtime(_Strict):
    def __init__(self, logger):
        _check(logger, ILogger, "Runtime(logger)")
        self._logger = logger

    def deserialize_cuda_engine(self, serialized_engine):
        _check(serialized_engine, (bytes, bytearray, memoryview), "deserialize_cuda_engine")
        raw = bytes(serialized_engine)
        if not raw.startswith(_ENGINE_MAGIC):
            _emit(self._logger, ERROR, "the data is not a serialized engine")
            return None
        payload = json.loads(raw[len(_ENGINE_MAGIC):])
        if payload["version"] != __version__:
            _emit(self._logger, ERROR, f"engine plan built with TensorRT {payload['version']} cannot be "
                                       f"deserialized by TensorRT {__version__}")
            return None
        return ICudaEngine(payload)


class ICudaEngine(_Strict):
    _removed = {n: "10.0" for n in ("num_bindings", "get_binding_index", "get_binding_name", "binding_is_input",
                                    "get_binding_shape", "get_binding_dtype", "max_batch_size",
                                    "has_implicit_batch_dimension", "get_profile_shape")}

    def __init__(self, payload):
        self._payload = payload
        self._io = {n: (tuple(s), DataType(d), TensorIOMode.INPUT) for n, s, d in payload["inputs"]}
        self._io |= {n: (tuple(s), DataType(d), TensorIOMode.OUTPUT) for n, s, d in payload["outputs"]}
        self._session = _session(base64.b64decode(payload["onnx"]))

    num_io_tensors = property(lambda self: len(self._io))
    num_optimization_profiles = property(lambda self: len(self._payload["profiles"]))

    def get_tensor_name(self, index):
        _check(index, int, "get_tensor_name")
        return list(self._io)[index]

    def _get(self, name):
        _check(name, str, "tensor name")
        return self._io[name]

    def get_tensor_mode(self, name):
        return self._get(name)[2]

    def get_tensor_dtype(self, name):
        return self._get(name)[1]

    def get_tensor_shape(self, name):
        return self._get(name)[0]

    def get_tensor_profile_shape(self, name, profile_index):
        _check(profile_index, int, "get_tensor_profile_shape(profile_index)")
        return [tuple(s) for s in self._payload["profiles"][profile_index][name]]

    def create_execution_context(self):
        return IExecutionContext(self)


class IExecutionContext(_Strict):
    _removed = {n: "10.0" for n in ("execute_async_v2", "execute_async", "execute", "set_binding_shape",
                                    "get_binding_shape", "all_binding_shapes_specified", "active_optimization_profile")}

    def __init__(self, engine):
        self._engine, self._shapes, self._addresses, self._out_shapes = engine, {}, {}, None

    def set_input_shape(self, name, shape):
        shape = _dims(shape, "set_input_shape(shape)")
        static, _, mode = self._engine._get(name)
        if mode != TensorIOMode.INPUT:
            raise ValueError(f"{name} is not an input")
        lo, _, hi = self._engine.get_tensor_profile_shape(name, 0)
        if len(shape) != len(static) or any(not a <= s <= b for a, s, b in zip(lo, shape, hi, strict=False)):
            return False
        self._shapes[name] = shape
        self._out_shapes = None
        return True

    def _outputs(self):
        if self._out_shapes is None:
            feeds = {n: np.zeros(s, np.float32) for n, s in self._shapes.items()}
            outs = self._engine._session.run(None, feeds)
            names = [o.name for o in self._engine._session.get_outputs()]
            self._out_shapes = {n: v.shape for n, v in zip(names, outs, strict=True)}
        return self._out_shapes

    def get_tensor_shape(self, name):
        static, _, mode = self._engine._get(name)
        if mode == TensorIOMode.INPUT:
            return self._shapes.get(name, static)
        missing = [n for n, (_, _, m) in self._engine._io.items() if m == TensorIOMode.INPUT and n not in self._shapes]
        return tuple(-1 for _ in static) if missing else tuple(self._outputs()[name])

    def set_tensor_address(self, name, memory):
        self._engine._get(name)
        _check(memory, int, "set_tensor_address(memory)")
        self._addresses[name] = memory
        return True

    def get_tensor_address(self, name):
        return self._addresses.get(name, 0)

    def execute_async_v3(self, stream_handle):
        _check(stream_handle, int, "execute_async_v3(stream_handle)")
        io = self._engine._io
        inputs = [n for n, (_, _, m) in io.items() if m == TensorIOMode.INPUT]
        if any(n not in self._shapes for n in inputs):
            raise RuntimeError("execute_async_v3: not all input shapes are set")
        if any(not self._addresses.get(n) for n in io):
            raise RuntimeError("execute_async_v3: not all tensor addresses are set")
        feeds = {n: _read_host(self._addresses[n], self._shapes[n]) for n in inputs}
        outs = self._engine._session.run(None, feeds)
        for o, value in zip(self._engine._session.get_outputs(), outs, strict=True):
            _write_host(self._addresses[o.name], value.astype(np.float32))
        stats["executions"] += 1
        return True


__all__ = ["Builder", "ICudaEngine", "IExecutionContext", "Runtime", "BuilderFlag", "IInt8Calibrator",
           "ITimingCache", "_CACHE_MAGIC"]
