"""Random fixed-length crops of cached clips, stacked into batches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from engine.training.features import Clip


@dataclass
class Batch:
    audio: torch.Tensor    # [b, t * hop]
    f0: torch.Tensor       # [b, t]
    mel: torch.Tensor      # [b, n_mels, t]
    phones: torch.Tensor   # [b, t]
    speaker: torch.Tensor  # [b] speaker index


class CropSampler:
    def __init__(self, clips: list[Clip], frames: int, hop: int, seed: int = 0) -> None:
        self.clips = [c for c in clips if c.f0.shape[0] >= frames]
        if not self.clips:
            raise ValueError(f"no clip has {frames} frames")
        self.frames = frames
        self.hop = hop
        self.rng = np.random.default_rng(seed)

    def sample(self, batch_size: int) -> Batch:
        t, hop = self.frames, self.hop
        picks = self.rng.integers(0, len(self.clips), batch_size)
        audio, f0, mel, phones, spk = [], [], [], [], []
        for i in picks:
            c = self.clips[i]
            start = int(self.rng.integers(0, c.f0.shape[0] - t + 1))
            audio.append(c.audio[start * hop: (start + t) * hop])
            f0.append(c.f0[start: start + t])
            mel.append(c.mel[:, start: start + t])
            phones.append(c.phones[start: start + t])
            spk.append(c.speaker)
        return Batch(
            audio=torch.from_numpy(np.stack(audio)),
            f0=torch.from_numpy(np.stack(f0).astype(np.float32)),
            mel=torch.from_numpy(np.stack(mel)),
            phones=torch.from_numpy(np.stack(phones)),
            speaker=torch.tensor(spk, dtype=torch.long),
        )
