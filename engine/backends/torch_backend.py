"""PyTorch eager backend (CPU, or CUDA with optional half precision)."""

from __future__ import annotations

import numpy as np
import torch

from engine.errors import ArtifactError
from engine.models.inference import COMPONENT_IO, inference_module
from engine.models.svc import SVCModel

# Kept FP32 even in half precision: the flow's inverse and the vocoder's phase accumulation drift in FP16.
FP32_COMPONENTS = ("flow_decoder", "vocoder")


class TorchRunner:
    backend = "torch"

    def __init__(self, model: SVCModel, component: str, device: str = "cpu", precision: str = "fp32") -> None:
        if precision not in ("fp32", "fp16"):
            raise ArtifactError(f"the torch backend runs fp32 or fp16 (on CUDA), not {precision}")
        if precision == "fp16" and not device.startswith("cuda"):
            raise ArtifactError("fp16 on the torch backend needs a CUDA device; use --precision fp32 on CPU")
        self.component = component
        self.device = torch.device(device)
        self.half = precision == "fp16" and component not in FP32_COMPONENTS
        self.precision = "fp16" if self.half else "fp32"
        self.inputs = COMPONENT_IO[component][0]
        module = inference_module(model, component).to(self.device)
        self.module = module.half() if self.half else module

    @torch.inference_mode()
    def __call__(self, **inputs: np.ndarray) -> np.ndarray:
        dtype = torch.float16 if self.half else torch.float32
        args = [torch.from_numpy(np.ascontiguousarray(inputs[n], dtype=np.float32)).to(self.device, dtype)
                for n in self.inputs]
        out = self.module(*args)
        return out.float().cpu().numpy()


def torch_runners(model: SVCModel, device: str = "cpu", precision: str = "fp32") -> dict[str, TorchRunner]:
    return {c: TorchRunner(model, c, device, precision) for c in COMPONENT_IO}
