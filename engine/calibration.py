"""INT8 calibration sets: real inputs of every component, recorded from the PyTorch pipeline.

``autovoice calibrate DIR_OR_ZIP -o calibration.npz`` validates the audio, cuts fixed-length crops of
voiced audio from it (never zero padding: a padded crop teaches the quantizer silence), runs the PyTorch
components over each crop exactly as the conversion pipeline does, and stores every component's inputs
under ``component/input_name`` keys, one row per crop. The file holds numeric arrays only and is read
with ``allow_pickle=False``; a file with object arrays is refused.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from engine.audio import load_clip, probe
from engine.backends.torch_backend import TorchRunner
from engine.checkpoint import file_sha256
from engine.config import AudioConfig, Config, ModelConfig
from engine.errors import AudioInputError, AutoVoiceError
from engine.export.safe_zip import extract_zip
from engine.export.specs import ComponentSpec
from engine.f0 import extract_f0
from engine.models.inference import COMPONENT_IO
from engine.models.vocoder import frame_start_phases
from engine.noise import positional_noise
from engine.paths import check_new_file
from engine.voices import AUDIO_SUFFIXES, VoiceProfile, default_store

log = logging.getLogger(__name__)

MAX_FILES = 500
MAX_FILE_SECONDS = 600.0
DEFAULT_MAX_CROPS = 48
MAX_CROPS_PER_FILE = 8
MIN_VOICED_FRACTION = 0.6
META_KEY = "meta/info"
MIN_EXAMPLE_FRAMES = 50  # 0.5 s: the F0 tracker that judges INT8 needs several of its windows


class CalibrationError(AutoVoiceError):
    """A calibration source or calibration file that cannot be used."""


def _audio_files(source: Path, workdir: Path, rejected: list[dict[str, str]]) -> list[tuple[Path, str]]:
    """The audio files under a folder or in a zip, with their names relative to it; others are rejected."""
    if not source.exists():
        raise CalibrationError(f"calibration source not found: {source}")
    if source.is_file():
        if not zipfile.is_zipfile(source):
            raise CalibrationError(f"{source.name}: expected a folder or a .zip of audio files")
        root = workdir / "zip"
        extract_zip(source, root)
    else:
        root = source
    files = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink()):
        rel = path.relative_to(root).as_posix()
        if any(part.startswith(".") or part == "__MACOSX" for part in path.relative_to(root).parts):
            continue
        if path.is_symlink():
            rejected.append({"file": rel, "reason": "symbolic link; not followed"})
        elif path.suffix.lower() not in AUDIO_SUFFIXES:
            rejected.append({"file": rel, "reason": f"not an audio file ({path.suffix or 'no suffix'})"})
        else:
            files.append((path, rel))
    if len(files) > MAX_FILES:
        raise CalibrationError(f"{len(files)} audio files is more than the limit of {MAX_FILES}")
    return files


def _validate(path: Path, cfg: Config, sr: int) -> np.ndarray:
    """The clip at the model rate ``sr``, or :class:`AudioInputError` with the reason it is unusable."""
    info = probe(path, MAX_FILE_SECONDS)
    if info.sample_rate < sr:
        raise AudioInputError(f"sample rate {info.sample_rate} Hz is below the model's {sr} Hz")
    if info.duration < cfg.quantization.crop_seconds:
        raise AudioInputError(f"{info.duration:.2f} s is shorter than one {cfg.quantization.crop_seconds:g} s crop")
    clip = load_clip(path, sr, MAX_FILE_SECONDS)
    if float(np.max(np.abs(clip))) < 1e-3:
        raise AudioInputError("silent")
    return clip


def voiced_crop_starts(f0: np.ndarray, crop_frames: int, limit: int = MAX_CROPS_PER_FILE) -> list[int]:
    """Start frames of non-overlapping crops inside the track that are mostly voiced, best first."""
    starts = range(0, f0.shape[0] - crop_frames + 1, crop_frames)
    scored = [(float(np.mean(f0[s: s + crop_frames] > 0)), s) for s in starts]
    good = sorted((-v, s) for v, s in scored if v >= MIN_VOICED_FRACTION)
    return sorted(s for _, s in good[:limit])


def _speakers(cfg: Config, voices: Sequence[VoiceProfile] | None) -> list[VoiceProfile]:
    voices = list(voices) if voices is not None else default_store(cfg).profiles()
    if not voices:
        raise CalibrationError("calibration needs at least one voice profile for the speaker conditioning: add "
                               "one with `autovoice voices add NAME REF.wav`")
    return voices


def _crop_inputs(runners: dict[str, TorchRunner], cfg: Config, model: ModelConfig, audio_cfg: AudioConfig,
                 audio: np.ndarray, f0: np.ndarray, phase0: float, speaker: np.ndarray,
                 start: int) -> dict[str, np.ndarray]:
    """Every component's inputs for one crop starting at frame ``start``, as the pipeline computes them."""
    hop, n = audio_cfg.hop_length, f0.shape[0]
    seed, temperature = cfg.inference.seed, cfg.inference.temperature
    f0 = f0[None].astype(np.float32)
    voiced = (f0 > 0).astype(np.float32)
    rec = {"content_encoder/audio": audio[None].astype(np.float32), "pitch_encoder/f0": f0,
           "pitch_encoder/voiced": voiced}
    content = runners["content_encoder"](audio=rec["content_encoder/audio"])
    pitch = runners["pitch_encoder"](f0=f0, voiced=voiced)
    spk = np.broadcast_to(speaker[None, :, None], (1, speaker.shape[0], n))
    flow = {"noise": positional_noise(seed, "flow", start, start + n, rows=model.latent_dim)[None],
            "mask": np.ones((1, 1, n), np.float32),
            "conditioning": np.concatenate([content, pitch, spk], axis=1).astype(np.float32),
            "temperature": np.array([temperature], np.float32)}
    latent = runners["flow_decoder"](**flow)
    mel = runners["mel_projection"](latent=latent)
    rec.update({f"flow_decoder/{k}": v for k, v in flow.items()})
    rec.update({"mel_projection/latent": latent, "vocoder/mel": mel, "vocoder/f0": f0,
                "vocoder/phase0": np.array([[phase0]], np.float32),
                "vocoder/noise": positional_noise(seed, "vocoder", start * hop, (start + n) * hop)[None]})
    return rec


def make_calibration_set(cfg: Config, source: str | Path, output: str | Path, *, checkpoint: str | Path | None = None,
                         voices: Sequence[VoiceProfile] | None = None, max_crops: int = DEFAULT_MAX_CROPS,
                         log_line: Callable[[str], None] | None = None,
                         progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Build ``output`` (an NPZ) from the audio in folder or zip ``source``.

    Returns:
        A JSON-safe summary: ``files`` (accepted), ``crops``, ``total_seconds`` (accepted audio),
        ``calibrated_seconds``, ``rejected`` (``[{"file", "reason"}]``), ``voices``, ``sha256``, ``output``.

    Raises:
        CalibrationError: the source is unusable (unsafe zip, too many files, no usable voiced audio).
    """
    say = log_line or (lambda line: log.info("%s", line))
    if max_crops < 1:
        raise CalibrationError(f"the most crops to keep must be at least 1, not {max_crops}")
    out = check_new_file(output, "calibration.npz", CalibrationError)
    rejected: list[dict[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="autovoice-calib-") as tmp:
        files = _audio_files(Path(source), Path(tmp), rejected)  # an unsafe zip fails here, before any work
        from engine.pretrained.attach import load_configured_checkpoint

        ckpt = load_configured_checkpoint(cfg, checkpoint)
        speakers = _speakers(cfg, voices)
        model_cfg, audio_cfg = ckpt.model.model_config, ckpt.model.audio_config
        hop, sr = audio_cfg.hop_length, audio_cfg.sample_rate
        crop_frames = int(round(cfg.quantization.crop_seconds * sr / hop))
        plans: list[tuple[str, np.ndarray, np.ndarray, list[int]]] = []
        total_seconds = 0.0
        for i, (path, name) in enumerate(files):
            if progress:
                progress("validating", i + 1, len(files))
            try:
                clip = _validate(path, cfg, sr)
            except AudioInputError as exc:
                rejected.append({"file": name, "reason": str(exc).removeprefix(f"{path.name}: ")})
                continue
            f0 = extract_f0(clip, sr, hop, cfg.inference.f0_method, audio_cfg.f0_min, audio_cfg.f0_max)
            starts = voiced_crop_starts(f0, crop_frames)
            if not starts:
                rejected.append({"file": name, "reason": f"no {cfg.quantization.crop_seconds:g} s stretch is "
                                 f"{MIN_VOICED_FRACTION:.0%} voiced"})
                continue
            total_seconds += clip.shape[0] / sr
            plans.append((name, clip, f0, starts))
    for r in rejected:
        say(f"rejected {r['file']}: {r['reason']}")
    if not plans:
        raise CalibrationError(f"no usable calibration audio in {Path(source).name}: "
                               f"{len(rejected)} file(s) rejected; give sung or spoken recordings of at least "
                               f"{cfg.quantization.crop_seconds:g} s")
    # Round-robin over files, so a few long files do not crowd out the rest.
    picks = [(p, s) for k in range(MAX_CROPS_PER_FILE) for p in plans if k < len(p[3]) for s in [p[3][k]]]
    picks = picks[:max_crops]
    runners = {c: TorchRunner(ckpt.model, c) for c in COMPONENT_IO}
    rows: dict[str, list[np.ndarray]] = {}
    for i, ((_, clip, f0, _), start) in enumerate(picks):
        phases = frame_start_phases(f0, hop, sr)
        audio = clip[start * hop: (start + crop_frames) * hop]
        speaker = speakers[i % len(speakers)].embedding
        rec = _crop_inputs(runners, cfg, model_cfg, audio_cfg, audio, f0[start: start + crop_frames],
                           float(phases[start]), speaker, start)
        for k, v in rec.items():
            rows.setdefault(k, []).append(v)
        if progress:
            progress("recording", i + 1, len(picks))
    arrays = {k: np.concatenate(v, axis=0) if v[0].ndim > 1 else np.stack(v) for k, v in rows.items()}
    meta = {"checkpoint_sha256": ckpt.sha256, "sample_rate": sr, "hop_length": hop, "crops": len(picks),
            "crop_seconds": cfg.quantization.crop_seconds, "files": [p[0] for p in plans],
            "voices": [v.name for v in speakers]}
    arrays[META_KEY] = np.array(json.dumps(meta))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_name(f".{out.name}.{os.getpid()}.partial")
    try:
        with open(tmp_out, "wb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]
        os.replace(tmp_out, out)
    finally:
        tmp_out.unlink(missing_ok=True)
    summary = {"output": str(out), "files": len(plans), "crops": len(picks), "total_seconds": round(total_seconds, 3),
               "calibrated_seconds": round(len(picks) * crop_frames * hop / sr, 3), "rejected": rejected,
               "voices": meta["voices"], "sha256": file_sha256(out)}
    say(f"recorded {out.name}: {len(picks)} crop(s) of {cfg.quantization.crop_seconds:g} s from "
        f"{len(plans)} file(s) ({total_seconds:.1f} s of audio), {len(rejected)} rejected")
    return summary


def load_calibration(path: str | Path, specs: dict[str, ComponentSpec] | None = None, hop: int | None = None,
                     checkpoint_sha256: str | None = None) -> dict[str, np.ndarray]:
    """Read a calibration NPZ safely (``allow_pickle=False``) and check its keys, dtypes and shapes.

    Raises:
        CalibrationError: not an NPZ, object arrays (pickled data), missing keys, wrong shapes, or made
            from another checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CalibrationError(f"calibration file not found: {path}")
    if not zipfile.is_zipfile(path):  # np.load would read anything else as a .npy array or as pickle
        raise CalibrationError(f"{path.name}: not an NPZ archive; make a calibration set with `autovoice calibrate`")
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object" in str(exc).lower():
            raise CalibrationError(f"{path.name}: contains object arrays (pickled Python objects); refused. "
                                   "A calibration set holds numeric arrays only: make one with "
                                   "`autovoice calibrate`") from None
        raise CalibrationError(f"{path.name}: not a readable NPZ ({exc})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise CalibrationError(f"{path.name}: not a calibration NPZ ({exc})") from None
    meta = _meta(path, data.pop(META_KEY, None))
    if checkpoint_sha256 and meta.get("checkpoint_sha256") != checkpoint_sha256:
        raise CalibrationError(f"{path.name} was recorded with checkpoint {str(meta.get('checkpoint_sha256'))[:12]}, "
                               f"the checkpoint in use is {checkpoint_sha256[:12]}; run `autovoice calibrate` again")
    expected = {f"{c}/{n}" for c, (ins, _) in COMPONENT_IO.items() for n in ins}
    missing = sorted(expected - set(data))
    if missing:
        raise CalibrationError(f"{path.name}: not an AutoVoice calibration set (missing {', '.join(missing[:4])})")
    counts = {v.shape[0] if v.ndim else -1 for v in data.values()}
    for key, value in data.items():
        if value.dtype != np.float32:
            raise CalibrationError(f"{path.name}: {key} must be float32, is {value.dtype}")
        if not np.all(np.isfinite(value)):
            raise CalibrationError(f"{path.name}: {key} holds NaN or infinite values")
    if len(counts) != 1 or counts.pop() < 1:
        raise CalibrationError(f"{path.name}: arrays disagree on the number of examples")
    f0 = data["pitch_encoder/f0"]
    if f0.ndim != 2 or f0.shape[1] < MIN_EXAMPLE_FRAMES:
        raise CalibrationError(f"{path.name}: pitch_encoder/f0 has shape {f0.shape}; each example needs at least "
                               f"{MIN_EXAMPLE_FRAMES} frames")
    if not np.any(f0 > 0):
        raise CalibrationError(f"{path.name}: no example has a voiced frame (F0 is 0 throughout): silence cannot "
                               "calibrate a voice model")
    if specs is not None and hop is not None:
        frames = f0.shape[1]
        for c, spec in specs.items():
            for ts in spec.inputs:
                shape = ts.shape(1, frames, hop)
                want = shape[1:] if ts.batched else shape
                got = tuple(data[f"{c}/{ts.name}"].shape[1:])
                if got != want:
                    raise CalibrationError(f"{path.name}: {c}/{ts.name} has shape {got} per example, the model "
                                           f"needs {want}: it was recorded for another model")
    return data


def _meta(path: Path, raw: np.ndarray | None) -> dict:
    """The set's ``meta/info`` record (a JSON object), or ``{}`` where the set has none."""
    if raw is None:
        return {}
    try:
        meta = json.loads(str(raw)) if raw.dtype.kind == "U" and raw.ndim == 0 else None
    except json.JSONDecodeError:
        meta = None
    if not isinstance(meta, dict):
        raise CalibrationError(f"{path.name}: {META_KEY} is not the JSON record `autovoice calibrate` writes")
    return meta


def examples(data: dict[str, np.ndarray], spec: ComponentSpec) -> Iterator[dict[str, np.ndarray]]:
    """One ``{input_name: array}`` feed per calibration example (batch of 1) for ``spec``'s component."""
    n = data[f"{spec.component}/{spec.inputs[0].name}"].shape[0]
    for i in range(n):
        yield {ts.name: np.ascontiguousarray(data[f"{spec.component}/{ts.name}"][i: i + 1] if ts.batched
                                             else data[f"{spec.component}/{ts.name}"][i]) for ts in spec.inputs}

