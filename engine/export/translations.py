"""Custom ONNX translations for the exporter (onnxscript needs its names at module level).

``aten.cumsum`` is accumulated in float64, then rounded to float32. PyTorch's CPU cumsum accumulates
float32 in double; ONNX Runtime's CumSum accumulates in float. The vocoder's phase is a cumsum over frames
whose sum grows with the chunk length, so the two would differ by a float32 ulp of that sum (about 1e-3
of the output at 8 s). Accumulating in double makes ONNX Runtime match PyTorch. TensorRT has no DOUBLE:
the TensorRT build strips these casts (see :func:`engine.export.graph.strip_double_casts`).

``aten.gelu`` (exact, erf form) is written as ``(x * (1 + erf(x / sqrt 2))) * 0.5``: the same standard ops
as the exporter's own ``x * (0.5 * (1 + erf(x / sqrt 2)))``, in the order ONNX Runtime's GELU fusion
recognises, so its graph optimizer replaces the five elementwise ops with one fused Gelu kernel (the
exporter's order is left unfused). The tanh approximation, which the model does not use, is written out
as its formula.
"""

import math

import onnxscript
import torch
from onnxscript import FLOAT, INT64
from onnxscript import opset18 as op


@onnxscript.script(default_opset=op)
def cumsum_f64(self: FLOAT, dim: INT64) -> FLOAT:  # type: ignore[valid-type]
    return op.Cast(op.CumSum(op.Cast(self, to=11), dim), to=1)  # type: ignore[type-var,return-value]


def gelu(self: FLOAT, approximate: str = "none") -> FLOAT:  # type: ignore[valid-type]
    one, half = op.Constant(value_float=1.0), op.Constant(value_float=0.5)
    if approximate == "tanh":  # 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
        cube = op.Mul(op.Mul(self, self), self)  # type: ignore[type-var]
        inner = op.Mul(op.Add(self, op.Mul(cube, op.Constant(value_float=0.044715))),  # type: ignore[type-var]
                       op.Constant(value_float=math.sqrt(2.0 / math.pi)))
        return op.Mul(op.Mul(self, op.Add(op.Tanh(inner), one)), half)  # type: ignore[type-var,return-value]
    root2 = op.Constant(value_float=math.sqrt(2.0))
    return op.Mul(op.Mul(self, op.Add(op.Erf(op.Div(self, root2)), one)), half)  # type: ignore[type-var,return-value]


def custom_translations() -> dict:
    return {torch.ops.aten.cumsum.default: cumsum_f64, torch.ops.aten.gelu.default: gelu}
