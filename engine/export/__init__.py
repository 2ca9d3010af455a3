"""Export: the five components to ONNX with manifests (see :mod:`engine.export.onnx_export`).

The exporter imports onnxscript (seconds); it is loaded on first use, not with this package, so the
light helpers here (manifests, specs, safe zip reading) stay cheap to import.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_OPSET", "export_components", "export_voice_conversion_pipeline"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from engine.export import onnx_export

        return getattr(onnx_export, name)
    raise AttributeError(name)
