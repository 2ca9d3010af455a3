"""Static INT8 quantization (QDQ, symmetric, per-channel) of the exported components with ONNX Runtime.

The QDQ model is what ONNX Runtime runs on CPU and the explicit-quantization form TensorRT 10 and 11
build. Only the compute ops (Conv, MatMul, Gemm) are quantized; the F0 paths (the pitch encoder's F0
input, the vocoder's F0 and phase) stay FP32 up to and including the first conv that reads them, and so
does whatever feeds a Log (the content encoder's STFT and mel front end on the raw audio).
Activations are calibrated (MinMax) on the real inputs in the calibration set, never on random data.
ORT's dynamic INT8 (ConvInteger) runs several times slower than FP32 here, so it is not offered.

Weights use 7 of the 8 bits (``reduce_range``): on x86 CPUs without VNNI, ONNX Runtime's int8 conv
kernels add pairs of u8*s8 products in int16 and saturate with full-range weights (measured here: 10-25 dB
SNR instead of 30-36 dB); the 7-bit weights cost under 1 dB, and the model stays valid for TensorRT.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx

from engine.calibration import examples
from engine.errors import ArtifactError
from engine.export.graph import QUANTIZED_OPS, ensure_node_names, fp32_nodes
from engine.export.specs import ComponentSpec

log = logging.getLogger(__name__)


class NpzDataReader:
    """``onnxruntime.quantization.CalibrationDataReader`` over one component's rows of a calibration set."""

    def __init__(self, data: dict[str, np.ndarray], spec: ComponentSpec) -> None:
        self.data = data
        self.spec = spec
        self._it: Iterator[dict[str, np.ndarray]] = examples(data, spec)
        self.count = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        feed = next(self._it, None)
        if feed is not None:
            self.count += 1
        return feed

    def rewind(self) -> None:
        self._it = examples(self.data, self.spec)


class _DropAdvice(logging.Filter):
    """Drops the quantizer's advice to run its pre-processing (shape inference is done; the graph is final)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing" not in record.getMessage()


def _as_reader(reader: NpzDataReader):  # -> CalibrationDataReader
    """Wrap in ORT's reader base class (imported lazily: onnxruntime.quantization pulls in a lot)."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def get_next(self) -> dict[str, np.ndarray] | None:
            return reader.get_next()

        def rewind(self) -> None:
            reader.rewind()

    return _Reader()


def quantize_component(src: str | Path, dst: str | Path, spec: ComponentSpec, data: dict[str, np.ndarray]
                       ) -> dict[str, object]:
    """Write the QDQ INT8 model of ``src`` to ``dst``; return what was kept FP32 and how many examples fed it.

    Raises:
        ArtifactError: ONNX Runtime's quantizer failed (the message says where).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    src, dst = Path(src), Path(dst)
    model = ensure_node_names(onnx.load(str(src)))
    named = dst.with_name(f".{dst.stem}.named.onnx")
    onnx.save(model, str(named))
    excluded = fp32_nodes(model, spec.component)
    reader = NpzDataReader(data, spec)
    quiet = _DropAdvice()
    logging.getLogger().addFilter(quiet)
    try:
        quantize_static(str(named), str(dst), _as_reader(reader), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=list(QUANTIZED_OPS), nodes_to_exclude=excluded,
                        calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True}, reduce_range=True)
    except Exception as exc:  # noqa: BLE001 - the quantizer raises many types
        raise ArtifactError(f"{spec.component}: INT8 quantization failed: {exc}") from exc
    finally:
        logging.getLogger().removeFilter(quiet)
        named.unlink(missing_ok=True)
    kept = [n for n in excluded if any(node.name == n and node.op_type in QUANTIZED_OPS for node in model.graph.node)]
    return {"examples": reader.count, "fp32_nodes": kept}


def snr_db(reference: np.ndarray, test: np.ndarray) -> float:
    """Signal-to-noise ratio of ``test`` against ``reference`` in dB (inf when identical)."""
    noise = float(np.sum((reference.astype(np.float64) - test) ** 2))
    signal = float(np.sum(reference.astype(np.float64) ** 2))
    if noise == 0.0:
        return math.inf
    return 10.0 * math.log10(max(signal, 1e-30) / noise)
