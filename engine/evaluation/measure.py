"""Measurements of corpus clips (cached on disk) and of converted outputs (fresh), in one place."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from engine.audio import load_clip
from engine.errors import VoiceError
from engine.evaluation import mcd, metrics
from engine.evaluation.baselines import long_term_envelope
from engine.evaluation.cache import MeasurementCache, files_key
from engine.evaluation.corpus import Clip

# Namespaces name the method and settings: change one and the cache measures again.
if TYPE_CHECKING:
    from engine.speaker import SpeakerEncoder

NS_F0 = f"praat-f0-{metrics.HOP}-{metrics.F0_FLOOR:g}-{metrics.F0_CEILING:g}"
NS_EMBEDDING = "resemblyzer-embedding"
NS_DNSMOS = "dnsmos-ovrl"
NS_MCEP = f"world-mcep-{mcd.ORDER}-{mcd.ALPHA:g}-{mcd.FFT_SIZE}"
NS_ENVELOPE = "world-long-term-envelope-dio"


class Measurer:
    """Praat F0, Resemblyzer embeddings, DNSMOS and mel-cepstral distortion of clips and outputs.

    Args:
        cache: where corpus-clip measurements are kept between runs.
    """

    def __init__(self, cache: MeasurementCache) -> None:
        self.cache = cache
        self._encoder: SpeakerEncoder | None = None

    @property
    def encoder(self) -> SpeakerEncoder:
        """Resemblyzer, loaded on first use (seconds)."""
        if self._encoder is None:
            from engine.speaker import SpeakerEncoder

            self._encoder = SpeakerEncoder.shared()
        return self._encoder

    # -- corpus clips (cached) ----------------------------------------------------------------------------
    @staticmethod
    def audio(clip: Clip) -> np.ndarray:
        return load_clip(clip.path, metrics.SAMPLE_RATE)

    def f0(self, clip: Clip) -> np.ndarray:
        return self.cache.measure(NS_F0, clip.path, lambda: metrics.praat_f0(self.audio(clip)))

    def embedding(self, clip: Clip) -> np.ndarray:
        return self.cache.measure(NS_EMBEDDING, clip.path, lambda: self.encoder.embed_clip(self.audio(clip)))

    def dnsmos(self, clip: Clip) -> float:
        return float(self.cache.measure(NS_DNSMOS, clip.path, lambda: metrics.dnsmos_overall(self.audio(clip))))

    def mcep(self, clip: Clip) -> np.ndarray:
        return self.cache.measure(NS_MCEP, clip.path, lambda: mcd.mcep(self.audio(clip), self.f0(clip)))

    def source_mcd(self, source: Clip, oracle: Clip) -> float:
        """MCD of a source clip to the oracle: what a converter that changed nothing would score."""
        return mcd.distortion(self.mcep(source), self.mcep(oracle), self.f0(source), self.f0(oracle))

    def voice_embedding(self, clips: Sequence[Clip]) -> np.ndarray:
        """Mean of the clips' embeddings, L2-normalised (as a voice profile averages its references)."""
        mean = np.mean([self.embedding(c) for c in clips], axis=0)
        return (mean / max(float(np.linalg.norm(mean)), 1e-8)).astype(np.float32)

    def long_term_envelope(self, clips: Sequence[Clip]) -> np.ndarray:
        key = files_key([c.path for c in clips])
        value = self.cache.get(NS_ENVELOPE, key)
        if value is None:
            value = long_term_envelope([self.audio(c) for c in clips])
            self.cache.put(NS_ENVELOPE, key, value)
        return value

    # -- outputs ------------------------------------------------------------------------------------------
    def output(self, audio: np.ndarray, clip: Clip | None, *, source: np.ndarray, f0_source: np.ndarray,
               transpose: float, oracle: Clip, ref_target: np.ndarray,
               ref_source: np.ndarray, source_mcd: float, notes: list[str]) -> dict[str, float]:
        """Every metric of one output; ``clip`` is set when the output is a corpus file (cached measures).

        A metric that cannot be measured (e.g. no voice left after Resemblyzer's silence trimming) is NaN
        and the reason is appended to ``notes``.
        """
        f0 = self.f0(clip) if clip is not None else metrics.praat_f0(audio)
        err = metrics.f0_error(f0, f0_source, transpose)
        out: dict[str, float] = {
            "f0_median_cents": err.median_cents, "f0_p90_cents": err.p90_cents,
            "voicing": metrics.voicing_agreement(f0, f0_source),
            "duration_ratio": metrics.duration_ratio(audio, source),
        }
        try:
            emb = self.embedding(clip) if clip is not None else self.encoder.embed_clip(audio)
            out["sim_target"] = metrics.speaker_similarity(emb, ref_target)
            out["sim_source"] = metrics.speaker_similarity(emb, ref_source)
        except VoiceError as exc:
            notes.append(f"speaker similarity: {exc}")
            out["sim_target"] = out["sim_source"] = float("nan")
        out["sim_gain"] = out["sim_target"] - out["sim_source"]
        try:
            out["dnsmos"] = self.dnsmos(clip) if clip is not None else metrics.dnsmos_overall(audio)
        except ValueError as exc:
            notes.append(f"DNSMOS: {exc}")
            out["dnsmos"] = float("nan")
        mc = self.mcep(clip) if clip is not None else mcd.mcep(audio, f0)
        out["mcd"] = mcd.distortion(mc, self.mcep(oracle), f0, self.f0(oracle))
        out["mcd_ratio"] = out["mcd"] / source_mcd if source_mcd > 0 else float("nan")
        return out
