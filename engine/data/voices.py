"""The Debian voices of the corpus and how each one renders a plan.

MBROLA voices read the song's .pho directly; the ``-l`` pseudo-speakers synthesize at another rate
(formants scale by ``rate / 16000`` once resampled back, while MBROLA keeps timing and pitch in real
units at that rate). festival's diphone voices get the same phones, durations and F0 through an
``(Utterance Segments ...)``. flite voices only speak, with their own timing (read from ``-psdur``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, replace
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from engine.data.pho import MBROLA_RATE, PitchPoint, Segment, realized_f0, split_vowels
from engine.data.phoneset import (
    EN1_CLONE,
    EN1_RENAME,
    FROM_FLITE,
    TO_RADIO,
    US3_CLONE,
    VOWELS,
    mbrola_rename_args,
)
from engine.errors import AutoVoiceError

SAMPLE_RATE = 16000
MBROLA_DIR = Path("/usr/share/mbrola")
FESTIVAL_VOICE_DIR = Path("/usr/share/festival/voices/english")
INSTALL_SCRIPT = Path(__file__).with_name("install_voices.sh")


# Vowels whose doubled diphone (A-A) every MBROLA voice has, so that long ones can be cut in pieces.
MBROLA_SPLIT = frozenset(VOWELS) - {"O", "@", "Or"}


class VoiceInstallError(AutoVoiceError):
    """A synthesizer or voice the corpus needs is not installed and cannot be installed here."""


@dataclass(frozen=True)
class Voice:
    """One speaker of the corpus.

    Attributes:
        name: speaker id used in paths and metadata.
        engine: ``"mbrola"``, ``"festival"`` or ``"flite"``.
        model: MBROLA database name, festival voice name or flite voice name.
        description: one line for ``speakers.json``.
        heldout: never in the training split (evaluation only).
        rate: MBROLA ``-l`` synthesis rate; not 16000 makes a formant-shifted pseudo-speaker.
        transpose: semitones added to the male plan, ``(sung, spoken)``.
        max_f0: highest F0 the voice is asked for; the transposition shrinks to stay under it.
        mbrola_args: extra mbrola options (phone renames, ``-e``).
        split: vowels whose doubled diphone the voice has (see :func:`engine.data.pho.split_vowels`).
    """

    name: str
    engine: str
    model: str
    description: str
    heldout: bool = False
    rate: int = SAMPLE_RATE
    transpose: tuple[int, int] = (0, 0)
    max_f0: float = 400.0
    mbrola_args: tuple[str, ...] = ()
    split: frozenset[str] = MBROLA_SPLIT

    @property
    def sings(self) -> bool:
        """flite has no way to follow a plan, so its voices only speak."""
        return self.engine != "flite"

    @property
    def kind(self) -> str:
        """What the speaker contributes: ``"sung+spoken"`` or ``"spoken"``."""
        return "sung+spoken" if self.sings else "spoken"

    def semitones(self, kind: str, plan_max_f0: float) -> int:
        """Whole-semitone transposition for a plan: the voice's own, lowered to respect ``max_f0``."""
        wanted = self.transpose[0 if kind == "sung" else 1]
        steps = 0
        while plan_max_f0 * 2.0 ** ((wanted - steps) / 12.0) > self.max_f0 and wanted - steps > -12:
            steps += 1
        return wanted - steps

    def note_f0(self, f0: float) -> float:
        """The F0 this voice sounds for a note planned at ``f0``.

        MBROLA voices read a .pho aimed for their own rate; festival follows the 16 kHz MBROLA rendition.
        """
        return realized_f0(f0, self.rate if self.engine == "mbrola" else MBROLA_RATE)


_US1 = Voice("us1", "mbrola", "us1", "MBROLA us1, American English female", transpose=(5, 11), max_f0=300.0)
_US3 = Voice("us3", "mbrola", "us3", "MBROLA us3, American English male",
             mbrola_args=("-e", *mbrola_rename_args((), US3_CLONE)))
_EN1 = Voice("en1", "mbrola", "en1", "MBROLA en1, British English male", heldout=True,
             mbrola_args=tuple(mbrola_rename_args(EN1_RENAME, EN1_CLONE)))


def _shifted(base: Voice, rate: int) -> Voice:
    """A formant-shifted pseudo-speaker: ``mbrola -l rate`` on the base voice."""
    direction = "lower" if rate < SAMPLE_RATE else "higher"
    return replace(base, name=f"{base.name}_{'lo' if rate < SAMPLE_RATE else 'hi'}", rate=rate,
                   description=f"{base.description}, formants 15% {direction} (mbrola -l {rate})")


_US2 = Voice("us2", "mbrola", "us2", "MBROLA us2, American English male")
VOICES: tuple[Voice, ...] = (
    _US1, _shifted(_US1, 13600), _US2, _shifted(_US2, 18400), _US3, _shifted(_US3, 13600),
    Voice("kal", "festival", "kal_diphone", "festival kal diphone (LPC), American English male"),
    Voice("ked", "festival", "ked_diphone", "festival ked diphone (LPC), American English male",
          split=MBROLA_SPLIT - {"I", "E", "{", "U"}),
    _EN1, _shifted(_EN1, 13600), _shifted(_EN1, 18400),
    Voice("flite_slt", "flite", "slt", "flite slt (unit selection), American English female, speech only"),
    Voice("flite_rms", "flite", "rms", "flite rms (unit selection), American English male, speech only"),
    Voice("flite_awb", "flite", "awb", "flite awb (unit selection), Scottish English male, speech only"),
    Voice("flite_kal16", "flite", "kal16", "flite kal16 (diphone), American English male, speech only"),
)


def ensure_voices(voices: tuple[Voice, ...] = VOICES, *, install: bool = True) -> None:
    """Check that every synthesizer and voice is present, installing them when run as root.

    Raises:
        VoiceInstallError: something is missing and cannot be installed (not root, or the install failed).
    """
    missing = [b for b in ("espeak-ng", "mbrola", "festival", "flite") if shutil.which(b) is None]
    missing += [v.model for v in voices if v.engine == "mbrola" and not (MBROLA_DIR / v.model / v.model).exists()]
    missing += [v.model for v in voices if v.engine == "festival" and not (FESTIVAL_VOICE_DIR / v.model).is_dir()]
    if not missing:
        return
    if not install or os.geteuid() != 0:
        raise VoiceInstallError(f"missing voices/synthesizers: {', '.join(sorted(set(missing)))}; "
                                f"run `sudo {INSTALL_SCRIPT}` (needs Debian contrib/non-free)")
    result = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True)
    if result.returncode != 0:
        raise VoiceInstallError(f"{INSTALL_SCRIPT.name} failed: {result.stderr.strip()[-500:]}")
    ensure_voices(voices, install=False)


def to_16k(audio: np.ndarray, rate: int) -> np.ndarray:
    """Resample mono audio to 16 kHz (polyphase) and return float32."""
    if rate != SAMPLE_RATE:
        g = gcd(SAMPLE_RATE, rate)
        audio = resample_poly(audio, SAMPLE_RATE // g, rate // g)
    return np.asarray(audio, dtype=np.float32)


def render_mbrola(voice: Voice, pho: Path, work: Path) -> tuple[np.ndarray, list[str]]:
    """Render a .pho with an MBROLA voice.

    Returns:
        ``(audio at 16 kHz, mbrola's warnings)``; ``-e`` voices warn about each diphone they replaced.
    """
    out = work / f"{voice.name}.wav"
    cmd = ["mbrola", *voice.mbrola_args]
    if voice.rate != SAMPLE_RATE:
        cmd += ["-l", str(voice.rate)]
    result = subprocess.run([*cmd, str(MBROLA_DIR / voice.model / voice.model), str(pho), str(out)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"mbrola {voice.name} failed on {pho.name}: {result.stderr.strip()[-300:]}")
    audio, rate = sf.read(out, dtype="float64")
    out.unlink()
    return to_16k(audio, rate), [w for w in result.stderr.splitlines() if w.strip()]


def _festival_f0(point: PitchPoint) -> float:
    # Match what the 16 kHz MBROLA rendition sounds: held notes at their realized period, the rest as is.
    return realized_f0(point.f0) * 2.0 ** (point.cents / 1200.0) if point.hold else point.f0


def festival_utterance(segments: tuple[Segment, ...]) -> str:
    """The ``(Utterance Segments ...)`` form that makes festival say these phones with these timings."""
    items = []
    for seg in segments:
        dur = seg.dur_ms / 1000.0
        targets = "".join(f" ({p.pos / 100.0 * dur:.4f} {_festival_f0(p):.3f})" for p in seg.pitch)
        items.append(f"({TO_RADIO[seg.phone]} {dur:.4f}{targets})")
    return "(Utterance Segments (" + " ".join(items) + "))"


def render_festival(voices: list[Voice], segments: tuple[Segment, ...],
                    work: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """Render one plan with several festival diphone voices in one festival process.

    Returns:
        ``({speaker: audio at 16 kHz}, festival's warnings about diphones it had to replace)``.
    """
    script, outs = [], {}
    for voice in voices:
        outs[voice.name] = work / f"{voice.name}.wav"
        utt = festival_utterance(tuple(split_vowels(segments, voice.split)))
        script += [f"(voice_{voice.model})", f"(set! utt1 {utt})", "(utt.synth utt1)",
                   f'(utt.save.wave utt1 "{outs[voice.name]}" \'riff)']
    scm = work / "festival.scm"
    scm.write_text("\n".join(script) + "\n")
    result = subprocess.run(["festival", "-b", str(scm)], capture_output=True, text=True)
    if result.returncode != 0 or not all(p.exists() for p in outs.values()):
        raise RuntimeError(f"festival failed: {(result.stderr or result.stdout).strip()[-300:]}")
    audio = {}
    for name, path in outs.items():
        data, rate = sf.read(path, dtype="float64")
        audio[name] = to_16k(data, rate)
        path.unlink()
    scm.unlink()
    return audio, [w for w in (result.stdout + result.stderr).splitlines() if "default diphone" in w]


def render_flite(voice: Voice, text: str, work: Path) -> tuple[np.ndarray, list[list[str | float]]]:
    """Speak ``text`` with a flite voice.

    Returns:
        ``(audio at 16 kHz, [[phone, start_s, end_s], ...])`` with flite's phones mapped to the inventory
        and the last phone stretched or cut to the end of the audio.
    """
    out = work / f"{voice.name}.wav"
    result = subprocess.run(["flite", "-voice", voice.model, "-psdur", "-t", text, "-o", str(out)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"flite {voice.name} failed: {result.stderr.strip()[-300:]}")
    data, rate = sf.read(out, dtype="float64")
    out.unlink()
    audio = to_16k(data, rate)
    end_s = len(audio) / SAMPLE_RATE
    spans: list[list[str | float]] = []
    start = 0.0
    for item in result.stdout.split():
        name, _, end = item.rpartition(":")
        phone, stop = FROM_FLITE[name], min(float(end), end_s)
        if stop <= start:
            continue
        if spans and spans[-1][0] == phone == "_":
            spans[-1][2] = stop
        else:
            spans.append([phone, start, stop])
        start = stop
    if not spans:
        raise RuntimeError(f"flite {voice.name} printed no segments for {text!r}")
    spans[-1][2] = end_s
    return audio, spans
