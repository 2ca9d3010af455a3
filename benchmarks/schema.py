"""The JSON Schema of ``autovoice bench --json OUT.json`` (what the README, plots and tests rely on)."""

from __future__ import annotations

from typing import Any

COMPONENTS = ("content_encoder", "pitch_encoder", "flow_decoder", "mel_projection", "vocoder")
_NUM = {"type": "number"}
_NUM_OR_NULL = {"type": ["number", "null"]}

TIMING = {
    "type": "object",
    "required": ["median_ms", "min_ms", "max_ms", "iqr_ms", "stdev_ms", "n"],
    "properties": {"median_ms": {"type": "number", "exclusiveMinimum": 0}, "min_ms": _NUM, "max_ms": _NUM,
                   "iqr_ms": {"type": "number", "minimum": 0}, "stdev_ms": {"type": "number", "minimum": 0},
                   "n": {"type": "integer", "minimum": 1}},
}

QUALITY = {
    "type": ["object", "null"],
    "required": ["f0_cents_mean", "f0_cents_p95", "voicing_agreement", "mel_distance_db"],
    "properties": {"f0_cents_mean": _NUM_OR_NULL, "f0_cents_p95": _NUM_OR_NULL,
                   "voicing_agreement": _NUM_OR_NULL, "mel_distance_db": _NUM_OR_NULL},
}

RESULT = {
    "type": "object",
    "required": ["backend", "precision", "device", "label", "rtf", "rtf_no_f0", "components", "chunk",
                 "f0_extraction", "peak_mb", "quality", "component_precisions", "end_to_end"],
    "properties": {
        "backend": {"enum": ["torch", "onnxruntime", "tensorrt"]},
        "precision": {"enum": ["fp32", "fp16", "int8"]},
        "device": {"enum": ["cpu", "cuda"]},
        "label": {"type": "string"},
        "rtf": {"type": "number", "exclusiveMinimum": 0},
        "rtf_no_f0": {"type": "number", "exclusiveMinimum": 0},
        "speedup": _NUM, "speedup_no_f0": _NUM,
        "components": {"type": "object", "required": list(COMPONENTS),
                       "properties": {c: {**TIMING, "required": [*TIMING["required"], "precision"]}
                                      for c in COMPONENTS}},
        "chunk": TIMING, "f0_extraction": TIMING,
        "peak_mb": {"type": "number", "exclusiveMinimum": 0},
        "gpu_peak_mb": _NUM_OR_NULL,
        "quality": QUALITY,
        "component_precisions": {"type": "object", "required": list(COMPONENTS)},
        "end_to_end": {"type": "object", "required": ["input_seconds", "seconds", "seconds_no_f0", "rtf", "rtf_no_f0",
                                                    "minor_faults", "system_seconds", "median_minor_faults",
                                                    "median_system_ms"]},
        "achieved": {"type": "object"},
    },
}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["machine", "results", "skipped", "settings", "input", "checkpoint", "scaling", "pool", "hardware"],
    "properties": {
        "machine": {"type": "object",
                    "required": ["cpu", "cores", "threads", "load_average_start", "load_average_end", "versions",
                                 "gpu", "matmul_peak"]},
        "results": {"type": "array", "minItems": 1, "items": RESULT},
        "skipped": {"type": "array", "items": {"type": "object", "required": ["label", "reason"]}},
        "scaling": {"type": "array", "items": {"type": "object", "required": ["label"]}},
        "pool": {"type": ["object", "null"]},
        "hardware": {"type": ["object", "null"]},
    },
}
