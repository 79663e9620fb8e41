"""Settings of PII protection (`privacy:`): the columns declared personal data per source and per
target with their kind, whether the profile's detector flags more, and how exports carry them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import Field, model_validator

from harmonizer_pipeline.settings_model import ColumnName, EnvVarName, SettingsModel, SourceName

PiiKind = Literal["email", "phone", "card", "iban", "ssn", "ip", "name", "address", "birth_date", "other"]


class PrivacySettings(SettingsModel):
    sources: dict[SourceName, dict[ColumnName, PiiKind]] = Field(
        default_factory=dict,
        description="Per source: column -> the kind of personal data it holds (email, phone, card, iban, ssn, ip, name, address, birth_date, other).",
    )
    targets: dict[SourceName, dict[ColumnName, PiiKind]] = Field(default_factory=dict, description="Per target: column -> the kind of personal data it holds.")
    detect: bool = Field(default=True, description="Also treat as PII the columns the profile's detector flags (email, phone, card, iban, ssn, ip).")
    exports: Literal["clear", "masked", "pseudonymized"] = Field(
        default="clear",
        description=(
            "How PII columns are written to export files: clear (as stored), masked (as the UI shows them) or pseudonymized "
            "(HMAC-SHA256 with the key in pseudonymization_key_env, the same pseudonym for the same value in every run)."
        ),
    )
    reports: Literal["clear", "masked", "pseudonymized"] = Field(
        default="masked",
        description=(
            "How PII values (top values, ranges, fixes quoted) show on the HTML pages of files and targets written beside the exports: "
            "masked (as the UI shows them), clear or pseudonymized (as exports: pseudonymized)."
        ),
    )
    pseudonymization_key_env: EnvVarName | None = Field(default=None, description="Environment variable holding the pseudonymization key (read at run time).")
    pseudonym_digits: int = Field(default=16, ge=8, le=64, description="Hex digits of the HMAC-SHA256 kept as the pseudonym.")

    @model_validator(mode="after")
    def _key_for_pseudonyms(self) -> PrivacySettings:
        for field, how in (("exports", self.exports), ("reports", self.reports)):
            if how == "pseudonymized" and self.pseudonymization_key_env is None:
                raise ValueError(f"{field}: pseudonymized needs pseudonymization_key_env, the environment variable holding the key")
        return self


def privacy_problems(
    privacy: PrivacySettings, source_columns: Mapping[str, Sequence[str] | None], target_columns: Mapping[str, Sequence[str]]
) -> list[tuple[str, str]]:
    """(path below `privacy`, reason) for declarations naming a source, target or column that does
    not exist. `source_columns`: each source's columns when a strict schema lists them all, else None."""
    problems = []
    for section, declared, known in (("sources", privacy.sources, source_columns), ("targets", privacy.targets, target_columns)):
        for name, columns in declared.items():
            if name not in known:
                problems.append((f"{section}.{name}", f"no {section[:-1]} {name!r} ({section}: {sorted(known)})"))
                continue
            listed = known[name]
            for column in columns:
                if listed is not None and column not in listed:
                    problems.append((f"{section}.{name}.{column}", f"{name!r} has no column {column!r} (columns: {list(listed)})"))
    return problems
