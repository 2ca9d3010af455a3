"""Audio input and output without loading whole files: validated sources, exact resampling, atomic writes.

Everything here works on blocks, so peak memory does not grow with the length of the input.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.errors import AudioInputError, AutoVoiceError
from engine.paths import check_new_file
from engine.resample import resample_poly

MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 192000
MAX_CHANNELS = 32
OUTPUT_FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "ogg": ("OGG", "VORBIS")}
_RESAMPLE_CONTEXT = 256  # input samples of context each side of a block: covers the resampling filter
# libsndfile quietly shortens a WAV/AIFF whose audio chunk runs past the end of the file; its log says so.
_DATA_CHUNK_RE = re.compile(r"^\s*(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_UNKNOWN_LENGTH = (0xFFFFFFFF, 0x7FFFFFFF)  # what streaming writers put in the header: not a truncation


def _ratio(sr_in: int, sr_out: int) -> tuple[int, int]:
    g = math.gcd(sr_in, sr_out)
    return sr_out // g, sr_in // g


def _channel_mean(block: np.ndarray) -> np.ndarray:
    """Mean over the channels of ``[frames, channels]``, a column at a time: numpy's mean along a short last
    axis runs some 50 times slower (4 ms for 8.6 s of 44.1 kHz stereo), and a BLAS matrix-vector product
    would wake BLAS threads that compete with the inference threads for the cores."""
    mono = block[:, 0].copy()
    for c in range(1, block.shape[1]):
        mono += block[:, c]
    if block.shape[1] > 1:
        mono *= np.float32(1.0 / block.shape[1])
    return mono


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Polyphase resampling of a whole (short) signal, float32, length ``ceil(n * sr_out / sr_in)``."""
    if sr_in == sr_out:
        return x.astype(np.float32, copy=False)
    up, down = _ratio(sr_in, sr_out)
    return resample_poly(x, up, down)


@dataclass
class AudioInfo:
    path: Path
    sample_rate: int
    frames: int
    channels: int
    format: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


class AudioSource:
    """A validated audio file read in blocks, mixed to mono and resampled to ``target_rate`` on demand.

    Ranges are addressed in target-rate samples; reads are exact (a range read in pieces equals the same
    range read at once, up to the resampling filter's float rounding).
    """

    def __init__(self, path: str | Path, target_rate: int, max_seconds: float, resident_seconds: float = 0.0
                 ) -> None:
        """``resident_seconds``: an input no longer than this is decoded and resampled once, on the first read,
        and every read is served from that copy (4 bytes a target-rate sample); a longer one is read from the
        file on every call. A caller that reads the whole of such an input at once anyway (the pipeline's
        first pass) keeps its peak memory and saves decoding and resampling it again."""
        self.info = probe(path, max_seconds)
        self.target_rate = target_rate
        self.up, self.down = _ratio(self.info.sample_rate, target_rate)
        # Length at the target rate: every later step keeps exactly this many samples.
        self.length = int(round(self.info.frames * target_rate / self.info.sample_rate))
        self._resident_limit = int(resident_seconds * target_rate)
        self._resident: np.ndarray | None = None
        self._fh = sf.SoundFile(str(self.info.path))

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> AudioSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read_native(self, start: int, stop: int) -> np.ndarray:
        """Native-rate mono samples ``[start, stop)``; zeros outside the file."""
        n_total = self.info.frames
        lo, hi = max(start, 0), min(stop, n_total)
        out = np.zeros(max(stop - start, 0), dtype=np.float32)
        if hi > lo:
            try:
                self._fh.seek(lo)
                block = self._fh.read(hi - lo, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise AudioInputError(f"{self.info.path.name}: the audio data is corrupt or truncated "
                                      f"({_short(exc)})") from exc
            if block.shape[0] != hi - lo:
                raise AudioInputError(f"{self.info.path.name}: file is truncated (expected {n_total} frames, "
                                      f"could read only {lo + block.shape[0]})")
            mono = _channel_mean(block)
            finite = np.isfinite(mono)
            if not finite.all():
                first = lo + int(np.argmin(finite))
                raise AudioInputError(f"{self.info.path.name}: audio contains NaN or infinite samples "
                                      f"(the first at {first / self.info.sample_rate:.2f} s)")
            out[lo - start: hi - start] = mono
        return out

    def read(self, start: int, stop: int) -> np.ndarray:
        """Target-rate mono float32 samples ``[start, stop)`` (zeros beyond the ends)."""
        if self.length > self._resident_limit:
            return self._read_range(start, stop)
        if self._resident is None:
            self._resident = self._read_range(0, self.length)
        out = np.zeros(max(stop - start, 0), dtype=np.float32)
        lo, hi = max(start, 0), min(stop, self.length)
        if hi > lo:
            out[lo - start: hi - start] = self._resident[lo:hi]
        return out

    def _read_range(self, start: int, stop: int) -> np.ndarray:
        if self.up == self.down:
            return self._read_native(start, stop)
        # Start on a native sample that maps exactly onto a target sample.
        first = math.floor(start / self.up) * self.down  # native index; maps to first * up / down
        offset = start - first * self.up // self.down
        n_native = math.ceil((stop - start + offset) * self.down / self.up) + 1
        ctx = math.ceil(_RESAMPLE_CONTEXT / self.down) * self.down
        native = self._read_native(first - ctx, first + n_native + ctx)
        y = resample_poly(native, self.up, self.down)
        skip = ctx * self.up // self.down + offset
        y = y[skip: skip + (stop - start)]
        if y.shape[0] < stop - start:
            y = np.pad(y, (0, stop - start - y.shape[0]))
        return y.astype(np.float32)


def probe(path: str | Path, max_seconds: float) -> AudioInfo:
    """Open ``path`` just far enough to validate it; raise :class:`AudioInputError` with one clear reason."""
    path = Path(path)
    if not path.exists():
        raise AudioInputError(f"input file not found: {path}")
    if not path.is_file():
        raise AudioInputError(f"input is not a file: {path}")
    if path.stat().st_size == 0:
        raise AudioInputError(f"{path.name}: file is empty")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioInputError(f"{path.name}: not a readable audio file ({_open_error(exc)}); "
                              "use WAV, FLAC, OGG or MP3") from exc
    if info.format == "OGG" and not _ogg_ends(path):
        raise AudioInputError(f"{path.name}: file is truncated (the Ogg stream stops before its last page)")
    if info.frames <= 0:
        raise AudioInputError(f"{path.name}: audio has no samples")
    for match in _DATA_CHUNK_RE.finditer(info.extra_info or ""):
        declared, present = int(match.group(1)), int(match.group(2))
        if declared > present and declared not in _UNKNOWN_LENGTH:
            raise AudioInputError(f"{path.name}: file is truncated (its header announces {declared} bytes of "
                                  f"audio, only {present} are present)")
    if not (MIN_SAMPLE_RATE <= info.samplerate <= MAX_SAMPLE_RATE):
        raise AudioInputError(f"{path.name}: sample rate {info.samplerate} Hz is outside the supported "
                              f"{MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz")
    if info.channels > MAX_CHANNELS:
        raise AudioInputError(f"{path.name}: {info.channels} channels is more than {MAX_CHANNELS}")
    duration = info.frames / info.samplerate
    if duration > max_seconds:
        raise AudioInputError(f"{path.name}: {duration / 60:.1f} minutes is longer than the limit of "
                              f"{max_seconds / 60:.0f} minutes; split it first")
    return AudioInfo(path=path, sample_rate=int(info.samplerate), frames=int(info.frames),
                     channels=int(info.channels), format=str(info.format))


def _ogg_ends(path: Path) -> bool:
    """Whether an Ogg file's last page is whole and carries the end-of-stream flag.

    Ogg has no length field to check: a cut-off file just reads shorter (or as empty) unless its end is
    looked for. A page is at most 65307 bytes, so the last one starts within the final 64 KiB.
    """
    size = path.stat().st_size
    with open(path, "rb") as fh:
        fh.seek(max(size - (1 << 16), 0))
        tail = fh.read()
    at = tail.rfind(b"OggS\x00")
    if at < 0 or at + 27 > len(tail):
        return False
    n_segments = tail[at + 26]
    table = tail[at + 27: at + 27 + n_segments]
    page_end = at + 27 + n_segments + sum(table)
    return len(table) == n_segments and page_end <= len(tail) and bool(tail[at + 5] & 0x04)


def _open_error(exc: BaseException) -> str:
    """libsndfile's reason for not opening a file that exists, without its path, and without the guess it
    makes for any stream it cannot parse ("does not exist or is not a regular file")."""
    text = re.sub(r"^Error opening '.*?': ", "", _short(exc))
    if "does not exist or is not a regular file" in text:
        return "it could not be decoded: truncated or corrupt?"
    return text.rstrip(".")


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


def load_clip(path: str | Path, target_rate: int, max_seconds: float = 120.0) -> np.ndarray:
    """Read a short clip whole (reference voices, calibration files): mono, ``target_rate``, validated."""
    with AudioSource(path, target_rate, max_seconds) as src:
        return src.read(0, src.length)


def output_format(path: str | Path, fmt: str | None) -> tuple[str, str]:
    """Resolve ``--format`` (or the output suffix) to soundfile's (format, subtype)."""
    name = (fmt or Path(path).suffix.lstrip(".") or "wav").lower()
    if name not in OUTPUT_FORMATS:
        raise AudioInputError(f"output format {name!r} is not supported; use one of {', '.join(OUTPUT_FORMATS)}")
    return OUTPUT_FORMATS[name]


def check_output_path(path: str | Path, fmt: str | None = None) -> tuple[str, str]:
    """Refuse an output path that cannot take a new audio file, before any work (see
    :func:`engine.paths.check_new_file`), or a format the writer does not have; soundfile's (format,
    subtype) for it."""
    formats = output_format(path, fmt)
    check_new_file(path, "output.wav", AudioInputError)
    return formats


class AtomicAudioWriter:
    """Write audio block by block to a temporary file, renamed into place only on :meth:`commit`.

    If the conversion fails or is cancelled, :meth:`abort` (or leaving the ``with`` block by an
    exception) removes the temporary file, so no half-written output is ever left behind.
    """

    def __init__(self, path: str | Path, sample_rate: int, fmt: str | None = None) -> None:
        self.path = Path(path)
        self.format, self.subtype = check_output_path(self.path, fmt)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
        self.tmp.touch()  # an unwritable folder fails here with the system's reason (libsndfile gives none)
        try:
            self._fh = sf.SoundFile(str(self.tmp), mode="w", samplerate=sample_rate, channels=1,
                                    format=self.format, subtype=self.subtype)
        except (sf.LibsndfileError, RuntimeError) as exc:
            self.tmp.unlink(missing_ok=True)
            raise AutoVoiceError(f"cannot write {self.path}: {exc}") from None
        self.written = 0

    def write(self, block: np.ndarray) -> None:
        if block.size:
            self._fh.write(np.clip(block, -1.0, 1.0).astype(np.float32))
            self.written += int(block.shape[0])

    def commit(self) -> Path:
        self._fh.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        if not self._fh.closed:
            self._fh.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> AtomicAudioWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None or self.tmp.exists():
            self.abort()


class StreamingResampler:
    """Resample a stream pushed in arbitrary blocks; the concatenated output equals a one-shot resample.

    Holds back enough input for the filter's right context; :meth:`flush` emits the rest.
    """

    def __init__(self, sr_in: int, sr_out: int) -> None:
        self.up, self.down = _ratio(sr_in, sr_out)
        self.ctx = math.ceil(_RESAMPLE_CONTEXT / self.down) * self.down
        self.buf = np.zeros(self.ctx, dtype=np.float32)  # left context (zeros before the start)
        self.pending = 0  # samples in buf after the left context, not yet emitted

    def push(self, x: np.ndarray) -> np.ndarray:
        if self.up == self.down:
            return x.astype(np.float32, copy=False)
        self.buf = np.concatenate([self.buf, x.astype(np.float32)])
        self.pending += x.shape[0]
        ready = ((self.pending - self.ctx) // self.down) * self.down  # keep ctx samples of right context
        if ready <= 0:
            return np.zeros(0, dtype=np.float32)
        return self._emit(ready)

    def _emit(self, n: int) -> np.ndarray:
        seg = self.buf[: self.ctx + n + self.ctx]
        if seg.shape[0] < 2 * self.ctx + n:
            seg = np.pad(seg, (0, 2 * self.ctx + n - seg.shape[0]))
        y = resample_poly(seg, self.up, self.down)
        a = self.ctx * self.up // self.down
        out = y[a: a + n * self.up // self.down].astype(np.float32)
        self.buf = self.buf[n:]
        self.pending -= n
        return out

    def flush(self) -> np.ndarray:
        if self.up == self.down or self.pending <= 0:
            return np.zeros(0, dtype=np.float32)
        n = math.ceil(self.pending / self.down) * self.down
        self.buf = np.pad(self.buf, (0, n - self.pending))
        self.pending = n
        return self._emit(n)
