"""MBROLA ``.pho`` files: segments with pitch targets, F0 quantization, reading and writing.

A line is ``phone duration_ms [position_% f0_hz]...``. MBROLA interpolates F0 linearly between the
targets (across phones) and floors every pitch period to whole samples at the voice's rate, so a held
target ``f`` sounds at ``rate / floor(rate / f)``. Held notes are therefore aimed at
``rate / (round(rate / f) + 0.02)``, which floors to the nearest period: the note then sounds at
``rate / round(rate / f)`` (a few cents from ``f``), and that realized value is what the labels carry.
Vibrato points sit around that realized period, half a sample longer, so their floored periods average
to it. The quantization depends on the rate, so a voice rendered with ``mbrola -l RATE`` gets a .pho
aimed for RATE: same phones and durations, targets a few cents apart.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from engine.data.phoneset import is_vowel

MBROLA_RATE = 16000
_PERIOD_MARGIN = 0.02


@dataclass(frozen=True)
class PitchPoint:
    """An F0 target inside a segment.

    Attributes:
        pos: position in the segment, percent of its duration (0-100).
        f0: frequency in Hz (the musical value, before quantization).
        hold: a note target, quantized to the nearest period at the rendering rate; otherwise (speech)
            the target is shifted by half a period so that flooring is unbiased.
        cents: for a note target, deviation from the note (vibrato), applied after quantization.
    """

    pos: float
    f0: float
    hold: bool = False
    cents: float = 0.0


@dataclass(frozen=True)
class Segment:
    """One phone of a plan: name, duration in whole milliseconds and its pitch targets."""

    phone: str
    dur_ms: int
    pitch: tuple[PitchPoint, ...] = ()

    def transposed(self, factor: float) -> Segment:
        """The same segment with every F0 target multiplied by ``factor``."""
        return replace(self, pitch=tuple(replace(p, f0=p.f0 * factor) for p in self.pitch))


def realized_f0(f0: float, rate: int = MBROLA_RATE) -> float:
    """The F0 MBROLA produces for a held target ``f0`` aimed with :func:`aim_f0` at ``rate``."""
    return rate / round(rate / f0)


def aim_f0(point: PitchPoint, rate: int = MBROLA_RATE) -> float:
    """The value to write into the .pho for ``point``.

    Args:
        point: the target.
        rate: the rate MBROLA synthesizes at (its ``-l`` value, 16000 by default).
    """
    if point.hold:
        period = round(rate / point.f0)
        if point.cents == 0.0:
            return rate / (period + _PERIOD_MARGIN)
        # Flooring shortens a moving period by half a sample on average: lengthen it by as much.
        return rate / (period * 2.0 ** (-point.cents / 1200.0) + 0.5)
    return rate / (rate / point.f0 + 0.5)


def format_pho(segments: Iterable[Segment], *, rate: int = MBROLA_RATE, comment: str = "") -> str:
    """Render segments as .pho text with targets aimed for ``rate``."""
    lines = [f"; {line}" for line in comment.splitlines()]
    for seg in segments:
        targets = "".join(f" {p.pos:.2f} {aim_f0(p, rate):.3f}" for p in seg.pitch)
        lines.append(f"{seg.phone} {seg.dur_ms}{targets}")
    return "\n".join(lines) + "\n"


def write_pho(path: Path, segments: Sequence[Segment], *, rate: int = MBROLA_RATE, comment: str = "") -> Path:
    """Write a .pho file (through a temporary name, then rename) and return its path."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(format_pho(segments, rate=rate, comment=comment))
    tmp.replace(path)
    return path


def parse_pho(text: str) -> list[Segment]:
    """Parse .pho text (MBROLA's or espeak-ng's) into segments; its targets are treated as free.

    Consecutive silences are merged, since espeak-ng emits runs of them at clause breaks.
    """
    segments: list[Segment] = []
    for line in text.splitlines():
        fields = line.split(";", 1)[0].split()
        if not fields:
            continue
        phone, dur = fields[0], int(round(float(fields[1])))
        values = [float(v) for v in fields[2:]]
        pitch = tuple(PitchPoint(values[i], values[i + 1]) for i in range(0, len(values) - 1, 2))
        if segments and phone == segments[-1].phone == "_":
            prev = segments[-1]
            segments[-1] = Segment("_", prev.dur_ms + dur, prev.pitch)
            continue
        segments.append(Segment(phone, dur, pitch))
    return segments


def read_pho(path: Path) -> list[Segment]:
    """Read a .pho file written by :func:`write_pho` (pitch values as written, i.e. aimed for its rate).

    A vowel that :func:`split_vowels` cut into pieces comes back as one segment, as in the labels.
    """
    return merge_vowels(parse_pho(Path(path).read_text()))


def _pieces(seg: Segment, bounds: list[int]) -> list[Segment]:
    """Cut ``seg`` at ``bounds`` (ms from its start), giving each piece the targets that fall inside it."""
    edges = [0, *bounds, seg.dur_ms]
    pieces = []
    for a, b in zip(edges, edges[1:], strict=False):
        last = b == seg.dur_ms
        inside = [p for p in seg.pitch if a <= p.pos / 100.0 * seg.dur_ms < b or (last and p.pos >= 100.0)]
        pieces.append(Segment(seg.phone, b - a, tuple(
            replace(p, pos=100.0 * (p.pos / 100.0 * seg.dur_ms - a) / (b - a)) for p in inside)))
    return pieces


def split_vowels(segments: Sequence[Segment], vowels: frozenset[str], *, min_ms: int = 300,
                 onset_ms: int = 80, release_ms: int = 80) -> list[Segment]:
    """Cut long vowels into onset, sustain and release pieces of the same phone.

    Diphone synthesizers stretch a phone's two half-diphones uniformly, so a 2 s sung vowel after a stop
    would carry a quarter second of burst and breath; with the vowel cut in three, the consonant-vowel
    transitions keep their natural length and the same-vowel diphone in the middle takes the stretch.

    Args:
        segments: plan segments.
        vowels: vowels to cut (those whose doubled diphone, e.g. ``A-A``, every voice has).
        min_ms: only vowels at least this long are cut.
        onset_ms: length of the first piece.
        release_ms: length of the last piece.
    """
    out: list[Segment] = []
    for seg in segments:
        if seg.phone in vowels and seg.dur_ms >= min_ms:
            out += _pieces(seg, [onset_ms, seg.dur_ms - release_ms])
        else:
            out.append(seg)
    return out


def merge_vowels(segments: Sequence[Segment]) -> list[Segment]:
    """Undo :func:`split_vowels`: join consecutive pieces of the same vowel back into one segment."""
    out: list[Segment] = []
    for seg in segments:
        if out and seg.phone == out[-1].phone and is_vowel(seg.phone):
            prev = out[-1]
            total = prev.dur_ms + seg.dur_ms
            pitch = [replace(p, pos=p.pos * prev.dur_ms / total) for p in prev.pitch]
            pitch += [replace(p, pos=(prev.dur_ms + p.pos / 100.0 * seg.dur_ms) * 100.0 / total) for p in seg.pitch]
            out[-1] = Segment(seg.phone, total, tuple(pitch))
        else:
            out.append(seg)
    return out


def phone_spans(segments: Sequence[Segment]) -> list[list[str | float]]:
    """``[[phone, start_s, end_s], ...]`` covering the whole plan, back to back."""
    spans: list[list[str | float]] = []
    t = 0
    for seg in segments:
        spans.append([seg.phone, t / 1000.0, (t + seg.dur_ms) / 1000.0])
        t += seg.dur_ms
    return spans


def pitch_track(segments: Sequence[Segment], hop_s: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """The F0 curve MBROLA follows for these segments: targets joined linearly, held flat at the ends.

    Args:
        segments: a plan's segments, or segments read from a .pho (values as written there).
        hop_s: frame spacing in seconds.

    Returns:
        ``(times_s, f0_hz)``; the curve says nothing about voicing (unvoiced phones ignore it).
    """
    times, values = [], []
    t = 0.0
    for seg in segments:
        for p in seg.pitch:
            times.append((t + p.pos / 100.0 * seg.dur_ms) / 1000.0)
            values.append(p.f0 * 2.0 ** (p.cents / 1200.0))
        t += seg.dur_ms
    grid = np.arange(0.0, t / 1000.0, hop_s)
    if not times:
        return grid, np.zeros_like(grid)
    return grid, np.interp(grid, np.asarray(times), np.asarray(values))


def cents(f: float, ref: float) -> float:
    """Interval from ``ref`` to ``f`` in cents."""
    return 1200.0 * math.log2(f / ref)
