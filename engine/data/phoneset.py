"""The corpus phone inventory (MBROLA US English SAMPA) and its mappings to the other synthesizers.

Every label in the corpus uses these phones: the plans come from espeak-ng's ``mb-us*`` voices, which
speak this set natively; en1 (British SAMPA), festival's diphone voices and flite (both the "radio"
phone set) are mapped onto it here, so a rendition by any voice is labelled with one inventory.
"""

from __future__ import annotations

SILENCE = "_"

VOWELS: tuple[str, ...] = (
    "i", "I", "E", "{", "A", "O", "Or", "V", "U", "u", "@", "r=", "EI", "AI", "OI", "@U", "aU",
)
CONSONANTS: tuple[str, ...] = (
    "p", "p_h", "t", "t_h", "4", "k", "k_h", "b", "d", "g", "f", "T", "s", "S", "tS",
    "v", "D", "z", "Z", "dZ", "m", "n", "N", "l", "r", "j", "w", "h",
)
# Index 0 is the silence phone: the training code pads with it.
INVENTORY: tuple[str, ...] = (SILENCE, *VOWELS, *CONSONANTS)

# mbrola's -R (rename a database phone to the name the .pho uses) and -C (clone a database phone under a
# second name) let en1 and us3 read the very same .pho file as us1/us2.
EN1_RENAME: tuple[tuple[str, str], ...] = (
    ("3:", "r="), ("i:", "i"), ("A:", "A"), ("u:", "u"), ("e", "E"), ("eI", "EI"), ("aI", "AI"), ("O:", "O"),
)
EN1_CLONE: tuple[tuple[str, str], ...] = (("p", "p_h"), ("t", "t_h"), ("k", "k_h"), ("t", "4"), ("O:", "Or"))
US3_CLONE: tuple[tuple[str, str], ...] = (("p", "p_h"), ("t", "t_h"), ("k", "k_h"))

# Corpus phone -> festival "radio" phone (kal_diphone, ked_diphone); their flap diphones are too sparse, so
# the flap is said as /d/.
TO_RADIO: dict[str, str] = {
    SILENCE: "pau", "i": "iy", "I": "ih", "E": "eh", "{": "ae", "A": "aa", "O": "ao", "Or": "ao", "V": "ah",
    "U": "uh", "u": "uw", "@": "ax", "r=": "er", "EI": "ey", "AI": "ay", "OI": "oy", "@U": "ow", "aU": "aw",
    "p": "p", "p_h": "p", "t": "t", "t_h": "t", "4": "d", "k": "k", "k_h": "k", "b": "b", "d": "d", "g": "g",
    "f": "f", "T": "th", "s": "s", "S": "sh", "tS": "ch", "v": "v", "D": "dh", "z": "z", "Z": "zh",
    "dZ": "jh", "m": "m", "n": "n", "N": "ng", "l": "l", "r": "r", "j": "y", "w": "w", "h": "hh",
}

# flite's phones (CMU/radio) -> corpus phone; syllabic consonants fold onto their plain form.
FROM_FLITE: dict[str, str] = {
    "pau": SILENCE, "h#": SILENCE, "brth": SILENCE,
    "iy": "i", "ih": "I", "eh": "E", "ae": "{", "aa": "A", "ao": "O", "ah": "V", "uh": "U", "uw": "u",
    "ax": "@", "er": "r=", "axr": "r=", "ey": "EI", "ay": "AI", "oy": "OI", "ow": "@U", "aw": "aU",
    "p": "p", "t": "t", "dx": "4", "k": "k", "b": "b", "d": "d", "g": "g", "f": "f", "th": "T", "s": "s",
    "sh": "S", "ch": "tS", "v": "v", "dh": "D", "z": "z", "zh": "Z", "jh": "dZ", "m": "m", "em": "m",
    "n": "n", "en": "n", "nx": "n", "ng": "N", "l": "l", "el": "l", "r": "r", "y": "j", "w": "w",
    "hh": "h", "hv": "h",
}


def is_vowel(phone: str) -> bool:
    """Whether ``phone`` can carry a sung note (a syllable nucleus)."""
    return phone in VOWELS


def mbrola_rename_args(rename: tuple[tuple[str, str], ...], clone: tuple[tuple[str, str], ...]) -> list[str]:
    """mbrola command-line options that map a database's phone names onto the corpus inventory.

    Args:
        rename: ``(database phone, corpus phone)`` pairs renamed in place.
        clone: ``(database phone, corpus phone)`` pairs added as extra names.

    Returns:
        Arguments to put before the database path (empty when there is nothing to map).
    """
    args: list[str] = []
    if rename:
        args += ["-R", " ".join(f"{a} {b}" for a, b in rename)]
    if clone:
        args += ["-C", " ".join(f"{a} {b}" for a, b in clone)]
    return args


def _check() -> None:
    if not len(INVENTORY) == len(set(INVENTORY)) <= 48:
        raise RuntimeError("the phone inventory must stay unique and at most 48 phones")
    if set(TO_RADIO) != set(INVENTORY) or not set(FROM_FLITE.values()) <= set(INVENTORY):
        raise RuntimeError("the festival/flite phone maps must cover the inventory exactly")


_check()
