"""Custom ONNX translations for the exporter (onnxscript needs its names at module level).

``aten.cumsum`` is accumulated in float64, then rounded to float32. PyTorch's CPU cumsum accumulates
float32 in double; ONNX Runtime's CumSum accumulates in float. The vocoder's phase is a cumsum over frames
whose sum grows with the chunk length, so the two would differ by a float32 ulp of that sum (about 1e-3
of the output at 8 s). Accumulating in double makes ONNX Runtime match PyTorch. TensorRT has no DOUBLE:
the TensorRT build strips these casts (see :func:`engine.export.graph.strip_double_casts`).
"""

import onnxscript
import torch
from onnxscript import FLOAT, INT64
from onnxscript import opset18 as op


@onnxscript.script(default_opset=op)
def cumsum_f64(self: FLOAT, dim: INT64) -> FLOAT:  # type: ignore[valid-type]
    return op.Cast(op.CumSum(op.Cast(self, to=11), dim), to=1)  # type: ignore[type-var,return-value]


def custom_translations() -> dict:
    return {torch.ops.aten.cumsum.default: cumsum_f64}
