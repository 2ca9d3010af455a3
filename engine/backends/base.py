"""The contract every backend implements: numpy in, numpy out, named as in ``COMPONENT_IO``."""

from __future__ import annotations

from typing import Protocol

import numpy as np

BACKENDS = ("auto", "torch", "onnxruntime", "tensorrt")
PRECISIONS = ("fp32", "fp16", "int8")


class ComponentRunner(Protocol):
    component: str
    backend: str
    precision: str

    def __call__(self, **inputs: np.ndarray) -> np.ndarray:
        """Run the component on named float32 inputs; return its single output as float32."""
        ...
