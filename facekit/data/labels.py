"""Labels from UTKFace file names.

UTKFace stores its labels in the file name, ``[age]_[gender]_[race]_[datetime].jpg.chip.jpg``,
and the real data set has a few malformed names. The parser accepts what is
unambiguous (noting any repair it made) and rejects the rest with a reason, so
that a caller can report exactly which files were left out and why. It never
guesses a label.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from facekit.contract import MAX_AGE, N_RACES
from facekit.data.imageio import IMAGE_SUFFIXES

# The image types facekit reads (one list for prep, predict and evaluate), longest first so ".jpg.chip.jpg"
# wins over ".jpg".
_EXTS = "|".join(re.escape(e) for e in sorted(["jpg.chip.jpg", "chip.jpg", *(s[1:] for s in IMAGE_SUFFIXES)],
                                               key=len, reverse=True))
_EXT = re.compile(rf"^(?P<stem>.*?)(?P<space>\s*)(?P<dot>\.?)(?P<ext>{_EXTS})$", re.IGNORECASE)
_DIGITS = re.compile(r"[0-9]+")
_FIELDS = ("age", "gender", "race", "datetime")


AGE_BANDS = ("0-10", "11-20", "21-30", "31-40", "41-50", "51-60", "61-70", "70+")


def age_band(age: int) -> str:
    """The age bands facekit reports everywhere: 0-10, 11-20, ..., 61-70, 70+ (70 counts in 61-70)."""
    if age <= 10:
        return AGE_BANDS[0]
    if age > 70:
        return AGE_BANDS[-1]
    lo = (age - 1) // 10 * 10 + 1
    return f"{lo}-{lo + 9}"


@dataclass(frozen=True)
class Label:
    """A parsed name; ``notes`` lists repairs made to accept it (empty for clean names)."""

    age: int
    gender: int
    race: int
    datetime: str
    notes: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Rejection:
    """Why a name could not be labelled; ``reason`` is a short stable key, ``detail`` says more."""

    reason: str
    detail: str


def parse_name(name: str) -> Label | Rejection:
    """Parse a UTKFace file name (no directory) into a Label, or say why not."""
    notes: list[str] = []
    m = _EXT.match(name)
    if m is None or not m.group("stem"):
        return Rejection("bad-extension", f"{name!r} does not end in an image extension after a name")
    stem = m.group("stem")
    if m.group("space"):
        notes.append("whitespace before the extension")
    if not m.group("dot"):
        # "..357jpg.chip.jpg": the digits end where "jpg" starts, so the labels are intact.
        notes.append("missing dot before the extension")
    parts = stem.split("_")
    if len(parts) == 3:
        return Rejection(
            "missing-field",
            f"{name!r} has 3 fields; the second may be race, not gender, so gender is unknown",
        )
    if len(parts) != 4:
        return Rejection("field-count", f"{name!r} has {len(parts)} fields, expected 4 (age_gender_race_datetime)")
    for key, value in zip(_FIELDS, parts):
        if not value:
            return Rejection("empty-field", f"{name!r} has an empty {key} field")
        if not _DIGITS.fullmatch(value):
            return Rejection("not-a-number", f"{name!r}: {key} field {value!r} is not a number")
    age, gender, race = int(parts[0]), int(parts[1]), int(parts[2])
    if age > MAX_AGE:
        return Rejection("out-of-range", f"{name!r}: age {age} is above {MAX_AGE}")
    if gender not in (0, 1):
        return Rejection("out-of-range", f"{name!r}: gender {gender} is not 0 (male) or 1 (female)")
    if race >= N_RACES:
        return Rejection("out-of-range", f"{name!r}: race {race} is not in 0..{N_RACES - 1}")
    return Label(age=age, gender=gender, race=race, datetime=parts[3], notes=tuple(notes))
