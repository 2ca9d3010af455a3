"""How far a backend's output is from the PyTorch FP32 output: F0 in cents and log-mel distance in dB.

Both files are read at the model's rate; F0 comes from :func:`engine.f0.extract_f0` (the tracker the
pipeline uses), the log-mel spectrum from :func:`engine.dsp.log_mel` (the INT8 gate's measure).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

DB_PER_NEPER = 10.0 / math.log(10.0)  # natural log of power -> dB


class Reference:
    """The reference output, analysed once."""

    def __init__(self, cfg: Any, path: str | Path) -> None:
        self.cfg = cfg
        self.audio = self._load(path)
        self.f0 = self._f0(self.audio)
        self.mel = self._mel(self.audio)

    def _load(self, path: str | Path) -> np.ndarray:
        from engine.audio import load_clip

        return load_clip(path, self.cfg.audio.sample_rate, self.cfg.inference.max_input_seconds).astype(np.float32)

    def _f0(self, audio: np.ndarray) -> np.ndarray:
        from engine.f0 import extract_f0

        a = self.cfg.audio
        return extract_f0(audio, a.sample_rate, a.hop_length, self.cfg.inference.f0_method, a.f0_min, a.f0_max)

    def _mel(self, audio: np.ndarray) -> np.ndarray:
        import torch

        from engine.dsp import log_mel, mel_filterbank, stft_basis

        a = self.cfg.audio
        with torch.inference_mode():
            basis = stft_basis(a.n_fft)
            fb = torch.from_numpy(mel_filterbank(a.sample_rate, a.n_fft, a.n_mels))
            mel = log_mel(torch.from_numpy(audio)[None], basis, fb, a.hop_length)[0].numpy()
        return mel * DB_PER_NEPER  # [n_mels, t]

    def compare(self, path: str | Path) -> dict[str, Any]:
        """``f0_cents_mean``, ``f0_cents_p95``, ``voicing_agreement`` and ``mel_distance_db`` of ``path``."""
        from engine.dsp import cents

        audio = self._load(path)
        f0 = self._f0(audio)
        n = min(f0.shape[0], self.f0.shape[0])
        diff = cents(f0[:n], self.f0[:n])
        voiced_a, voiced_b = f0[:n] > 0, self.f0[:n] > 0
        mel = self._mel(audio)
        t = min(mel.shape[1], self.mel.shape[1])
        return {"f0_cents_mean": round(float(np.mean(diff)), 3) if diff.size else None,
                "f0_cents_p95": round(float(np.percentile(diff, 95)), 3) if diff.size else None,
                "voicing_agreement": round(float(np.mean(voiced_a == voiced_b)), 4) if n else None,
                "mel_distance_db": round(float(np.mean(np.abs(mel[:, :t] - self.mel[:, :t]))), 4) if t else None,
                "frames": int(n)}
