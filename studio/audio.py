"""Audio in the studio without the engine: probing, decoding and encoding through ffmpeg (Gradio needs it too).

The studio checks uploads before it enqueues anything, so a text file named ``.wav`` gets one clear
message at once instead of a failed job; the worker checks again (it trusts nothing from Redis).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from studio.errors import StudioError

PROBE_TIMEOUT = 30.0
DECODE_TIMEOUT = 300.0
MIN_SECONDS = 0.1
ENCODERS = {"wav": ["-c:a", "pcm_s16le"], "flac": ["-c:a", "flac"], "ogg": ["-c:a", "libvorbis", "-q:a", "6"],
            "mp3": ["-c:a", "libmp3lame", "-q:a", "2"]}


@dataclass(frozen=True)
class AudioProbe:
    """What ffprobe says about an audio file."""

    path: Path
    seconds: float
    sample_rate: int
    channels: int
    codec: str
    container: str


def _tool(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        raise StudioError(f"{name} is not installed: the studio needs ffmpeg to read and write audio "
                          "(apt-get install ffmpeg)")
    return exe


def _last_line(text: str, path: Path) -> str:
    """ffmpeg's last message, without the (temporary) path it starts with."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    line = lines[-1] if lines else "no details"
    return line.replace(f"{path}: ", "").replace(str(path), path.name)


def probe(path: str | Path, max_seconds: float | None = None, label: str | None = None) -> AudioProbe:
    """Describe an audio file, refusing anything that is not usable audio.

    Args:
        path: the file.
        max_seconds: refuse longer audio.
        label: the name used in messages (default: the file name).

    Raises:
        StudioError: missing, empty, not audio, no audio stream, too short or too long; the message starts
            with ``label``.
    """
    path = Path(path)
    name = label or path.name
    if not path.is_file():
        raise StudioError(f"{name}: file not found")
    if path.stat().st_size == 0:
        raise StudioError(f"{name}: the file is empty")
    cmd = [_tool("ffprobe"), "-v", "error", "-show_entries",
           "stream=codec_type,codec_name,sample_rate,channels,duration:format=duration,format_name",
           "-of", "json", str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PROBE_TIMEOUT, check=False)
    if proc.returncode != 0:
        raise StudioError(f"{name} is not an audio file (it could not be decoded: {_last_line(proc.stderr, path)})")
    info = json.loads(proc.stdout or "{}")
    streams = [s for s in info.get("streams", []) if s.get("codec_type") == "audio"]
    if not streams:
        raise StudioError(f"{name} is not an audio file (it holds no audio stream)")
    s = streams[0]
    fmt = info.get("format", {})
    seconds = _float(s.get("duration")) or _float(fmt.get("duration")) or 0.0
    result = AudioProbe(path=path, seconds=seconds, sample_rate=int(s.get("sample_rate") or 0),
                        channels=int(s.get("channels") or 0), codec=str(s.get("codec_name", "?")),
                        container=str(fmt.get("format_name", "?")))
    if result.sample_rate <= 0 or result.channels <= 0:
        raise StudioError(f"{name} is not usable audio (no sample rate or channels)")
    if seconds < MIN_SECONDS:
        raise StudioError(f"{name} is too short ({seconds:.2f} s): give at least {MIN_SECONDS} s of audio")
    if max_seconds is not None and seconds > max_seconds:
        raise StudioError(f"{name} is too long ({seconds / 60:.1f} min): the limit is {max_seconds / 60:.0f} min "
                          "(inference.max_input_seconds)")
    return result


def _float(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def decode(path: str | Path, sample_rate: int, channels: int = 1, max_seconds: float | None = None) -> np.ndarray:
    """Samples as float32 ``[n]`` (mono) or ``[n, channels]``, resampled by ffmpeg.

    Raises:
        StudioError: ffmpeg could not decode the file.
    """
    cmd = [_tool("ffmpeg"), "-v", "error", "-nostdin", "-i", str(path)]
    if max_seconds is not None:
        cmd += ["-t", f"{max_seconds:.3f}"]
    cmd += ["-f", "f32le", "-ac", str(channels), "-ar", str(int(sample_rate)), "pipe:1"]
    proc = subprocess.run(cmd, capture_output=True, timeout=DECODE_TIMEOUT, check=False)
    if proc.returncode != 0:
        detail = _last_line(proc.stderr.decode("utf-8", "replace"), Path(path))
        raise StudioError(f"{Path(path).name} could not be decoded: {detail}")
    x = np.frombuffer(proc.stdout, dtype="<f4").astype(np.float32)
    return x if channels == 1 else x[: len(x) // channels * channels].reshape(-1, channels)


def encode(samples: np.ndarray, sample_rate: int, dest: str | Path, fmt: str) -> Path:
    """Write float samples (``[n]`` or ``[n, channels]``) to ``dest`` as ``fmt`` (wav, flac, ogg, mp3).

    Raises:
        StudioError: unknown format, or ffmpeg failed.
    """
    if fmt not in ENCODERS:
        raise StudioError(f"output format {fmt!r} is not supported; use one of {', '.join(ENCODERS)}")
    x = np.asarray(samples, dtype=np.float32)
    channels = 1 if x.ndim == 1 else x.shape[1]
    dest = Path(dest)
    tmp = dest.with_name(f".{dest.stem}.partial{dest.suffix}")
    cmd = [_tool("ffmpeg"), "-v", "error", "-nostdin", "-y", "-f", "f32le", "-ac", str(channels),
           "-ar", str(int(sample_rate)), "-i", "pipe:0", *ENCODERS[fmt], "-f", _muxer(fmt), str(tmp)]
    proc = subprocess.run(cmd, input=np.ascontiguousarray(x).astype("<f4").tobytes(), capture_output=True,
                          timeout=DECODE_TIMEOUT, check=False)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise StudioError(f"could not write {dest.name}: {_last_line(proc.stderr.decode('utf-8', 'replace'), tmp)}")
    tmp.replace(dest)
    return dest


def _muxer(fmt: str) -> str:
    return {"wav": "wav", "flac": "flac", "ogg": "ogg", "mp3": "mp3"}[fmt]


def mix(vocal: np.ndarray, backing: np.ndarray, backing_gain_db: float = 0.0) -> np.ndarray:
    """The vocal (mono) over a backing track (``[n, 2]`` or mono), as stereo, peak-limited to 0.99.

    The result is as long as the longer of the two; the shorter is padded with silence.
    """
    v = np.asarray(vocal, dtype=np.float32)
    b = np.asarray(backing, dtype=np.float32)
    v2 = np.repeat(v[:, None], 2, axis=1) if v.ndim == 1 else v[:, :2]
    b2 = np.repeat(b[:, None], 2, axis=1) if b.ndim == 1 else b[:, :2]
    n = max(len(v2), len(b2))
    out = np.zeros((n, 2), dtype=np.float32)
    out[: len(v2)] += v2
    out[: len(b2)] += b2 * np.float32(10.0 ** (backing_gain_db / 20.0))
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    return out * np.float32(0.99 / peak) if peak > 0.99 else out
