"""Per-clip training features, computed once and cached: audio, F0, log-mel, frame phone ids, speaker.

The cache is one ``.npz`` per clip (read with ``allow_pickle=False``) plus ``index.json``.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.audio import load_clip
from engine.config import Config
from engine.dsp import log_mel, mel_filterbank, stft_basis
from engine.f0 import extract_f0

log = logging.getLogger(__name__)
CACHE_VERSION = 1


@dataclass
class Clip:
    clip_id: str
    speaker: int
    audio: np.ndarray   # [s] float32, s = frames * hop
    f0: np.ndarray      # [t] Hz
    mel: np.ndarray     # [n_mels, t]
    phones: np.ndarray  # [t] int64


class MelExtractor:
    """The log-mel that the mel projection predicts and the vocoder reads (``audio.n_fft``, ``n_mels``)."""

    def __init__(self, cfg: Config) -> None:
        a = cfg.audio
        self.hop = a.hop_length
        self.basis = stft_basis(a.n_fft)
        self.fb = torch.from_numpy(mel_filterbank(a.sample_rate, a.n_fft, a.n_mels))

    def __call__(self, audio: torch.Tensor) -> torch.Tensor:
        """``[b, s] -> [b, n_mels, s // hop]``."""
        return log_mel(audio, self.basis, self.fb, self.hop)


def read_meta(corpus: Path) -> tuple[list[dict], list[str], dict[str, dict]]:
    meta = [json.loads(line) for line in (corpus / "meta.jsonl").read_text().splitlines() if line.strip()]
    phones = json.loads((corpus / "phones.json").read_text())
    speakers = json.loads((corpus / "speakers.json").read_text())
    return meta, phones, speakers


def frame_phones(phone_spans: list, phone_index: dict[str, int], n_frames: int, frame_rate: float) -> np.ndarray:
    """Phone id of each frame centre (0, silence, where no span covers it)."""
    ids = np.zeros(n_frames, dtype=np.int64)
    centres = (np.arange(n_frames) + 0.5) / frame_rate
    for phone, start, end in phone_spans:
        sel = (centres >= start) & (centres < end)
        ids[sel] = phone_index.get(phone, 0)
    return ids


def _compute(args: tuple) -> tuple[str, dict]:
    corpus, item, phone_index, cfg_dict, cache_dir = args
    from engine.config import AudioConfig

    a = AudioConfig(**cfg_dict)
    audio = load_clip(Path(corpus) / item["path"], a.sample_rate, max_seconds=600)
    n = len(audio) // a.hop_length
    audio = audio[: n * a.hop_length].astype(np.float32)
    f0 = extract_f0(audio, a.sample_rate, a.hop_length, "parselmouth", a.f0_min, a.f0_max).astype(np.float32)
    phones = frame_phones(item.get("phones") or [], phone_index, n, a.sample_rate / a.hop_length)
    out = Path(cache_dir) / f"{item['clip_id']}.npz"
    np.savez(out, audio=audio, f0=f0, phones=phones)
    return item["clip_id"], {"frames": n}


def build_cache(cfg: Config, corpus: Path, cache_dir: Path, workers: int = 2,
                splits: tuple[str, ...] = ("train",)) -> Path:
    """Compute features of the clips of ``splits`` not yet cached (parallel over clips)."""
    from dataclasses import asdict

    from tqdm import tqdm

    meta, phones, _ = read_meta(corpus)
    cache_dir.mkdir(parents=True, exist_ok=True)
    index = {p: i for i, p in enumerate(phones)}
    todo = [m for m in meta if m["split"] in splits and not (cache_dir / f"{m['clip_id']}.npz").exists()]
    jobs = [(str(corpus), m, index, asdict(cfg.audio), str(cache_dir)) for m in todo]
    if jobs:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for _ in tqdm(pool.map(_compute, jobs, chunksize=8), total=len(jobs), desc="features", unit="clip"):
                pass
    (cache_dir / "index.json").write_text(json.dumps({"version": CACHE_VERSION, "clips": len(meta)}))
    return cache_dir


def load_clips(cache_dir: Path, meta: list[dict], speaker_ids: dict[str, int], mel: MelExtractor,
               splits: tuple[str, ...] = ("train",)) -> list[Clip]:
    clips = []
    for m in meta:
        if m["split"] not in splits or m["speaker"] not in speaker_ids:
            continue
        with np.load(cache_dir / f"{m['clip_id']}.npz", allow_pickle=False) as z:
            audio, f0, phones = z["audio"], z["f0"], z["phones"]
        with torch.no_grad():
            spec = mel(torch.from_numpy(audio)[None])[0].numpy()
        clips.append(Clip(m["clip_id"], speaker_ids[m["speaker"]], audio, f0, spec, phones))
    return clips
