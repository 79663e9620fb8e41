"""Masking and pseudonymizing personal data, value by value (no dagster).

A mask keeps what a person needs to recognise the shape of a value, never the value: an e-mail
keeps its first letter and its domain (`j***@example.org`), a phone number its country code and
last two digits (`+49 *** **67`), a card or IBAN its last four characters, an SSN-like number its
last two digits, an IP address its first octet, a name its initials (`J*** S***`), a birth date
its year; anything else becomes `***`. Every mask holds a `*`, and masking a mask gives it back
unchanged. A pseudonym is the HMAC-SHA256 of the value's text under a secret key, cut to a number
of hex digits: the same value gives the same pseudonym in every run, so joins still work.
NULL, '' and blank values stay as they are in both.

`scrub_text` masks the PII found inside free text (an error or alert message) with the profile
detector's own patterns and check digits.
"""

from __future__ import annotations

import ast
import datetime as dt
import hashlib
import hmac
import ipaddress
import math
import re
from collections.abc import Callable

import pandas as pd
import phonenumbers

from harmonizer_pipeline.quality.profiling import PII_PATTERNS, is_pii

HIDDEN = "***"

# The detector's kinds under the names `privacy:` declares them by, the most specific first (an
# SSN also reads as a grouped phone number).
DETECTED_KINDS = {"card": "card", "iban": "iban", "national_id": "ssn", "email": "email", "ip": "ip", "phone": "phone"}


def is_missing(value: object) -> bool:
    """NULL (None, NaN, NaT, pd.NA) or a text of nothing but whitespace: left as it is."""
    if isinstance(value, str):
        return not value.strip()
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def as_text(value: object) -> str:
    """The text a value is masked or pseudonymized as (dates in ISO form, whole floats without .0)."""
    if isinstance(value, (dt.date, dt.datetime, pd.Timestamp)):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _email(text: str) -> str:
    local, at, domain = text.rpartition("@")
    return f"{local[0]}{HIDDEN}@{domain}" if at and local and domain else HIDDEN


def _phone(text: str) -> str:
    digits = _digits(text)
    if len(digits) < 6:
        return HIDDEN
    tail = f"{HIDDEN} **{digits[-2:]}"
    international = "+" + text.lstrip()[2:] if text.lstrip().startswith("00") else text
    try:
        number = phonenumbers.parse(international, None)
    except phonenumbers.NumberParseException:  # no country code given
        return tail
    return f"+{number.country_code} {tail}"


def _card(text: str) -> str:
    digits = _digits(text)
    return f"**** {digits[-4:]}" if len(digits) >= 8 else HIDDEN


def _iban(text: str) -> str:
    compact = re.sub(r"\s", "", text).upper()
    return f"{compact[:2]}** **** {compact[-4:]}" if re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{8,}", compact) else HIDDEN


def _ssn(text: str) -> str:
    digits = _digits(text)
    return f"***-**-**{digits[-2:]}" if len(digits) >= 6 else HIDDEN


def _ip(text: str) -> str:
    if not _is_address(text.strip()):
        return HIDDEN
    address = ipaddress.ip_address(text.strip())
    first = str(address).split(".")[0] if address.version == 4 else address.exploded.split(":")[0]
    return f"{first}.*.*.*" if address.version == 4 else f"{first}:*:*:*"


def _name(text: str) -> str:
    return " ".join(f"{word[0]}{HIDDEN}" for word in text.split())


def _birth_date(text: str) -> str:
    year = re.search(r"(?<!\d)(?:1[89]\d\d|20\d\d)(?!\d)", text)
    return f"{year.group()}-**-**" if year else HIDDEN


def _hidden(text: str) -> str:
    return HIDDEN


# Each kind: its mask, and the shape of the mask (a value of that shape is a mask already).
MASKERS: dict[str, tuple[Callable[[str], str], re.Pattern]] = {
    "email": (_email, re.compile(r"[^@]\*\*\*@.+")),
    "phone": (_phone, re.compile(r"(?:\+\d{1,3} )?\*\*\* \*\*\d{2}")),
    "card": (_card, re.compile(r"\*\*\*\* \d{4}")),
    "iban": (_iban, re.compile(r"[A-Z]{2}\*\* \*\*\*\* [A-Z0-9]{4}")),
    "ssn": (_ssn, re.compile(r"\*\*\*-\*\*-\*\*\d{2}")),
    "ip": (_ip, re.compile(r"[0-9a-fA-F]{1,4}(?:[.:]\*){3}")),
    "name": (_name, re.compile(r"\S\*\*\*(?: \S\*\*\*)*")),
    "address": (_hidden, re.compile(re.escape(HIDDEN))),
    "birth_date": (_birth_date, re.compile(r"\d{4}-\*\*-\*\*")),
    "other": (_hidden, re.compile(re.escape(HIDDEN))),
}


def mask(value: object, kind: str) -> object:
    """The value as people may see it: masked by its kind (NULL, '' and blanks as they are)."""
    return value if is_missing(value) else _masked(as_text(value), kind)


def _masked(text: str, kind: str) -> str:
    masker, shape = MASKERS[kind]
    return text if shape.fullmatch(text) else masker(text)


def pseudonymize(value: object, key: bytes, digits: int) -> object:
    """The first `digits` hex digits of HMAC-SHA256(key, value's text) (NULL, '' and blanks as they are)."""
    if is_missing(value):
        return value
    return hmac.new(key, as_text(value).encode(), hashlib.sha256).hexdigest()[:digits]


# Most specific first: a card number also reads as a grouped phone number.
_SCRUBBED = ("email", "iban", "card", "national_id", "ip", "phone")
_IN_TEXT = {kind: re.compile(rf"(?<![\w+@.])(?:{PII_PATTERNS[kind]})(?![\w@])") for kind in _SCRUBBED}


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _scrubbed(found: re.Match, kind: str) -> str:
    value = found.group()
    # The detector's IP pattern also takes a time of day (10:15:00) for IPv6: in words, an address must parse.
    if not is_pii(value, kind) or (kind == "ip" and not _is_address(value)):
        return value
    return _masked(value, DETECTED_KINDS[kind])


def scrub_text(text: str) -> str:
    """The text with every value the detector takes for PII masked by its kind."""
    for kind in _SCRUBBED:
        text = _IN_TEXT[kind].sub(lambda found, kind=kind: _scrubbed(found, kind), text)
    return text


_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


def mask_quoted(text: str, kind: str) -> str:
    """The text with each quoted value (as Python's repr quotes it) masked by `kind`."""

    def masked(found: re.Match) -> str:
        try:
            value = ast.literal_eval(found.group())
        except (ValueError, SyntaxError):
            return HIDDEN
        return repr(mask(value, kind))

    return _QUOTED.sub(masked, text)
