"""Lyrics vocabulary and its pronunciation by espeak-ng (the MBROLA ``mb-us2`` phone set)."""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass

from engine.data.phoneset import INVENTORY, SILENCE, is_vowel

ESPEAK_VOICE = "mb-us2"

WORDS: tuple[str, ...] = tuple(sorted(set("""
a about again alone always am an and angel any anything are at away baby back bad be beautiful been believe
bell best better big bird black bloom blossom blue boat bridge bright bring brother burn burning but by call
calling can candle car castle cedar city cold come could crown cry daisy dance dark darling day deep did do
does door down dream dreaming early echo eight eight evening ever every everything everywhere eyes falling
far fast father feel feeling few field fire first five flow flower fly flying for forever four free friend
from garden gentle glow go gold golden good green grey grow guitar had hand harmony has have heart heaven
hear her here high his hold hollow home honey how if in into is island its ivy just king kingdom kiss knight
know lady last late laugh leaf less letter life light lily little lonely long love lover low maple many may
maybe me meadow mellow melody memory might mirror moment money moon more morning most mother mountain much
music must my near never new next night nine no nobody nothing now oak ocean of off oh old on one only open
or orange other our out over paper petal picture pillow pine pink plane prince promise purple queen rain
rainbow red remember rhythm ring rise river road rolling root rose run running say sea secret see seed
seven shadow shine shining ship shore should show silence silver sing singing sister six sky slow smile so
soft some somebody someday something somewhere song soon sorrow spring star stay still story stranger street
string sugar summer sun sweet swing sword ten than that the their then there these they thing this those
three through thunder time to today together tomorrow tonight tower train tree true turn turning two under
up valley violet voice waiting walk warm was water way we were what when where whisper white who why will
willow wind window wing winter with wonder wonderful world would yellow yesterday you young your
""".split())))


@dataclass(frozen=True)
class Pronunciation:
    """A word as espeak-ng says it: phones with their spoken durations (silences dropped)."""

    word: str
    phones: tuple[tuple[str, int], ...]

    @property
    def syllables(self) -> int:
        """Number of vowels, i.e. notes the word takes when sung one note per syllable."""
        return sum(is_vowel(p) for p, _ in self.phones)


def espeak_pho(text: str, *, ssml: bool = False) -> str:
    """Run ``espeak-ng --pho`` with the MBROLA US voice and return the .pho text it prints."""
    cmd = ["espeak-ng", "-v", ESPEAK_VOICE, "-q", "--pho"] + (["-m"] if ssml else []) + [text]
    result = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return result.stdout


def normalize_phones(phones: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Make a phone sequence renderable by every voice of the corpus.

    us3 has no flap-to-/l/ diphone (``4-l``, as in "little"), so a flap before /l/ is said as /t/.
    """
    out = list(phones)
    for i in range(len(out) - 1):
        if out[i][0] == "4" and out[i + 1][0] == "l":
            out[i] = ("t", out[i][1])
    return out


@functools.lru_cache(maxsize=1)
def lexicon() -> dict[str, Pronunciation]:
    """Pronounce every word of :data:`WORDS` with one espeak-ng call.

    Returns:
        ``word -> Pronunciation``.

    Raises:
        RuntimeError: espeak-ng's output cannot be split back into words, or uses a phone outside the
            corpus inventory.
    """
    # An SSML break after each word makes espeak emit a pause there, so one process phonemizes them all.
    text = "<speak>" + "".join(f'{w}<break time="500ms"/>' for w in WORDS) + "</speak>"
    groups: list[list[tuple[str, int]]] = []
    current: list[tuple[str, int]] = []
    for line in espeak_pho(text, ssml=True).splitlines():
        fields = line.split()
        if not fields:
            continue
        if fields[0] == SILENCE:
            if current:
                groups.append(current)
                current = []
            continue
        current.append((fields[0], int(round(float(fields[1])))))
    if current:
        groups.append(current)
    if len(groups) != len(WORDS):
        raise RuntimeError(f"espeak-ng returned {len(groups)} pronunciations for {len(WORDS)} words")
    lex: dict[str, Pronunciation] = {}
    for word, phones in zip(WORDS, groups, strict=True):
        unknown = {p for p, _ in phones} - set(INVENTORY)
        if unknown:
            raise RuntimeError(f"espeak-ng says {word!r} with phones outside the inventory: {sorted(unknown)}")
        lex[word] = Pronunciation(word, tuple(normalize_phones(phones)))
    return lex
