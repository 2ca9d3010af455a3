"""The evaluation's view of a corpus: held-out pairs, their oracles, and reference clips per voice.

A pair is a sung clip of a held-out song (split ``heldout_song``) by a training voice, and a target voice
that sang the same song (its clip is the time-aligned oracle). Targets are "seen" (another training voice)
or "unseen" (a voice of the ``heldout_voice`` split). References of a voice are its sung clips of songs
outside the held-out set: the first ``k`` score speaker similarity, the next ``k`` are what the
converters get to see (the target's voice profile, the envelope-swap's average envelopes).
"""

from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import AutoVoiceError

SEEN, UNSEEN = "seen", "unseen"


class CorpusError(AutoVoiceError):
    """The corpus is missing, malformed, or has nothing to evaluate."""


@dataclass(frozen=True)
class Clip:
    clip_id: str
    path: Path
    speaker: str
    song_id: str
    kind: str
    split: str
    duration: float
    notes: tuple[tuple[float, float, float], ...]

    @property
    def median_note_f0(self) -> float | None:
        """Median F0 of the clip's notes (Hz), or None for speech."""
        return float(np.median([f for _, _, f in self.notes])) if self.notes else None


@dataclass(frozen=True)
class Pair:
    source: Clip
    target: str
    oracle: Clip
    group: str          # SEEN or UNSEEN

    @property
    def transpose(self) -> int:
        """Whole semitones from the source's median note to the oracle's."""
        a, b = self.source.median_note_f0, self.oracle.median_note_f0
        return int(round(12.0 * math.log2(b / a))) if a and b else 0

    @property
    def name(self) -> str:
        return f"{self.source.clip_id}->{self.target}"


class EvalCorpus:
    """Clips and speakers of a corpus folder in the ``autovoice make-dataset`` layout."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        meta, speakers = self.root / "meta.jsonl", self.root / "speakers.json"
        for f in (meta, speakers):
            if not f.is_file():
                raise CorpusError(f"{f} not found: is {self.root} a corpus from `autovoice make-dataset`?")
        self.speakers: dict[str, dict] = json.loads(speakers.read_text())
        self.clips: list[Clip] = []
        with open(meta) as fh:
            for line_no, line in enumerate(fh, 1):
                if line.strip():
                    self.clips.append(self._clip(json.loads(line), line_no))
        self._by_song: dict[tuple[str, str], Clip] = {(c.song_id, c.speaker): c for c in self.clips}

    def _clip(self, rec: dict, line_no: int) -> Clip:
        try:
            return Clip(clip_id=rec["clip_id"], path=self.root / rec["path"], speaker=rec["speaker"],
                        song_id=rec["song_id"], kind=rec["kind"], split=rec["split"],
                        duration=float(rec["duration"]),
                        notes=tuple((float(a), float(b), float(f)) for a, b, f in rec.get("notes") or ()))
        except (KeyError, TypeError, ValueError) as exc:
            raise CorpusError(f"{self.root / 'meta.jsonl'} line {line_no}: bad record ({exc})") from exc

    def heldout(self, speaker: str) -> bool:
        return bool(self.speakers.get(speaker, {}).get("heldout", False))

    def clip(self, song_id: str, speaker: str) -> Clip | None:
        """``speaker``'s rendition of ``song_id``, if there is one."""
        return self._by_song.get((song_id, speaker))

    @property
    def heldout_songs(self) -> set[str]:
        return {c.song_id for c in self.clips if c.split == "heldout_song"}

    def pairs(self) -> list[Pair]:
        """Every (held-out sung source, other singing voice with an oracle) pair, in a stable order."""
        singers = sorted({c.speaker for c in self.clips if c.kind == "sung"})
        out = []
        for src in sorted(self.clips, key=lambda c: c.clip_id):
            if src.split != "heldout_song" or src.kind != "sung" or self.heldout(src.speaker):
                continue
            for target in singers:
                oracle = self.clip(src.song_id, target)
                if target != src.speaker and oracle is not None and oracle.kind == "sung":
                    out.append(Pair(src, target, oracle, UNSEEN if self.heldout(target) else SEEN))
        return out

    def references(self, speaker: str, k: int) -> tuple[list[Clip], list[Clip]]:
        """``(scoring, conditioning)`` sung reference clips of ``speaker``, ``k`` each, none of a held-out song.

        Raises:
            CorpusError: the speaker has fewer than ``2 k`` such clips.
        """
        held = self.heldout_songs
        pool = sorted((c for c in self.clips if c.speaker == speaker and c.kind == "sung" and c.song_id not in held),
                      key=lambda c: c.clip_id)
        if len(pool) < 2 * k:
            raise CorpusError(f"voice {speaker} has {len(pool)} sung clips outside the held-out songs; "
                              f"the evaluation needs {2 * k} ({k} to score similarity, {k} as its profile)")
        return pool[:k], pool[k: 2 * k]


def select_pairs(pairs: list[Pair], max_pairs: int | None, seed: int = 0) -> list[Pair]:
    """At most ``max_pairs`` pairs, split evenly between seen and unseen targets, spread over targets.

    Within a group, pairs are shuffled with ``seed`` and dealt round-robin over target voices (then over
    source voices), so a small budget still covers many voices.
    """
    groups: dict[str, list[Pair]] = defaultdict(list)
    for p in pairs:
        groups[p.group].append(p)
    if max_pairs is None:
        return list(pairs)
    present = [g for g in (SEEN, UNSEEN) if groups[g]]
    quota = {g: max_pairs // len(present) + (1 if i < max_pairs % len(present) else 0)
             for i, g in enumerate(present)} if present else {}
    # A group with fewer pairs than its quota hands the rest to the other.
    spare = sum(max(q - len(groups[g]), 0) for g, q in quota.items())
    for g in present:
        if spare and len(groups[g]) > quota[g]:
            extra = min(spare, len(groups[g]) - quota[g])
            quota[g] += extra
            spare -= extra
    chosen: list[Pair] = []
    for g in present:
        chosen += _round_robin(groups[g], min(quota[g], len(groups[g])), random.Random(f"{seed}/{g}"))
    return chosen


def _round_robin(pairs: list[Pair], n: int, rng: random.Random) -> list[Pair]:
    by_target: dict[str, list[Pair]] = defaultdict(list)
    for p in pairs:
        by_target[p.target].append(p)
    queues = []
    for target in sorted(by_target):
        items = by_target[target][:]
        rng.shuffle(items)
        # Alternate source voices inside each target's queue.
        by_src: dict[str, list[Pair]] = defaultdict(list)
        for p in items:
            by_src[p.source.speaker].append(p)
        order = [q for lists in _zip_longest(list(by_src.values())) for q in lists]
        queues.append(order)
    rng.shuffle(queues)
    return [p for round_ in _zip_longest(queues) for p in round_][:n]


def _zip_longest(lists: list[list[Pair]]) -> list[list[Pair]]:
    """Rounds: the i-th item of every list that has one."""
    return [[lst[i] for lst in lists if i < len(lst)] for i in range(max((len(x) for x in lists), default=0))]
