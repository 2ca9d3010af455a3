"""Random songs and spoken sentences as timing-and-pitch plans, reproducible from a seed.

A song is built in the male range (the plan every male voice sings; a female voice sings it transposed):
a melody on a random scale and tempo, grouped into phrases of syllable slots, each slot one note or a
short melisma. Lyrics are words whose syllable counts fill each phrase exactly. Each sung vowel starts on
its note's onset; the consonants after it take the end of the note, so notes are back to back within a
phrase. Pitch targets hold each note, glide between notes and add delayed vibrato on long notes.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, replace

from engine.data.pho import PitchPoint, Segment, parse_pho
from engine.data.phoneset import INVENTORY, SILENCE, is_vowel
from engine.data.words import WORDS, espeak_pho, lexicon, normalize_phones

MALE_MIDI_RANGE = (43, 62)  # G2..D4: where MBROLA's male diphones still sound like singing
SCALES: tuple[tuple[int, ...], ...] = ((0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10), (0, 2, 4, 7, 9))
_STEPS = (-2, -1, 0, 1, 2, -3, 3, -4, 4, 5, -5)
_STEP_WEIGHTS = (8, 14, 4, 14, 8, 3, 3, 2, 2, 1, 1)
CONSONANT_MS = (30, 110)
SONG_SPAN = (-3, 10)  # semitones around the tonic a song's melody stays in
# Sung stops are unaspirated: a stretched aspirated release turns into a long breath. Reduced vowels are
# sung full, as singers do ("the" as [DV]); "@" and "O" also lack the doubled diphone (@-@, O-O) in us3
# that pho.split_vowels needs.
_SUNG_PHONE = {"p_h": "p", "t_h": "t", "k_h": "k", "@": "V", "O": "A"}


@dataclass(frozen=True)
class Plan:
    """Everything a rendition needs: phones with durations and pitch targets, and the notes sung.

    Attributes:
        song_id: stable id (``song0001``, ``talk0001``).
        kind: ``"sung"`` or ``"spoken"``.
        text: the lyrics or sentence.
        segments: the phones in order; they tile the clip exactly.
        notes: ``(start_ms, end_ms, f0_hz)`` musical targets (before MBROLA's period quantization).
    """

    song_id: str
    kind: str
    text: str
    segments: tuple[Segment, ...]
    notes: tuple[tuple[int, int, float], ...] = ()

    @property
    def duration_ms(self) -> int:
        """Total length in milliseconds."""
        return sum(s.dur_ms for s in self.segments)

    @property
    def max_f0(self) -> float:
        """Highest pitch target."""
        return max(p.f0 for s in self.segments for p in s.pitch)

    def transposed(self, semitones: int) -> Plan:
        """The same plan with every pitch moved by ``semitones``."""
        factor = 2.0 ** (semitones / 12.0)
        return replace(self, segments=tuple(s.transposed(factor) for s in self.segments),
                       notes=tuple((a, b, f * factor) for a, b, f in self.notes))


def midi_hz(midi: float) -> float:
    """Equal-tempered frequency of a MIDI note number."""
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def _melody_step(rng: random.Random, degree: int, to_midi: Callable[[int], int], low: int, high: int) -> int:
    step = rng.choices(_STEPS, weights=_STEP_WEIGHTS)[0]
    for candidate in (degree + step, degree - step, degree):
        if low <= to_midi(candidate) <= high:
            return candidate
    return degree


def _rhythm(rng: random.Random, beat_ms: float, legato: bool, target_ms: float) -> list[tuple[list, int]]:
    """Phrases as ``(slots, rest_after_ms)``; a slot is a list of ``(dur_ms, midi)`` notes."""
    tonic = rng.randint(45, 52)
    scale = rng.choice(SCALES)

    def to_midi(d: int) -> int:
        return tonic + 12 * (d // len(scale)) + scale[d % len(scale)]

    low = max(MALE_MIDI_RANGE[0], tonic + SONG_SPAN[0])
    high = min(MALE_MIDI_RANGE[1], tonic + SONG_SPAN[1])
    degree = rng.choice((0, 2, 4))
    melisma_p = 0.3 if legato else 0.1
    phrases: list[tuple[list, int]] = []
    elapsed = 0.0
    while elapsed < target_ms:
        slots: list[list[tuple[int, int]]] = []
        for _ in range(rng.randint(3, 7)):
            n_notes = rng.randint(2, 3) if rng.random() < melisma_p else 1
            slot = []
            for _ in range(n_notes):
                degree = _melody_step(rng, degree, to_midi, low, high)
                beats = rng.choices((0.5, 1.0, 1.5, 2.0), (4, 6, 1, 1))[0] if n_notes == 1 else rng.choice((0.5, 1.0))
                slot.append((max(int(beats * beat_ms), 170), to_midi(degree)))
            slots.append(slot)
            elapsed += sum(d for d, _ in slot)
            if elapsed >= target_ms:
                break
        last_dur, last_midi = slots[-1][-1]  # phrases end on a long note
        long_ms = int(rng.choice((1.5, 2.0, 2.5)) * beat_ms)
        slots[-1][-1] = (max(last_dur, long_ms), last_midi)
        elapsed += max(0, long_ms - last_dur)
        rest = int(rng.choice((0.5, 1.0, 1.5)) * beat_ms)
        phrases.append((slots, rest))
        elapsed += rest
    return phrases


def _lyrics(rng: random.Random, n_syllables: int) -> list[str]:
    lex = lexicon()
    words: list[str] = []
    while n_syllables > 0:
        word = rng.choice([w for w in WORDS if lex[w].syllables <= n_syllables])
        words.append(word)
        n_syllables -= lex[word].syllables
    return words


def _clusters(phones: list[tuple[str, int]], legato: bool) -> tuple[list, list[str], list[list]]:
    """Split a phrase's phones into onset consonants, vowels and the consonants after each vowel."""
    scale = 0.75 if legato else 1.0
    onset: list[tuple[str, int]] = []
    vowels: list[str] = []
    after: list[list[tuple[str, int]]] = []
    for phone, dur in phones:
        if is_vowel(phone):
            vowels.append(phone)
            after.append([])
            continue
        dur = int(min(max(dur, CONSONANT_MS[0]), CONSONANT_MS[1]) * scale)
        (after[-1] if vowels else onset).append((phone, dur))
    return onset, vowels, after


def _fit(cluster: list[tuple[str, int]], budget_ms: float) -> list[tuple[str, int]]:
    total = sum(d for _, d in cluster)
    if total <= budget_ms:
        return cluster
    return [(p, max(15, int(d * budget_ms / total))) for p, d in cluster]


def _vibrato(rng: random.Random, start: int, end: int) -> list[tuple[int, float]]:
    """Points (ms from vowel start, cents) of a vibrato that fades in over 200 ms."""
    rate, depth = rng.uniform(5.0, 6.5), rng.uniform(25.0, 60.0)
    step = 1000.0 / (rate * 6)
    points, t = [], float(start)
    while t < end - 40:
        ramp = min(1.0, (t - start) / 200.0)
        points.append((int(round(t)), depth * ramp * math.sin(2 * math.pi * rate * (t - start) / 1000.0)))
        t += step
    return points


def _vowel_pitch(rng: random.Random, notes: list[tuple[int, int, float]], vowel_ms: int,
                 prev_f0: float | None, glide_ms: int) -> tuple[PitchPoint, ...]:
    """Pitch targets of one sung vowel. ``notes`` are ``(start, end, f0)`` in ms from the vowel onset."""
    pts: list[tuple[int, float, float]] = []
    for j, (start, end, f0) in enumerate(notes):
        end = min(end, vowel_ms)
        come_from = notes[j - 1][2] if j else prev_f0
        held_from = start
        if come_from is not None:
            pts.append((start, come_from, 0.0))
            held_from = min(start + glide_ms, end)
        pts.append((held_from, f0, 0.0))
        if end - held_from >= 450 and rng.random() < 0.6:
            onset = held_from + max(150, int(0.3 * (end - held_from)))
            pts += [(t, f0, c) for t, c in _vibrato(rng, onset, end)]
        pts.append((end, f0, 0.0))
    return tuple(PitchPoint(100.0 * t / vowel_ms, f, True, c) for t, f, c in pts)


def plan_song(song_id: str, seed: int) -> Plan:
    """A random song of about 4-8 s in the male range.

    Args:
        song_id: id to give the plan.
        seed: everything about the song follows from it (together with ``song_id``).
    """
    rng = random.Random(f"song/{seed}/{song_id}")
    beat_ms = 60000.0 / rng.uniform(80.0, 140.0)
    legato = rng.random() < 0.3
    glide_ms = rng.randint(50, 90) if legato else rng.randint(25, 45)
    segs: list[Segment] = [Segment(SILENCE, rng.randint(200, 350))]
    notes: list[tuple[int, int, float]] = []
    lines: list[str] = []
    t = segs[0].dur_ms
    phrases = _rhythm(rng, beat_ms, legato, rng.uniform(3500.0, 6500.0))
    rest_before = 0
    for slots, rest_after in phrases:
        words = _lyrics(rng, len(slots))
        lines.append(" ".join(words))
        phones = [(_SUNG_PHONE.get(ph, ph), d) for w in words for ph, d in lexicon()[w].phones]
        onset, vowels, after = _clusters(normalize_phones(phones), legato)
        if rest_before:  # the onset consonants are sung before the beat, inside the rest
            segs.append(Segment(SILENCE, max(rest_before - sum(d for _, d in onset), 80)))
            t += segs[-1].dur_ms
        rest_before = rest_after
        first_f0 = midi_hz(slots[0][0][1])
        for i, (phone, dur) in enumerate(onset):
            segs.append(Segment(phone, dur, (PitchPoint(0.0, first_f0, True),) if i == 0 else ()))
        t += sum(d for _, d in onset)
        prev_f0: float | None = None
        for slot, vowel, cluster in zip(slots, vowels, after, strict=True):
            slot_ms = sum(d for d, _ in slot)
            cluster = _fit(cluster, 0.45 * slot[-1][0])  # the consonants take the end of the last note
            vowel_ms = slot_ms - sum(d for _, d in cluster)
            rel, cursor = [], 0
            for dur, midi in slot:
                rel.append((cursor, cursor + dur, midi_hz(midi)))
                notes.append((t + cursor, t + cursor + dur, midi_hz(midi)))
                cursor += dur
            segs.append(Segment(vowel, vowel_ms, _vowel_pitch(rng, rel, vowel_ms, prev_f0, glide_ms)))
            segs += [Segment(ph, d) for ph, d in cluster]
            # A vowel glides from the previous note only when no consonant sits between them.
            prev_f0 = rel[-1][2] if not cluster else None
            t += slot_ms
        last_f0 = notes[-1][2]
        if segs[-1].phone != vowels[-1]:
            segs[-1] = replace(segs[-1], pitch=(PitchPoint(100.0, last_f0, True),))
    segs.append(Segment(SILENCE, rng.randint(250, 400)))
    return Plan(song_id, "sung", " / ".join(lines), tuple(segs), tuple(notes))


def plan_speech(song_id: str, seed: int) -> Plan:
    """A random spoken sentence of 5-12 words with espeak-ng's own timing and intonation.

    Args:
        song_id: id to give the plan (``talk0001``).
        seed: everything about the sentence follows from it (together with ``song_id``).
    """
    rng = random.Random(f"speech/{seed}/{song_id}")
    words = [rng.choice(WORDS) for _ in range(rng.randint(5, 12))]
    if len(words) > 7:
        words[rng.randint(3, len(words) - 4)] += ","
    text = " ".join(words)
    parsed = parse_pho(espeak_pho(text))
    fixed = normalize_phones([(s.phone, s.dur_ms) for s in parsed])
    segs = [Segment(SILENCE, rng.randint(200, 350))]
    segs += [Segment(ph, d, s.pitch) for (ph, d), s in zip(fixed, parsed, strict=True)]
    unknown = {s.phone for s in segs} - set(INVENTORY)
    if unknown:
        raise RuntimeError(f"espeak-ng said {text!r} with phones outside the inventory: {sorted(unknown)}")
    return Plan(song_id, "spoken", text, tuple(segs))
