"""Settings of monitoring (`alerts:`, `trends:`): the alert channels and the run-to-run trends."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from harmonizer_pipeline.settings_model import EnvVarName, SettingsModel

AlertEvent = Literal["run_failure", "check_failure", "check_warning"]


class WebhookChannel(SettingsModel):
    url_env: EnvVarName = Field(description="Environment variable holding the URL each alert is POSTed to as JSON.")


class SlackChannel(SettingsModel):
    webhook_url_env: EnvVarName = Field(description="Environment variable holding the Slack incoming-webhook URL.")


class EmailChannel(SettingsModel):
    host: str = Field(description="SMTP server: a host name or address, not a URL.")
    port: int = Field(default=587, ge=1, le=65535, description="587 (STARTTLS) by default, 465 with ssl.")
    starttls: bool = Field(default=True, description="Upgrade the connection with STARTTLS (certificate verified) before logging in.")
    ssl: bool = Field(default=False, description="TLS from the first byte (implicit TLS, SMTPS), certificate verified.")
    username_env: EnvVarName | None = Field(default=None, description="Environment variable holding the SMTP user name.")
    password_env: EnvVarName | None = Field(default=None, description="Environment variable holding the SMTP password.")
    sender: str
    recipients: list[str] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _ssl_defaults(cls, value: Any) -> Any:
        # `ssl: true` alone means implicit TLS on 465, not STARTTLS on 587 as well.
        if isinstance(value, dict) and value.get("ssl") is True:
            return {"starttls": False, "port": 465, **value}
        return value

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not value or any(c.isspace() or c in "/@" for c in value):
            raise ValueError(f"{value!r} is not a host name or address (smtp.example.org)")
        return value

    @field_validator("sender", "recipients")
    @classmethod
    def _addresses(cls, value: str | list[str]) -> str | list[str]:
        for address in [value] if isinstance(value, str) else value:
            # One address each (no name, no list): it goes to the SMTP envelope as it is.
            parts = address.split("@")
            if len(parts) != 2 or not all(part and not any(c.isspace() or c in ',;<>"' for c in part) for part in parts):
                raise ValueError(f"{address!r} is not an e-mail address (name@domain)")
        return value

    @model_validator(mode="after")
    def _tls_and_credentials(self) -> EmailChannel:
        if self.starttls and self.ssl:
            raise ValueError("give starttls (a plain connection upgraded, port 587) or ssl (TLS from the start, port 465), not both")
        if (self.username_env is None) != (self.password_env is None):
            raise ValueError("give both username_env and password_env, or neither")
        if self.username_env and not (self.starttls or self.ssl):
            raise ValueError("username_env and password_env need starttls: true or ssl: true, else the password goes in clear")
        return self


class Alerts(SettingsModel):
    ui_url: str = Field(default="http://localhost:3000", pattern=r"^https?://", description="The Dagster UI's address, for the run links in alerts.")
    on: list[AlertEvent] = Field(default_factory=lambda: ["run_failure", "check_failure", "check_warning"], description="Which events alert.")
    timeout_seconds: float = Field(default=10.0, gt=0, description="How long one channel may take to accept an alert.")
    webhook: WebhookChannel | None = None
    slack: SlackChannel | None = None
    email: EmailChannel | None = None

    def channels(self) -> list[WebhookChannel | SlackChannel | EmailChannel]:
        return [c for c in (self.webhook, self.slack, self.email) if c is not None]


class Trends(SettingsModel):
    min_history: int = Field(
        default=5, ge=5, description="Earlier files a metric needs before the latest is judged against them (at least 5: a median and MAD of fewer say little)."
    )
    window: int = Field(default=30, ge=3, description="How many earlier files the comparison looks back over.")
    z_threshold: float = Field(default=3.5, gt=0, description="Robust z-score (median/MAD) beyond which a metric is an anomaly.")
    shown_runs: int = Field(default=10, ge=1, description="Files listed in the markdown table of the last runs.")

    @model_validator(mode="after")
    def _window_holds_the_history(self) -> Trends:
        # A window narrower than min_history would silently never judge a file.
        if self.window < self.min_history:
            raise ValueError(f"window {self.window} is smaller than min_history {self.min_history}: no file would ever be judged")
        return self
