"""Which columns hold personal data, and how their values leave the database (no dagster).

A column is PII when `privacy:` declares it (per source or per target, by name) or, unless
`privacy.detect` is off, when the profile's detector flags it (quality.profiling). A target's
column is PII when declared on the target or when a source column mapped into it is PII for that
source. What people see (Dagster UI metadata, alerts, logs, the CLI) is masked; export files are
written as `privacy.exports` says: clear, masked or pseudonymized. The stored tables keep clear
values: who may read them is the database roles' job.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from harmonizer_pipeline.privacy.masking import DETECTED_KINDS, is_missing, mask, pseudonymize
from harmonizer_pipeline.privacy.settings import PrivacySettings
from harmonizer_pipeline.settings import Settings


class PrivacyError(ValueError):
    """The protection asked for cannot be applied (its key is missing): one line naming the setting."""


def detected_kind(kinds: Sequence[str]) -> str | None:
    """The `privacy:` kind of the first PII kind the detector flagged, if any."""
    return next((name for kind, name in DETECTED_KINDS.items() if kind in kinds), None)


def source_columns(privacy: PrivacySettings, source: str, detected: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """The source's PII columns with their kind: those declared, and those the detector flagged
    (`detected`: column -> the detector's kinds) unless detection is off; a declared kind wins."""
    found = {column: kind for column, kinds in detected.items() if (kind := detected_kind(kinds))} if privacy.detect else {}
    return found | privacy.sources.get(source, {})


def target_columns(settings: Settings, target: str, detected: Mapping[str, Mapping[str, Sequence[str]]]) -> dict[str, str]:
    """The target's PII columns with their kind; `detected`: per source, what its profiles flagged."""
    found: dict[str, str] = {}
    for source in settings.sources_of(target):
        kinds = source_columns(settings.privacy, source, detected.get(source, {}))
        mapping = settings.sources[source].mapping
        for column in settings.targets[target].columns:
            feeding = mapping[column].source_columns() if column in mapping else [column]
            kind = next((kinds[c] for c in feeding if c in kinds), None)
            if kind is not None:
                found.setdefault(column, kind)
    return found | settings.privacy.targets.get(target, {})


@dataclass(frozen=True)
class Protection:
    """How the values of PII columns go out: `clear`, `masked`, or `pseudonymized` under `key`
    (cut to `digits` hex digits)."""

    how: str
    key: bytes = b""
    digits: int = 16

    def value(self, value: object, kind: str) -> object:
        if self.how == "masked":
            return mask(value, kind)
        if self.how == "pseudonymized":
            return pseudonymize(value, self.key, self.digits)
        return value

    def frame(self, frame: pd.DataFrame, columns: Mapping[str, str]) -> pd.DataFrame:
        """The frame with its PII columns protected (as text), each distinct value once."""
        present = [c for c in frame.columns if c in columns]
        if self.how == "clear" or not present:
            return frame
        protected = {}
        for column in present:
            codes, distinct = pd.factorize(frame[column], use_na_sentinel=True)
            values = pd.Series([self.value(v, columns[column]) for v in distinct], dtype="string")
            # NULLs (code -1, a label values lacks) stay NULL.
            protected[column] = values.reindex(codes).set_axis(frame.index)
        return frame.assign(**protected)

    def chunks(self, chunks: Iterable[pd.DataFrame], columns: Mapping[str, str]) -> Iterator[pd.DataFrame]:
        for chunk in chunks:
            yield self.frame(chunk, columns)

    def failure(self, record: Mapping, kind: str | None, value_key: str = "failure_case") -> dict:
        """A rejected-value record (`column`, the value, `message` quoting it) with its value protected."""
        value = record.get(value_key)
        if kind is None or self.how == "clear" or value is None or is_missing(value):
            return dict(record)
        shown = self.value(value, kind)
        message = record.get("message")
        return {**record, value_key: shown, "message": message.replace(repr(value), repr(shown)) if isinstance(message, str) else message}


CLEAR = Protection("clear")
MASKED = Protection("masked")


def export_protection(privacy: PrivacySettings, env: Mapping[str, str] | None = None) -> Protection:
    """The protection of export files; the pseudonymization key is read from its variable now."""
    return _protection(privacy, "exports", privacy.exports, env)


def page_protection(privacy: PrivacySettings, env: Mapping[str, str] | None = None) -> Protection:
    """The protection of the HTML pages beside the exports (privacy.reports)."""
    return _protection(privacy, "reports", privacy.reports, env)


def _protection(privacy: PrivacySettings, field: str, how: str, env: Mapping[str, str] | None) -> Protection:
    if how != "pseudonymized":
        return Protection(how)
    name = privacy.pseudonymization_key_env
    key = (os.environ if env is None else env).get(name or "")
    if not key:
        raise PrivacyError(f"privacy.pseudonymization_key_env: environment variable {name} is not set ({field}: pseudonymized needs the key)")
    return Protection("pseudonymized", key.encode(), privacy.pseudonym_digits)
