"""The INT8 quality gate: a reduced-precision component is activated only if the whole pipeline still
sings the same notes and sounds the same.

For each candidate component the five-stage chain is run on the calibration crops with that component
swapped in and the others FP32, and compared with the all-FP32 chain: the F0 error of the output against
the F0 it was asked to sing (cents, via :func:`engine.f0.extract_f0`) may grow by at most
``quantization.max_f0_error_cents``, and its log-mel spectrum may move by at most
``quantization.max_mel_distance_db`` (mean absolute dB). Components past either limit keep FP32. The
accepted set is then checked together, dropping the worst component until it passes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

import numpy as np
import torch

from engine.backends.base import ComponentRunner
from engine.calibration import CalibrationError, examples
from engine.config import AudioConfig, Config, ModelConfig
from engine.dsp import cents, log_mel, mel_filterbank, stft_basis
from engine.export.specs import ComponentSpec
from engine.f0 import extract_f0
from engine.quantize import snr_db

DB_PER_NEPER = 10.0 / math.log(10.0)
SNR_CAP_DB = 200.0  # identical outputs report this instead of infinity (JSON has no inf)


@dataclass
class Quality:
    component: str
    snr_db: float
    f0_error_cents: float
    f0_delta_cents: float
    mel_distance_db: float
    accepted: bool = False
    reason: str = ""

    def to_dict(self) -> dict[str, object]:
        """JSON-safe: floats rounded, a non-finite measure (no voiced frame to compare) as None."""
        return {k: (round(v, 3) if math.isfinite(v) else None) if isinstance(v, float) else v
                for k, v in asdict(self).items()}


def component_snr(reference: ComponentRunner, test: ComponentRunner, data: dict[str, np.ndarray],
                  spec: ComponentSpec) -> float:
    """SNR (dB) of ``test``'s outputs against ``reference``'s over every calibration example."""
    ref = [reference(**feed) for feed in examples(data, spec)]
    out = [test(**feed) for feed in examples(data, spec)]
    return min(snr_db(np.concatenate([r.ravel() for r in ref]), np.concatenate([o.ravel() for o in out])),
               SNR_CAP_DB)


def run_chain(runners: Mapping[str, ComponentRunner], data: dict[str, np.ndarray], model: ModelConfig
              ) -> list[np.ndarray]:
    """The pipeline's five stages on every calibration crop (speaker conditioning as recorded)."""
    waves = []
    speaker_from = model.content_dim + model.pitch_dim
    for i in range(data["pitch_encoder/f0"].shape[0]):
        row = slice(i, i + 1)
        f0 = data["pitch_encoder/f0"][row]
        content = runners["content_encoder"](audio=data["content_encoder/audio"][row])
        pitch = runners["pitch_encoder"](f0=f0, voiced=data["pitch_encoder/voiced"][row])
        cond = np.concatenate([content, pitch, data["flow_decoder/conditioning"][row, speaker_from:]], axis=1)
        latent = runners["flow_decoder"](noise=data["flow_decoder/noise"][row], mask=data["flow_decoder/mask"][row],
                                         conditioning=cond.astype(np.float32),
                                         temperature=data["flow_decoder/temperature"][i])
        mel = runners["mel_projection"](latent=latent)
        wav = runners["vocoder"](mel=mel, f0=data["vocoder/f0"][row], phase0=data["vocoder/phase0"][row],
                                 noise=data["vocoder/noise"][row])
        waves.append(wav[0, 0])
    return waves


class Judge:
    """Measures waveforms against the F0 they should sing and against the FP32 pipeline's output."""

    def __init__(self, cfg: Config, audio: AudioConfig, data: dict[str, np.ndarray]) -> None:
        self.cfg, self.audio, self.data = cfg, audio, data
        self.basis = stft_basis(audio.n_fft)
        self.fb = torch.from_numpy(mel_filterbank(audio.sample_rate, audio.n_fft, audio.n_mels))

    def f0_error(self, waves: list[np.ndarray]) -> float:
        errors = []
        for i, wav in enumerate(waves):
            got = extract_f0(wav, self.audio.sample_rate, self.audio.hop_length, self.cfg.inference.f0_method,
                             self.audio.f0_min, self.audio.f0_max)
            target = self.data["vocoder/f0"][i][: got.shape[0]]
            errors.append(cents(got[: target.shape[0]], target.astype(np.float64)))
        joined = np.concatenate(errors) if errors else np.zeros(0)
        return float(np.mean(joined)) if joined.size else math.inf

    def mel_db(self, waves: list[np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(np.stack(waves).astype(np.float32))
            return log_mel(x, self.basis, self.fb, self.audio.hop_length).numpy() * DB_PER_NEPER


def gate(cfg: Config, model: ModelConfig, audio: AudioConfig, reference: Mapping[str, ComponentRunner],
         candidates: Mapping[str, ComponentRunner], data: dict[str, np.ndarray], specs: Mapping[str, ComponentSpec],
         say: Callable[[str], None]) -> dict[str, Quality]:
    """Judge each candidate against the FP32 ``reference`` runners; return one :class:`Quality` each."""
    q = cfg.quantization
    judge = Judge(cfg, audio, data)
    base = run_chain(reference, data, model)
    base_f0, base_mel = judge.f0_error(base), judge.mel_db(base)
    if not math.isfinite(base_f0):
        raise CalibrationError("the FP32 pipeline sings no voiced frame where the calibration crops ask for "
                               "one, so INT8 cannot be judged against it; calibrate with sung or spoken audio")
    say(f"FP32 reference: F0 error {base_f0:.1f} cents on {len(base)} calibration crop(s)")

    def measure(swap: Mapping[str, ComponentRunner]) -> tuple[float, float]:
        waves = run_chain({**reference, **swap}, data, model)
        return judge.f0_error(waves) - base_f0, float(np.mean(np.abs(judge.mel_db(waves) - base_mel)))

    results: dict[str, Quality] = {}
    for c, runner in candidates.items():
        snr = component_snr(reference[c], runner, data, specs[c])
        d_f0, mel = measure({c: runner})
        res = Quality(c, snr, base_f0 + d_f0, d_f0, mel)
        problems = []
        if not d_f0 <= q.max_f0_error_cents:
            problems.append(f"F0 error +{d_f0:.1f} cents > {q.max_f0_error_cents:g}")
        if not mel <= q.max_mel_distance_db:
            problems.append(f"mel distance {mel:.2f} dB > {q.max_mel_distance_db:g}")
        res.accepted, res.reason = not problems, "; ".join(problems) or "within limits"
        say(f"{c}: {runner.precision} SNR {snr:.1f} dB vs FP32; end to end F0 {d_f0:+.1f} cents, mel distance "
            f"{mel:.2f} dB: {'accepted' if res.accepted else 'REFUSED, keeping FP32 (' + res.reason + ')'}")
        results[c] = res
    accepted = [c for c, r in results.items() if r.accepted]
    while len(accepted) > 1:
        d_f0, mel = measure({c: candidates[c] for c in accepted})
        if d_f0 <= q.max_f0_error_cents and mel <= q.max_mel_distance_db:
            say(f"together ({', '.join(accepted)}): F0 {d_f0:+.1f} cents, mel distance {mel:.2f} dB: accepted")
            break
        worst = max(accepted, key=lambda c: results[c].mel_distance_db)
        accepted.remove(worst)
        results[worst].accepted = False
        results[worst].reason = f"together with the others: F0 {d_f0:+.1f} cents, mel distance {mel:.2f} dB"
        say(f"together past the limits (F0 {d_f0:+.1f} cents, mel {mel:.2f} dB): {worst} keeps FP32")
    return results
