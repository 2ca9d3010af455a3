"""File-to-file conversion: stream the input in chunks through the five components, stream the output.

Two passes over the input, neither holding it whole: the first measures loudness and F0 per frame (small
arrays: 100 frames a second); the second converts chunk by chunk and writes as it goes. Peak memory is
set by the chunk length, not the file's length. (An input no longer than one analysis block, 30 s, is
read whole by the first pass anyway; that model-rate copy serves the second pass too.)
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.audio import AtomicAudioWriter, AudioSource, StreamingResampler
from engine.chunking import Chunk, crossfade_weights, plan_chunks
from engine.config import Config
from engine.errors import AudioInputError, Cancelled
from engine.f0 import extract_f0, median_f0, suggest_transpose, transpose
from engine.models.vocoder import frame_start_phases
from engine.noise import positional_noise
from engine.options import MAX_OUTPUT_RATE, MIN_OUTPUT_RATE, ConvertOptions, check_options
from engine.runners import Runners
from engine.voices import VoiceProfile

log = logging.getLogger(__name__)

ANALYSIS_BLOCK_SECONDS = 30.0
ANALYSIS_CONTEXT_FRAMES = 20      # F0 trackers need a little audio either side of a block
CONTEXT_FRAMES = 40               # model context each side of a chunk (covers the convs' receptive field)
SILENT_DBFS = -60.0               # an input whose loudest frame is below this is refused as silent
ENVELOPE_FRAMES = 5               # loudness-envelope smoothing (50 ms)
MAX_GAIN = 30.0
PEAK_CEILING = 0.79               # -2 dBFS: headroom for the output resampler's inter-sample peaks

ProgressFn = Callable[[str, int, int], None]


@dataclass
class ConvertResult:
    output: Path
    input_seconds: float
    sample_rate: int
    samples: int
    transpose: float
    source_median_f0: float | None
    chunks: int
    seconds: float
    components: dict[str, str] = field(default_factory=dict)
    f0_source: np.ndarray | None = None   # per frame, Hz (0 = unvoiced), before transpose
    f0_target: np.ndarray | None = None   # per frame, after transpose: what the output sings

    @property
    def rtf(self) -> float:
        return self.seconds / max(self.input_seconds, 1e-9)


@dataclass
class Analysis:
    energy_db: np.ndarray  # per frame
    rms: np.ndarray        # per frame, linear
    f0: np.ndarray         # per frame, Hz


def _frame_rms(x: np.ndarray, hop: int) -> np.ndarray:
    n = x.shape[0] // hop
    frames = x[: n * hop].reshape(n, hop)
    return np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    if width <= 1 or x.size == 0:
        return x
    kernel = np.ones(width) / width
    padded = np.pad(x, (width // 2, width - 1 - width // 2), mode="edge")
    return np.convolve(padded, kernel, mode="valid")


class Converter:
    """Converts files with a set of component runners (any backend) and the config's settings."""

    def __init__(self, cfg: Config, runners: Runners) -> None:
        self.cfg = cfg
        self.runners = runners
        self.sr = cfg.audio.sample_rate
        self.hop = cfg.audio.hop_length

    # -- pass 1 -------------------------------------------------------------------------------------------
    def analyse(self, src: AudioSource, method: str, progress: ProgressFn | None = None) -> Analysis:
        hop, sr = self.hop, self.sr
        n_frames = math.ceil(src.length / hop)
        if n_frames == 0:
            raise AudioInputError(f"{src.info.path.name}: {src.info.frames} sample(s) at {src.info.sample_rate} Hz "
                                  "is too short to convert")
        block = int(ANALYSIS_BLOCK_SECONDS * sr) // hop  # frames
        ctx = ANALYSIS_CONTEXT_FRAMES
        rms = np.zeros(n_frames)
        f0 = np.zeros(n_frames)
        total = math.ceil(n_frames / block)
        for i, start in enumerate(range(0, n_frames, block)):
            stop = min(start + block, n_frames)
            a, b = max(start - ctx, 0), stop + ctx
            audio = src.read(a * hop, b * hop)
            rms[start:stop] = _frame_rms(audio, hop)[start - a: stop - a]
            f0[start:stop] = extract_f0(audio, sr, hop, method, self.cfg.audio.f0_min,
                                        self.cfg.audio.f0_max)[start - a: stop - a]
            if progress:
                progress("analysing", i + 1, total)
        energy_db = 20 * np.log10(rms)
        if float(energy_db.max()) < SILENT_DBFS:
            mixed = f" once its {src.info.channels} channels are mixed to mono" if src.info.channels > 1 else ""
            raise AudioInputError(f"{src.info.path.name}: the input is silent{mixed} (loudest frame "
                                  f"{float(energy_db.max()):.0f} dBFS)")
        return Analysis(energy_db=energy_db, rms=rms, f0=f0)

    # -- one chunk ----------------------------------------------------------------------------------------
    def _convert_span(self, audio: np.ndarray, f0: np.ndarray, phase0: float, speaker: np.ndarray,
                      a: int, seed: int, temperature: float) -> np.ndarray:
        """Model-rate waveform for frames ``[a, a + len(f0))`` (audio holds exactly those frames)."""
        r = self.runners
        n = f0.shape[0]
        voiced = (f0 > 0).astype(np.float32)
        content = r.content_encoder(audio=audio[None, :])
        pitch = r.pitch_encoder(f0=f0[None, :].astype(np.float32), voiced=voiced[None, :])
        spk = np.broadcast_to(speaker[None, :, None], (1, speaker.shape[0], n))
        cond = np.concatenate([content, pitch, spk], axis=1).astype(np.float32)
        latent_dim = self.cfg.model.latent_dim
        # At temperature 0 the flow's noise is multiplied by 0: zeros give the same output without drawing it.
        noise = (positional_noise(seed, "flow", a, a + n, rows=latent_dim)[None] if temperature != 0.0
                 else np.zeros((1, latent_dim, n), np.float32))
        latent = r.flow_decoder(noise=noise, mask=np.ones((1, 1, n), np.float32), conditioning=cond,
                                temperature=np.array([temperature], np.float32))
        mel = r.mel_projection(latent=latent)
        wav = r.vocoder(mel=mel, f0=f0[None, :].astype(np.float32),
                        phase0=np.array([[phase0]], np.float32),
                        noise=positional_noise(seed, "vocoder", a * self.hop, (a + n) * self.hop)[None])
        return wav[0, 0]

    def _restore_loudness(self, y: np.ndarray, target_rms: np.ndarray) -> np.ndarray:
        out_rms = _frame_rms(y, self.hop)
        gain = _smooth(target_rms, ENVELOPE_FRAMES) / (_smooth(out_rms, ENVELOPE_FRAMES) + 1e-4)
        gain = np.clip(gain, 0.0, MAX_GAIN)
        # Restoring the input's RMS must not push a peaky output over full scale (the writer would clip):
        # frame i ramps from gain[i] to gain[i + 1], so both stay under frame i's limit.
        peak = np.abs(y[: gain.size * self.hop]).reshape(gain.size, self.hop).max(axis=1)
        limit = PEAK_CEILING / np.maximum(peak, 1e-9)
        gain = np.minimum(gain, np.minimum(limit, np.concatenate([limit[:1], limit[:-1]])))
        nxt = np.concatenate([gain[1:], gain[-1:]])
        ramp = np.arange(self.hop) / self.hop
        per_sample = (gain[:, None] + (nxt - gain)[:, None] * ramp[None, :]).reshape(-1)
        return (y * per_sample).astype(np.float32)

    # -- the whole file -----------------------------------------------------------------------------------
    def convert_file(self, input_path: str | Path, output_path: str | Path, voice: VoiceProfile,
                     options: ConvertOptions | None = None, progress: ProgressFn | None = None,
                     log_line: Callable[[str], None] | None = None,
                     should_stop: Callable[[], bool] | None = None) -> ConvertResult:
        """Convert ``input_path`` to ``voice``; the output appears only when complete.

        Raises:
            AudioInputError: the input is unusable (nothing is written).
            Cancelled: ``should_stop()`` returned true between chunks (nothing is written).
        """
        opts = options or ConvertOptions()
        check_options(opts)
        inf = self.cfg.inference
        method = opts.f0_method or inf.f0_method
        seed = inf.seed if opts.seed is None else int(opts.seed)
        temperature = inf.temperature if opts.temperature is None else float(opts.temperature)
        say = log_line or (lambda line: log.info("%s", line))
        t0 = time.perf_counter()
        hop = self.hop
        # An input within one analysis block is read whole by the first pass: keep it for the second.
        with AudioSource(input_path, self.sr, inf.max_input_seconds, ANALYSIS_BLOCK_SECONDS) as src:
            info = src.info
            out_sr = info.sample_rate if opts.sample_rate is None else opts.sample_rate
            if not MIN_OUTPUT_RATE <= out_sr <= MAX_OUTPUT_RATE:
                raise AudioInputError(f"output sample rate {out_sr} Hz is outside {MIN_OUTPUT_RATE}-"
                                      f"{MAX_OUTPUT_RATE} Hz; give --sample-rate")
            say(f"input {info.path.name}: {info.duration:.2f} s, {info.sample_rate} Hz, {info.channels} ch")
            analysis = self.analyse(src, method, progress)
            src_median = median_f0(analysis.f0)
            if opts.transpose == "auto":
                semitones = float(suggest_transpose(src_median, voice.median_f0))
                say(f"transpose auto: {semitones:+.0f} semitones (source median "
                    f"{src_median or 0:.1f} Hz -> voice {voice.name} median {voice.median_f0 or 0:.1f} Hz)")
            else:
                semitones = float(opts.transpose)
            f0 = transpose(analysis.f0, semitones)
            phases = frame_start_phases(f0, hop, self.sr)
            max_frames = int(inf.chunk_seconds * self.sr) // hop
            overlap = int(inf.overlap_seconds * self.sr) // hop
            chunks = plan_chunks(analysis.energy_db, max_frames, overlap, inf.silence_db)
            say(f"{len(chunks)} chunk(s), f0 method {method}, seed {seed}, temperature {temperature}")
            target = int(round(info.frames * out_sr / info.sample_rate))
            writer = AtomicAudioWriter(output_path, out_sr, opts.format)
            try:
                self._run_chunks(src, chunks, analysis, f0, phases, voice.embedding, seed, temperature,
                                 writer, target, StreamingResampler(self.sr, out_sr), progress, say, should_stop)
                writer.commit()
            except BaseException:
                writer.abort()
                raise
        seconds = time.perf_counter() - t0
        say(f"done: {info.duration:.2f} s of audio in {seconds:.2f} s (RTF {seconds / info.duration:.3f})")
        return ConvertResult(output=Path(output_path), input_seconds=info.duration, sample_rate=out_sr,
                             samples=target, transpose=semitones, source_median_f0=src_median,
                             chunks=len(chunks), seconds=seconds, components=self.runners.describe(),
                             f0_source=analysis.f0, f0_target=f0)

    def _run_chunks(self, src: AudioSource, chunks: list[Chunk], analysis: Analysis, f0: np.ndarray,
                    phases: np.ndarray, speaker: np.ndarray, seed: int, temperature: float,
                    writer: AtomicAudioWriter, target: int, resampler: StreamingResampler,
                    progress: ProgressFn | None, say: Callable[[str], None],
                    should_stop: Callable[[], bool] | None) -> None:
        hop, n_frames = self.hop, f0.shape[0]
        model_total = src.length  # model-rate samples to emit
        emitted = 0
        pending = np.zeros(0, dtype=np.float32)

        def emit(block: np.ndarray) -> None:
            nonlocal emitted
            block = block[: max(model_total - emitted, 0)]
            emitted += block.shape[0]
            out = resampler.push(block)
            writer.write(out[: max(target - writer.written, 0)])

        for i, chunk in enumerate(chunks):
            if should_stop and should_stop():
                raise Cancelled("conversion cancelled")
            a, b = max(chunk.start - CONTEXT_FRAMES, 0), min(chunk.stop + CONTEXT_FRAMES, n_frames)
            audio = src.read(a * hop, b * hop)
            wav = self._convert_span(audio, f0[a:b], float(phases[a]), speaker, a, seed, temperature)
            y = wav[(chunk.start - a) * hop: (chunk.stop - a) * hop]
            y = self._restore_loudness(y, analysis.rms[chunk.start: chunk.stop])
            if pending.size:
                w = crossfade_weights(pending.shape[0])
                y[: pending.shape[0]] = pending * (1.0 - w) + y[: pending.shape[0]] * w
            next_start = chunks[i + 1].start if i + 1 < len(chunks) else chunk.stop
            keep = (next_start - chunk.start) * hop
            emit(y[:keep])
            pending = y[keep:].copy()
            say(f"chunk {i + 1}/{len(chunks)}: {chunk.start * hop / self.sr:.2f}-{chunk.stop * hop / self.sr:.2f} s")
            if progress:
                progress("converting", i + 1, len(chunks))
        tail = resampler.flush()
        writer.write(tail[: max(target - writer.written, 0)])
        if writer.written < target:
            writer.write(np.zeros(target - writer.written, dtype=np.float32))
