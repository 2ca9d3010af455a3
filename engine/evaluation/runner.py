"""Run every system on every selected pair and measure each output with the same code.

Systems: ``autovoice`` (the model through :class:`engine.pipeline.Converter`), ``envelope_swap`` and
``oracle`` (see :mod:`engine.evaluation.baselines`). Each gets the pair's source clip, the transpose, and
what it may know of the target: the target's *conditioning* references. Speaker similarity is scored
against the separate *scoring* references, so no system is scored on the clips it was given.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile as sf

from engine.audio import load_clip
from engine.evaluation import metrics
from engine.evaluation.baselines import EnvelopeSwap, oracle_output
from engine.evaluation.cache import MeasurementCache
from engine.evaluation.corpus import Clip, EvalCorpus, Pair, select_pairs
from engine.evaluation.measure import Measurer

if TYPE_CHECKING:
    from engine.pipeline import Converter
    from engine.voices import VoiceProfile

log = logging.getLogger(__name__)

SYSTEMS = ("autovoice", "envelope_swap", "oracle")
METRICS = ("f0_median_cents", "f0_p90_cents", "voicing", "sim_target", "sim_source", "sim_gain", "dnsmos",
           "duration_ratio", "mcd", "mcd_ratio")
PAIR_FIELDS = ("source_dnsmos", "source_mcd", "source_sim_target", "source_sim_source")


@dataclass
class EvalSettings:
    """What to run.

    Attributes:
        max_pairs: pairs to evaluate (half seen, half unseen targets); None for all.
        references: reference clips per voice for scoring similarity, and as many again for conditioning.
        seed: pair selection (the conversion itself always uses seed 0).
        systems: systems to run, from :data:`SYSTEMS`.
        audio_dir: keep every output as ``<audio_dir>/<system>/<source>__to__<target>.wav`` when set.
        voices_dir: take the model's target profiles from this voice store (e.g. the built-in voices) instead
            of building them from the conditioning references; a missing voice is an error.
    """

    max_pairs: int | None = 24
    references: int = 2
    seed: int = 0
    systems: tuple[str, ...] = SYSTEMS
    audio_dir: Path | None = None
    voices_dir: Path | None = None

    def describe(self) -> dict[str, Any]:
        d = asdict(self)
        d["audio_dir"] = str(self.audio_dir) if self.audio_dir else None
        d["voices_dir"] = str(self.voices_dir) if self.voices_dir else None
        d["systems"] = list(self.systems)
        return d


@dataclass
class VoiceRefs:
    scoring: list[Clip]
    conditioning: list[Clip]
    scoring_embedding: np.ndarray
    conditioning_embedding: np.ndarray
    median_f0: float | None
    envelope: np.ndarray | None = None


@dataclass
class Evaluation:
    corpus: EvalCorpus
    settings: EvalSettings
    measurer: Measurer
    converter: Converter | None = None
    voices: dict[str, VoiceRefs] = field(default_factory=dict)

    def refs(self, speaker: str) -> VoiceRefs:
        """A voice's references and their (cached) embeddings, measured once per run."""
        if speaker not in self.voices:
            scoring, cond = self.corpus.references(speaker, self.settings.references)
            f0s = [c.median_note_f0 for c in cond if c.median_note_f0]
            self.voices[speaker] = VoiceRefs(
                scoring=scoring, conditioning=cond, scoring_embedding=self.measurer.voice_embedding(scoring),
                conditioning_embedding=self.measurer.voice_embedding(cond),
                median_f0=float(np.median(f0s)) if f0s else None)
        return self.voices[speaker]

    def envelope(self, speaker: str) -> np.ndarray:
        refs = self.refs(speaker)
        if refs.envelope is None:
            refs.envelope = self.measurer.long_term_envelope(refs.conditioning)
        return refs.envelope

    # -- systems ------------------------------------------------------------------------------------------
    def run_system(self, system: str, pair: Pair, source: np.ndarray) -> tuple[np.ndarray, Clip | None]:
        """The system's output for ``pair`` (16 kHz), and the corpus clip it is, if it is one."""
        if system == "oracle":
            return oracle_output(pair), pair.oracle
        if system == "envelope_swap":
            swap = EnvelopeSwap(self.envelope(pair.source.speaker), self.envelope(pair.target))
            return swap.convert(source, pair.transpose), None
        if system == "autovoice":
            return self._convert(pair), None
        raise ValueError(f"unknown system {system!r}; choose from {', '.join(SYSTEMS)}")

    def profile(self, speaker: str) -> VoiceProfile:
        """The model's target voice: from the voice store if one is set, else from the conditioning references."""
        from engine.voices import VoiceProfile, VoiceStore

        if self.settings.voices_dir is not None:
            return VoiceStore(self.settings.voices_dir).get(speaker)
        refs = self.refs(speaker)
        return VoiceProfile(name=speaker, embedding=refs.conditioning_embedding, median_f0=refs.median_f0,
                            n_clips=len(refs.conditioning), source="corpus")

    def _convert(self, pair: Pair) -> np.ndarray:
        from engine.pipeline import ConvertOptions

        if self.converter is None:
            raise ValueError("the autovoice system needs a converter")
        profile = self.profile(pair.target)
        with tempfile.TemporaryDirectory(prefix="autovoice-eval-") as tmp:
            out = Path(tmp) / "out.wav"
            self.converter.convert_file(pair.source.path, out, profile,
                                        ConvertOptions(transpose=float(pair.transpose), seed=0),
                                        log_line=lambda line: log.debug("%s", line))
            return load_clip(out, metrics.SAMPLE_RATE)

    # -- one pair -----------------------------------------------------------------------------------------
    def evaluate_pair(self, pair: Pair) -> dict[str, Any]:
        m = self.measurer
        source, f0_src = m.audio(pair.source), m.f0(pair.source)
        ref_t, ref_s = self.refs(pair.target).scoring_embedding, self.refs(pair.source.speaker).scoring_embedding
        src_emb = m.embedding(pair.source)
        source_mcd = m.source_mcd(pair.source, pair.oracle)
        notes: list[str] = []
        record: dict[str, Any] = {
            "pair": pair.name, "group": pair.group, "source": pair.source.clip_id,
            "source_speaker": pair.source.speaker, "target": pair.target, "song_id": pair.source.song_id,
            "oracle": pair.oracle.clip_id, "transpose": pair.transpose, "duration": pair.source.duration,
            "source_dnsmos": m.dnsmos(pair.source), "source_mcd": source_mcd,
            "source_sim_target": metrics.speaker_similarity(src_emb, ref_t),
            "source_sim_source": metrics.speaker_similarity(src_emb, ref_s),
            "systems": {}, "notes": notes,
        }
        for system in self.settings.systems:
            t0 = time.perf_counter()
            audio, clip = self.run_system(system, pair, source)
            seconds = time.perf_counter() - t0
            if self.settings.audio_dir is not None and clip is None:
                out = self.settings.audio_dir / system / f"{pair.source.clip_id}__to__{pair.target}.wav"
                out.parent.mkdir(parents=True, exist_ok=True)
                sf.write(str(out), audio, metrics.SAMPLE_RATE, subtype="PCM_16")
            sys_notes: list[str] = []
            values = m.output(audio, clip, source=source, f0_source=f0_src, transpose=pair.transpose,
                              oracle=pair.oracle, ref_target=ref_t, ref_source=ref_s,
                              source_mcd=source_mcd, notes=sys_notes)
            notes += [f"{system}: {n}" for n in sys_notes]
            record["systems"][system] = {**values, "seconds": seconds}
        return record


def evaluate(corpus: EvalCorpus, settings: EvalSettings, *, converter: Converter | None = None,
             cache_dir: str | Path | None = None, progress: bool = True,
             on_pair: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Evaluate the selected pairs of ``corpus``; one record per pair (see :meth:`Evaluation.evaluate_pair`).

    Args:
        corpus: the parallel corpus.
        settings: pairs, references and systems.
        converter: the model's converter; required when ``"autovoice"`` is among the systems.
        cache_dir: where measurements of corpus clips are cached (None: this run only).
        progress: draw a tqdm bar on stderr.
        on_pair: called with each record as it is finished.

    Raises:
        CorpusError: no pair to evaluate, or a voice without enough references.
    """
    from tqdm import tqdm

    from engine.evaluation.corpus import CorpusError

    unknown = set(settings.systems) - set(SYSTEMS)
    if unknown:
        raise ValueError(f"unknown system(s) {', '.join(sorted(unknown))}; choose from {', '.join(SYSTEMS)}")
    if "autovoice" in settings.systems and converter is None:
        raise ValueError("the autovoice system needs a converter")
    pairs = select_pairs(corpus.pairs(), settings.max_pairs, settings.seed)
    if not pairs:
        raise CorpusError(f"{corpus.root} has no held-out sung clip with a parallel rendition by another voice")
    ev = Evaluation(corpus, settings, Measurer(MeasurementCache(cache_dir)), converter)
    records = []
    for pair in tqdm(pairs, desc="eval", unit="pair", disable=not progress):
        record = ev.evaluate_pair(pair)
        records.append(record)
        if on_pair:
            on_pair(record)
    return records
