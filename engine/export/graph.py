"""ONNX graph helpers: the F0 input paths kept FP32, FP16 conversion, and TensorRT preparation."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import onnx

from engine.backends.torch_backend import FP32_COMPONENTS

# Ops that carry the compute, and so get quantized; everything else stays FP32 in the QDQ model.
QUANTIZED_OPS = ("Conv", "MatMul", "Gemm")
# Inputs whose path to the first quantized op stays FP32 in an INT8 model: F0 in Hz through symmetric int8
# costs tens of cents (TRAPS), and the vocoder's phase is accumulated from F0 and phase0 (see fp32_nodes). The
# vocoder's noise bands stay FP32 too: fixed band-pass filters over white noise, not learned weights. Int8
# taps would raise their stopbands, and with one input channel ONNX Runtime's int8 conv and its
# (de)quantization made the vocoder 1 ms slower per 8 s chunk than the FP32 conv did.
INT8_FP32_INPUTS = {"pitch_encoder": ("f0", "voiced"), "vocoder": ("f0", "phase0", "noise")}
# Ops kept FP32 in an FP16 model: range or precision beyond FP16 (logs of powers, phases, reductions).
FP16_BLOCKED_OPS = ("Log", "Exp", "Sin", "Cos", "CumSum", "Floor", "Pow", "Sqrt", "Reciprocal", "ReduceMean",
                    "ReduceSum", "Softmax", "Range")
DOUBLE = onnx.TensorProto.DOUBLE


def _consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    out: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            out.setdefault(name, []).append(node)
    return out


def input_path_nodes(model: onnx.ModelProto, inputs: Iterable[str], stop_ops: tuple[str, ...] = QUANTIZED_OPS
                     ) -> list[str]:
    """Names of the nodes reachable from ``inputs``, up to and including the first ``stop_ops`` node on
    each path (its output, a learned mix, is not followed)."""
    consumers = _consumers(model.graph)
    frontier, seen, order = list(inputs), set(), []
    while frontier:
        for node in consumers.get(frontier.pop(), []):
            if node.name in seen:
                continue
            seen.add(node.name)
            order.append(node.name)
            if node.op_type not in stop_ops:
                frontier.extend(node.output)
    return order


def fp32_nodes(model: onnx.ModelProto, component: str) -> list[str]:
    """Nodes of ``component`` that stay FP32 when it is quantized: its F0 paths (and the vocoder's noise
    filters, see :data:`INT8_FP32_INPUTS`), and everything feeding a
    Log. A log needs its input's full dynamic range: in the content encoder that is the STFT and mel
    projection of the raw audio (measured on the trained demo model: 1 dB SNR with that front end in int8,
    27 dB without), elsewhere the F0 in Hz."""
    logs = [n.name for n in model.graph.node if n.op_type == "Log"]
    keep = input_path_nodes(model, INT8_FP32_INPUTS.get(component, ()))
    return keep + sorted(ancestors(model, logs) - set(keep))


def ancestors(model: onnx.ModelProto, targets: Iterable[str]) -> set[str]:
    """Names of the nodes whose outputs feed (transitively) the nodes named in ``targets``."""
    producer = {out: node for node in model.graph.node for out in node.output}
    by_name = {node.name: node for node in model.graph.node}
    stack = [by_name[t] for t in targets]
    found: set[str] = set()
    while stack:
        for name in stack.pop().input:
            node = producer.get(name)
            if node is not None and node.name not in found:
                found.add(node.name)
                stack.append(node)
    return found


def ensure_node_names(model: onnx.ModelProto) -> onnx.ModelProto:
    """Give every node a unique name (node exclusion lists and the FP16 block list go by name)."""
    seen: set[str] = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
        seen.add(node.name)
    return model


def fp16_block_list(model: onnx.ModelProto) -> list[str]:
    """Nodes to keep FP32: blocked op types, everything feeding a Log (a log-mel power or an F0 in Hz needs
    FP32 range), and the F0 paths."""
    logs = [n.name for n in model.graph.node if n.op_type == "Log"]
    blocked = {n.name for n in model.graph.node if n.op_type in FP16_BLOCKED_OPS} | ancestors(model, logs)
    blocked |= set(input_path_nodes(model, [i.name for i in model.graph.input if i.name in ("f0", "voiced", "phase0")],
                                    stop_ops=QUANTIZED_OPS))
    return sorted(blocked)


def convert_fp16(src: str | Path, dst: str | Path, component: str) -> bool:
    """Write an FP16 version of ``src`` (FP32 inputs and outputs) to ``dst``; return whether it is FP16.

    The flow and the vocoder are copied unchanged: the flow's inverse and the harmonic phase drift in FP16.
    """
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    model = ensure_node_names(onnx.load(str(src)))
    if component in FP32_COMPONENTS:
        onnx.save(model, str(dst))
        return False
    converted = convert_float_to_float16(model, keep_io_types=True, node_block_list=fp16_block_list(model),
                                         op_block_list=list(DEFAULT_OP_BLOCK_LIST) + list(FP16_BLOCKED_OPS))
    onnx.save(topological_sort(converted), str(dst))
    return True


def topological_sort(model: onnx.ModelProto) -> onnx.ModelProto:
    """Order the nodes so each comes after its inputs' producers (the FP16 converter appends its casts;
    ONNX Runtime tolerates that, the ONNX checker and TensorRT's parser do not)."""
    graph = model.graph
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        rest = []
        for node in pending:
            if all(name in ready for name in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            raise ValueError(f"graph has a cycle or a dangling input at node {rest[0].name}")
        pending = rest
    nodes = []
    for node in ordered:  # copies: the originals are released with the old list
        nodes.append(onnx.NodeProto())
        nodes[-1].CopyFrom(node)
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def strip_double_casts(model: onnx.ModelProto) -> int:
    """Turn casts to DOUBLE into identities (TensorRT has no FP64); returns how many were changed."""
    count = 0
    for node in model.graph.node:
        if node.op_type == "Cast" and any(a.name == "to" and a.i == DOUBLE for a in node.attribute):
            node.op_type = "Identity"
            del node.attribute[:]
            count += 1
    for vi in model.graph.value_info:  # recorded types of the now-float intermediates
        if vi.type.tensor_type.elem_type == DOUBLE:
            vi.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    return count


def has_qdq(model: onnx.ModelProto) -> bool:
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)


def has_fp16(model: onnx.ModelProto) -> bool:
    return any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
