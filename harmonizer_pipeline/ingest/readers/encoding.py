"""Which encoding a text file is in, from its head: the choice, the evidence, or a refusal to guess.

Order: the source's `encoding` hint; a BOM; UTF-32 or UTF-16 without a BOM, told by where the head's
NUL bytes sit (a CSV's line breaks and delimiters are ASCII, so every such file has them: at odd
offsets in UTF-16 LE, even ones in BE; UTF-32 is confirmed by a strict decode, which fails on
anything else); strict UTF-8 (valid UTF-8 stays UTF-8 without asking a detector: fast and right);
else chardet ranks the legacy encodings by its per-language byte models. chardet 7, not
charset-normalizer 3.5: on the tests' texts the latter read Polish cp1250 as cp1252, Croatian
ISO-8859-2 as cp1257 and French ISO-8859-15 as ISO-8859-10 (silent mojibake); chardet read all right.

chardet's ranking is used, not its numbers: its confidence is a score for ordering candidates (a
Polish cp1250 file scores 0.19, the shipped German cp1252 sample 0.025), not a probability. So the
choice is refused, with the `encoding:` hint to set, only where the text itself leaves it open:
- no candidate decodes the head into text (C1 controls U+0080–U+009F count as undecodable: they
  appear when a Windows code page's letters are read as ISO-8859, never in a real table);
- the best score is below _WEAK_SCORE: a head with one or two non-ASCII bytes gives chardet nothing
  to go on (every such head we measured scored at most 0.008, while the shortest real text in the
  tests, two German rows, scored 0.015);
- a reading from another script family (Cyrillic, Central European, Western, Greek, Japanese ...)
  scores at least _CLOSE of the best: two alphabets fit equally well. Candidates of one family that
  decode the head differently (cp1250 or ISO-8859-2 for Polish) are what chardet's language models
  separate best, and candidates that decode the head to the same text are one reading (named after
  the Windows code page where one is among them: Excel writes those, and they define the most bytes).

Between families chardet's scores are often close where the answer is plain to a reader: a Spanish
head read as cp1250 scores like Hungarian, but writes 'Nuńez', and no Hungarian word has ń. So each
reading is first checked against the alphabets of the languages its encoding serves (chardet's
registry): the share of its accented letters that one such language writes (CLDR's exemplar
characters; for the other scripts, letters of that script not mixed into Latin words). Readings
where at least _FITS of them fit are plausible; where any reading is, the choice is made among
those only, and a rival of another family must come within _CLOSE of the best. Fewer than
_FEW_LETTERS accented letters tell no alphabet from another. bench/bench_encodings.py measures it
on Faker's names, cities, streets and jobs (36 locale and encoding pairs: Western, Central
European, Cyrillic, Greek, Turkish, Hebrew, Baltic, CJK): of 338 files of 3 to 200 rows, 324 are
read right and 14 refused (before this check: 279 and 59, French, Italian, Danish, Romanian and
Estonian files of 200 rows among them); of 768 heads of 2 to 6 rows, 677 right and 91 refused.
None is read wrong, where chardet's first choice alone reads 10 of those heads into mojibake.

Detection reads the head only (the readers read at most 1 MiB of it), so a file's size does not
matter; measured on this machine for a 1 MiB head, with the test suite running beside it: 35 ms
Japanese Shift-JIS, 60 ms Russian cp1251 or German cp1252, about 100 to 160 ms Croatian ISO-8859-2,
Chinese GB18030 or Korean, once per file (chardet's ranking, then every candidate's reading of the
first 64 KiB and the letters of its first 8,192 characters); plus about 0.3 s once per process
while chardet loads its models. The NUL-byte and UTF-8 checks cost about 6 ms (UTF-8) and 13 ms
(UTF-16).
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import chardet
import pycountry
from chardet.enums import EncodingEra
from chardet.registry import REGISTRY

from .base import ReadError

BINARY = "binary content that is neither Parquet nor Excel"
BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Windows code pages, ISO-8859, KOI8, the CJK encodings and TIS-620: what tabular exports come in. DOS, Mac,
# mainframe and regional code pages need the hint: allowed here, they win tiny heads by chance (cp1251
# 'Ёж' read as Arabic cp864).
_ERAS = EncodingEra.MODERN_WEB | EncodingEra.LEGACY_ISO
_WEAK_SCORE = 0.01
# chardet ranks on the first 256 KiB (its cost grows with the bytes; 1 MiB of GB18030 took 0.5 s); every
# candidate is then checked by a strict decode of the whole head
_DETECT_BYTES = 1 << 18
# every candidate (some 40) decodes this much of the head: 1 MiB each took seconds in all
_READ_BYTES = 1 << 16
_CLOSE = 0.9
_NUL_SAMPLE_BYTES = 1 << 16
_C1_CONTROL = re.compile("[\x80-\x9f]")
_PREFERRED = ("cp1252", "cp1250", "cp1251", "cp1253", "cp1254", "cp1255", "cp1256", "cp1257", "cp1258", "cp932", "cp949", "gb18030")
_FAMILIES = {  # the encodings chardet returns within _ERAS, by the script they serve
    "Western": ("cp1252", "iso8859-1", "iso8859-15", "iso8859-14"),
    "Central European": ("cp1250", "iso8859-2", "iso8859-16"),
    "Cyrillic": ("cp1251", "iso8859-5", "koi8-r", "koi8-u"),
    "Greek": ("cp1253", "iso8859-7"),
    "Turkish": ("cp1254", "iso8859-9", "iso8859-3"),
    "Baltic": ("cp1257", "iso8859-13", "iso8859-4", "iso8859-10"),
    "Hebrew": ("cp1255", "iso8859-8"),
    "Arabic": ("cp1256", "iso8859-6"),
    "Thai": ("cp874", "tis-620"),
    "Vietnamese": ("cp1258",),
    "Japanese": ("cp932", "shift_jis_2004", "euc_jis_2004", "iso2022_jp_2", "iso2022_jp_2004", "iso2022_jp_ext"),
    "Chinese (simplified)": ("gb18030",),
    "Chinese (traditional)": ("big5hkscs",),
    "Korean": ("cp949", "euc_kr", "johab"),
}
_FAMILY = {encoding: family for family, encodings in _FAMILIES.items() for encoding in encodings}
# The letters beyond ASCII each language of chardet's Latin-script models writes: CLDR's main exemplar
# characters (English, Indonesian and Malay have none: their auxiliary ones, which foreign names bring).
_LETTERS = {
    "br": "âêîôûñùüéè",
    "cs": "áčďéěíňóřšťúůýž",
    "cy": "áàâäéèêëíìîïóòôöúùûüẃẁŵẅýỳŷÿ",
    "da": "æøåé",
    "de": "äöüß",
    "en": "éèëïçñôæœ",
    "eo": "ĉĝĥĵŝŭ",
    "es": "áéíñóúü",
    "et": "šžõäöü",
    "fi": "äöåšž",
    "fr": "àâæçéèêëîïôœùûüÿ",
    "ga": "áéíóú",
    "gd": "àèìòùáéó",
    "hr": "čćđšž",
    "hu": "áéíóöőúüű",
    "id": "é",
    "is": "áðéíóúýþæö",
    "it": "àèéìòóù",
    "lt": "ąčęėįšųūž",
    "lv": "āčēģīķļņšūž",
    "ms": "é",
    "mt": "ċġħżàèìòù",
    "nl": "áàâäéèêëíìîïóòôöúùûü",
    "no": "æøåéèêóòô",
    "pl": "ąćęłńóśźż",
    "pt": "áàâãçéêíóôõúü",
    "ro": "ăâîșțşţ",
    "sk": "áäčďéíĺľňóôŕšťúýž",
    "sl": "čšžćđ",
    "sr": "čćđšž",
    "sv": "åäöé",
    "tr": "çğıöşüâîû",
}
_LETTERS["vi"] = "àáâãăèéêìíòóôõơùúưýđ"  # cp1258 writes the other tones as combining marks, which are no letters
# The other languages: any letter of their script (its Unicode names' first word)
_SCRIPTS = {
    **dict.fromkeys(("ru", "uk", "bg", "mk", "be", "sr"), ("CYRILLIC",)),
    "el": ("GREEK",),
    "he": ("HEBREW",),
    **dict.fromkeys(("ar", "fa"), ("ARABIC",)),
    "th": ("THAI",),
    "ja": ("CJK", "HIRAGANA", "KATAKANA"),
    "zh": ("CJK",),
    "ko": ("HANGUL", "CJK"),
}
_IDEOGRAPHIC = ("CJK", "HIRAGANA", "KATAKANA", "HANGUL")
_FITS = 0.9
# fewer accented letters than this tell no alphabet from another ('Noël' is 'Noėl' in cp1257)
_FEW_LETTERS = 3
_WORD = re.compile(r"[^\W\d_]+")
# the accented letters of the first 8,192 characters, or the first 1,000 of them, are plenty to tell a fit
_FIT_CHARACTERS = 1 << 13
_FIT_LETTERS = 1000


@dataclass
class _Reading:
    """The head decoded one way, by every candidate encoding that gives exactly this text."""

    text: str
    encodings: list[str]
    score: float
    fit: tuple[float, str, int] | None = None  # _alphabet_fit's (share, language, letters)

    @property
    def encoding(self) -> str:
        return next((name for name in _PREFERRED if name in self.encodings), self.encodings[0])

    @property
    def family(self) -> str:
        return _FAMILY.get(self.encoding, self.encoding)

    @property
    def plausible(self) -> bool:
        return self.fit is None or self.fit[0] >= _FITS


def choose_encoding(path: Path, raw: bytes, complete: bool, hint: str | None) -> tuple[str, str]:
    """(encoding, why) for a text file whose head is `raw` (`complete`: the whole file); ReadError when unsure."""
    if hint:
        try:
            codecs.lookup(hint)
        except LookupError as err:
            raise ReadError(path, f"unknown encoding {hint!r} in hints") from err
        return hint, f"encoding {hint} from hints"
    for bom, encoding in BOMS:
        if raw.startswith(bom):
            return encoding, f"BOM {bom.hex(' ').upper()} → {encoding}"
    if b"\x00" in raw and (unicode := _unicode_without_bom(raw, complete)):
        return unicode
    try:
        codecs.getincrementaldecoder("utf-8")().decode(raw, complete)
    except UnicodeDecodeError as err:
        not_utf8 = f"not utf-8 (byte 0x{err.object[err.start]:02x} at offset {err.start})"
    else:
        return "utf-8", f"the first {len(raw)} bytes decode as utf-8"
    return _detect(path, raw, complete, not_utf8)


def _unicode_without_bom(raw: bytes, complete: bool) -> tuple[str, str] | None:
    """UTF-32 or UTF-16 (LE or BE) by where the NUL bytes of the head's start sit, confirmed by a strict decode."""
    sample = raw[: _NUL_SAMPLE_BYTES if len(raw) > _NUL_SAMPLE_BYTES else len(raw) // 4 * 4]
    at = [sample[offset::4].count(0) for offset in range(4)]
    units = len(sample) // 4
    odd, even = at[1] + at[3], at[0] + at[2]
    patterns = (
        # a code point is at most 0x10FFFF: its top byte is NUL (the strict decode checks the rest)
        ("utf-32-le", at[3] == units, f"the 4th byte of each of the first {units} 4-byte units is NUL"),
        ("utf-32-be", at[0] == units, f"the 1st byte of each of the first {units} 4-byte units is NUL"),
        # 90%: a character U+xx00 (一 U+4E00 is common in Japanese) puts a NUL at the other parity now and then
        ("utf-16-le", odd >= 9 * even, f"NUL bytes at {odd} odd and {even} even offsets of the first {len(sample)}"),
        ("utf-16-be", even >= 9 * odd, f"NUL bytes at {odd} odd and {even} even offsets of the first {len(sample)}"),
    )
    for encoding, fits, why in patterns:
        if fits and _decodes(raw, encoding, complete):
            return encoding, f"no BOM; {why} → {encoding}"
    return None


def _decodes(raw: bytes, encoding: str, complete: bool) -> bool:
    try:
        codecs.getincrementaldecoder(encoding)().decode(raw, complete)
    except UnicodeDecodeError:
        return False
    return True


def _detect(path: Path, raw: bytes, complete: bool, not_utf8: str) -> tuple[str, str]:
    """chardet's best reading of the head, unless it is weak or another script fits about as well."""
    candidates = chardet.detect_all(raw, ignore_threshold=True, max_bytes=_DETECT_BYTES, compat_names=False, encoding_era=_ERAS)
    if candidates and candidates[0]["encoding"] is None:  # chardet's verdict on bytes that are no text at all
        raise ReadError(path, BINARY)
    languages = {codecs.lookup(c["encoding"]).name: c["language"] for c in reversed(candidates) if c["encoding"]}
    # Every candidate's reading of the head's start is compared; the reader names the line of a byte the
    # chosen encoding lacks further on, as it does past the head.
    sample, sample_complete = (raw, complete) if len(raw) <= _READ_BYTES else (raw[:_READ_BYTES], False)
    readings: list[_Reading] = []
    for candidate in candidates:
        encoding, score = candidate["encoding"], candidate["confidence"]
        if encoding is None or (text := _text(sample, encoding, sample_complete)) is None:
            continue
        name = codecs.lookup(encoding).name
        same = next((reading for reading in readings if reading.text == text), None)
        if same:
            same.encodings.append(name)
        else:
            readings.append(_Reading(text, [name], score))
    hint = "set format.encoding for the source in harmonizer.yaml"
    if not readings:
        raise ReadError(path, f"cannot tell the encoding ({not_utf8}; no encoding decodes it into text): {hint}")
    for reading in readings:
        reading.fit = _alphabet_fit(reading.text, {language for name in reading.encodings if name in REGISTRY for language in REGISTRY[name].languages})
    plausible = [reading for reading in readings if reading.plausible] or readings
    best = plausible[0]
    # the Windows code page that reads the head the same way names it, though chardet ranked it lower
    for name in _PREFERRED:
        if name in best.encodings or _text(sample, name, sample_complete) == best.text:
            best.encodings.append(name)
            break

    def describe(reading: _Reading) -> str:
        language = languages.get(reading.encoding) or languages.get(reading.encodings[0])
        name = language and _language_name(language)
        return f"{reading.encoding}{f' ({name})' if name else ''}, score {reading.score:.3f}"

    why = f"{not_utf8}; chardet: {describe(best)}"
    if best is not readings[0] and readings[0].fit:
        share, language, _ = readings[0].fit
        why += f"; not {describe(readings[0])}: only {share:.0%} of its accented letters fit one of its languages ({_language_name(language) or language})"
    if best.score < _WEAK_SCORE:
        raise ReadError(path, f"cannot tell the encoding ({why}, too little text to tell): {hint}")
    other = next((reading for reading in plausible if reading.family != best.family), None)
    if best.fit is not None and best.fit[2] < _FEW_LETTERS and other:
        letters = f"{best.fit[2]} accented letter{'s' if best.fit[2] > 1 else ''}"
        raise ReadError(path, f"cannot tell the encoding ({why}; {letters} read as well in {other.encoding}): {hint}")
    rival = next((reading for reading in plausible[1:] if reading.family != best.family and reading.score >= _CLOSE * best.score), None)
    if rival:
        raise ReadError(path, f"cannot tell the encoding ({describe(best)}, or {describe(rival)}: both likely): {hint}")
    return best.encoding, why


def _alphabet_fit(text: str, languages: set[str]) -> tuple[float, str, int] | None:
    """(share, language, letters): the largest share of the accented letters of `text` that one of
    `languages` writes, and how many such letters there are; None when no alphabet of theirs is known
    or the text has none. Never fitting: a letter of another script in a word with Latin letters
    ('Niccolς'), and a capital after a small letter ('ŁódŸ', cp1250's ź read as cp1252)."""
    letters: dict[str, int] = {}
    total = 0
    for match in _WORD.finditer(text, 0, _FIT_CHARACTERS):
        word = match.group()
        if word.isascii():
            continue
        if total >= _FIT_LETTERS:
            break
        latin = any(character.isascii() for character in word)
        for before, character, after in zip(" " + word, word, word[1:] + " ", strict=False):
            if character.isascii():
                continue
            script = unicodedata.name(character, "")
            # Japanese and Chinese write Latin letters beside their own ('Tシャツ'), but hardly between two
            if script.startswith(_IDEOGRAPHIC):
                mixed = before.isascii() and before.isalpha() and after.isascii() and after.isalpha()
            else:
                mixed = latin and not script.startswith("LATIN")
            key = "?" if mixed or (character.isupper() and before.islower()) else character.lower()
            letters[key] = letters.get(key, 0) + 1
            total += 1
    known = languages & (_LETTERS.keys() | _SCRIPTS.keys())
    if not total or not known:
        return None

    def fitting(language: str) -> int:
        if language in _SCRIPTS:
            return sum(count for letter, count in letters.items() if unicodedata.name(letter, "").startswith(_SCRIPTS[language]))
        return sum(count for letter, count in letters.items() if letter in _LETTERS[language])

    language = max(sorted(known), key=fitting)
    return fitting(language) / total, language, total


def _language_name(alpha_2: str) -> str | None:
    """The language's English name ('Modern Greek (1453-)' without its years), None when unknown."""
    found = pycountry.languages.get(alpha_2=alpha_2)
    return found.name.removesuffix(" (1453-)") if found else None


def _text(raw: bytes, encoding: str, complete: bool) -> str | None:
    """The head decoded strictly, or None when it does not decode or holds C1 controls."""
    try:
        text = codecs.getincrementaldecoder(encoding)().decode(raw, complete)
    except (UnicodeDecodeError, LookupError):
        return None
    return None if _C1_CONTROL.search(text) else text
