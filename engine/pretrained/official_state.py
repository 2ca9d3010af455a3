"""Reading public checkpoints in their official file layouts into our re-implementations, strictly.

A checkpoint file is read with ``torch.load(weights_only=True)`` (no arbitrary pickles), a DDP ``module.``
prefix is stripped, and weight norm saved in either form is accepted: the old hook's ``weight_g`` /
``weight_v`` keys (what ``torch.nn.utils.weight_norm`` writes, the form of the published files) or the
parametrization's ``parametrizations.weight.original0`` / ``original1`` (what
``torch.nn.utils.parametrizations.weight_norm`` writes). Every key and shape must match the module;
otherwise one :class:`~engine.errors.CheckpointError` names the file and the first mismatches.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.errors import CheckpointError

DDP_PREFIX = "module."
# Old weight-norm hook keys -> the parametrization's keys (magnitude g, direction v).
WEIGHT_NORM_KEYS = {"weight_g": "parametrizations.weight.original0", "weight_v": "parametrizations.weight.original1"}
SHOWN = 5  # mismatches named in an error message, per kind


def read_state_file(path: str | Path, what: str) -> Any:
    """The object stored in ``path``, loaded without executing pickled code.

    Raises:
        CheckpointError: the file is missing or is not a weights-only torch file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no {what} checkpoint at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same thing to the user
        raise CheckpointError(f"cannot read {what} checkpoint {path}: {exc}") from exc


def tensor_dict(obj: Any, path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """``obj`` as a ``{name: tensor}`` state dict (or one clear error)."""
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{path} is not a {what} checkpoint: expected a state dict of tensors, "
                              f"got {type(obj).__name__}")
    bad = [str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path} is not a {what} checkpoint: entries that are not named tensors: "
                              f"{', '.join(bad[:SHOWN])}")
    return dict(obj)


def normalise_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip a leading ``module.`` (DDP) and rename old weight-norm keys to the parametrization's."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith(DDP_PREFIX):
            key = key[len(DDP_PREFIX):]
        head, _, leaf = key.rpartition(".")
        if leaf in WEIGHT_NORM_KEYS:
            key = f"{head}.{WEIGHT_NORM_KEYS[leaf]}" if head else WEIGHT_NORM_KEYS[leaf]
        out[key] = value
    return out


def _listed(items: list[str]) -> str:
    more = f" (+{len(items) - SHOWN} more)" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], path: str | Path, what: str) -> None:
    """Load ``state`` (already normalised) into ``module``: every key present, none extra, every shape equal.

    Raises:
        CheckpointError: naming ``path`` and the first missing keys, unexpected keys and shape mismatches.
    """
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} in the file, {tuple(v.shape)} in the model"
              for k, v in expected.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys: {_listed(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_listed(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches: {_listed(shapes)}")
        raise CheckpointError(f"{path} does not match the {what} architecture: {'; '.join(parts)}")
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)


def remove_weight_norm(module: nn.Module) -> nn.Module:
    """Fold every weight-norm parametrization into a plain weight (the function is unchanged); eval mode."""
    from torch.nn.utils import parametrize

    for m in module.modules():
        if parametrize.is_parametrized(m):
            for name in list(m.parametrizations.keys()):  # type: ignore[union-attr,operator]
                parametrize.remove_parametrizations(m, name, leave_parametrized=True)
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()
