"""A resumable training loop: periodic atomic checkpoints, a progress bar and a JSON-lines loss log."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn


def run_loop(name: str, modules: dict[str, nn.Module], params: list[nn.Parameter],
             step_fn: Callable[[int], dict[str, torch.Tensor]], steps: int, state_path: Path, log_path: Path,
             lr: float, save_every: int = 200, max_minutes: float | None = None) -> None:
    """Train ``params`` with AdamW for ``steps`` steps; resume from ``state_path`` when it exists.

    ``step_fn(step)`` returns named losses; their sum is minimised (names starting "_" are only logged).
    ``max_minutes`` stops early (and saves) when the wall-clock budget is spent, so a stage fits its time.
    """
    from tqdm import tqdm

    opt = torch.optim.AdamW(params, lr=lr, betas=(0.8, 0.99), weight_decay=1e-6)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 200) * 0.5 ** (s / max(steps, 1)))
    step = 0
    if state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        for key, module in modules.items():
            module.load_state_dict(state["modules"][key])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        step = int(state["step"])

    def save() -> None:
        tmp = state_path.with_name(state_path.name + ".tmp")
        torch.save({"modules": {k: m.state_dict() for k, m in modules.items()}, "opt": opt.state_dict(),
                    "sched": sched.state_dict(), "step": step}, tmp)
        os.replace(tmp, state_path)

    t0 = time.monotonic()
    bar = tqdm(total=steps, initial=step, desc=name, unit="step", mininterval=5.0)
    with open(log_path, "a") as log_fh:
        while step < steps:
            for m in modules.values():
                m.train()
            losses = step_fn(step)
            total = sum(v for k, v in losses.items() if not k.startswith("_"))  # "_name": logged only
            opt.zero_grad(set_to_none=True)
            total.backward()  # type: ignore[union-attr]
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            sched.step()
            step += 1
            bar.update(1)
            if step % 25 == 0 or step == steps:
                record = {"stage": name, "step": step, "time": round(time.monotonic() - t0, 1),
                          **{k: round(float(v.detach()), 5) for k, v in losses.items()}}
                log_fh.write(json.dumps(record) + "\n")
                log_fh.flush()
                bar.set_postfix({k: f"{float(v):.3f}" for k, v in losses.items()})
            out_of_time = max_minutes is not None and time.monotonic() - t0 > max_minutes * 60
            if step % save_every == 0 or step == steps or out_of_time:
                save()
            if out_of_time:
                bar.write(f"{name}: time budget of {max_minutes} min spent at step {step}")
                break
    bar.close()
    for m in modules.values():
        m.eval()
