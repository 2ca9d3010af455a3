"""Speaker embeddings: Resemblyzer's pretrained 256-d encoder (its weights ship inside the wheel)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import numpy as np

from engine.errors import VoiceError

log = logging.getLogger(__name__)
EMBEDDING_DIM = 256
SAMPLE_RATE = 16000  # Resemblyzer's rate
SILENT_PEAK = 1e-4  # below -80 dBFS everywhere: nothing to embed
MIN_SPEECH_SECONDS = 0.5


class SpeakerEncoder:
    """Averaged, L2-normalised utterance embeddings of one or more 16 kHz clips."""

    _lock = threading.Lock()
    _shared: SpeakerEncoder | None = None

    def __init__(self, device: str = "cpu") -> None:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # resemblyzer imports pkg_resources and librosa noisily
            from resemblyzer import VoiceEncoder, preprocess_wav

        self._encoder = VoiceEncoder(device, verbose=False)
        self._preprocess = preprocess_wav

    @classmethod
    def shared(cls) -> SpeakerEncoder:
        """One encoder per process (loading it costs seconds; it is stateless)."""
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def embed_clip(self, clip: np.ndarray) -> np.ndarray:
        clip = np.asarray(clip, dtype=np.float32)
        # The encoder's level normalisation divides by the clip's RMS: say what is wrong before it warns.
        if clip.shape[0] < MIN_SPEECH_SECONDS * SAMPLE_RATE:
            raise VoiceError(f"reference clip is {clip.shape[0] / SAMPLE_RATE:.2f} s long; a voice needs at least "
                             f"{MIN_SPEECH_SECONDS} s of it")
        if not np.any(np.abs(clip) > SILENT_PEAK):
            raise VoiceError("reference clip is silent; use a recording of the voice")
        wav = self._preprocess(clip, SAMPLE_RATE)
        if wav.shape[0] < MIN_SPEECH_SECONDS * SAMPLE_RATE:
            raise VoiceError(f"reference clip has less than {MIN_SPEECH_SECONDS} s of voice after trimming "
                             "silence; use a longer recording")
        return np.asarray(self._encoder.embed_utterance(wav), dtype=np.float32)

    def embed_clips(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        if not clips:
            raise VoiceError("a voice needs at least one reference clip")
        mean = np.mean([self.embed_clip(c) for c in clips], axis=0)
        return (mean / max(float(np.linalg.norm(mean)), 1e-8)).astype(np.float32)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings."""
    return float(np.dot(a, b) / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-8))
