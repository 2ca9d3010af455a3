"""Static INT8 quantization (QDQ, per-channel) of the exported components with ONNX Runtime.

Two flavours of the same QDQ model, one per consumer. TensorRT 10 and 11 build explicit quantization only
from symmetric int8 (zero point 0) on activations and weights, with FP32 biases (its parser refuses an
int32 DequantizeLinear): ``activations="int8"``. ONNX Runtime's CPU
kernels want unsigned activations: its x86 graph optimizer fuses DequantizeLinear -> Conv ->
QuantizeLinear into one QLinearConv for uint8 activations with int8 weights (U8S8, the MLAS fast path),
but leaves many signed-activation convs as FP32 Conv behind runtime dequantization, which runs slower
than the FP32 model (measured: flow decoder 0.8x FP32 with int8 activations, 1.5x with uint8). So the
ONNX Runtime build quantizes activations asymmetrically to uint8: ``activations="uint8"``.

Only the compute ops (Conv, MatMul, Gemm) are quantized; the F0 paths (the pitch encoder's F0
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


ACTIVATION_TYPES = ("int8", "uint8")


def quantize_component(src: str | Path, dst: str | Path, spec: ComponentSpec, data: dict[str, np.ndarray],
                       activations: str = "int8") -> dict[str, object]:
    """Write the QDQ INT8 model of ``src`` to ``dst``; return what was kept FP32 and how many examples fed it.

    ``activations``: ``"int8"`` (symmetric, zero point 0: for TensorRT) or ``"uint8"`` (asymmetric: for
    ONNX Runtime on the CPU). Weights are symmetric per-channel int8 either way.

    Raises:
        ArtifactError: ONNX Runtime's quantizer failed (the message says where), or ``activations`` is unknown.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if activations not in ACTIVATION_TYPES:
        raise ArtifactError(f"unknown activation type {activations!r}; choose one of {', '.join(ACTIVATION_TYPES)}")
    signed = activations == "int8"
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
                        activation_type=QuantType.QInt8 if signed else QuantType.QUInt8,
                        weight_type=QuantType.QInt8, op_types_to_quantize=list(QUANTIZED_OPS),
                        nodes_to_exclude=excluded, calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"ActivationSymmetric": signed, "WeightSymmetric": True,
                                       # TensorRT's parser takes no int32 (bias) DequantizeLinear; it fuses
                                       # an FP32 bias itself. ONNX Runtime needs the int32 bias to fuse.
                                       "QuantizeBias": not signed}, reduce_range=True)
    except Exception as exc:  # noqa: BLE001 - the quantizer raises many types
        raise ArtifactError(f"{spec.component}: INT8 quantization failed: {exc}") from exc
    finally:
        logging.getLogger().removeFilter(quiet)
        named.unlink(missing_ok=True)
    kept = [n for n in excluded if any(node.name == n and node.op_type in QUANTIZED_OPS for node in model.graph.node)]
    return {"examples": reader.count, "fp32_nodes": kept, "activations": activations}


def snr_db(reference: np.ndarray, test: np.ndarray) -> float:
    """Signal-to-noise ratio of ``test`` against ``reference`` in dB (inf when identical)."""
    noise = float(np.sum((reference.astype(np.float64) - test) ** 2))
    signal = float(np.sum(reference.astype(np.float64) ** 2))
    if noise == 0.0:
        return math.inf
    return 10.0 * math.log10(max(signal, 1e-30) / noise)
