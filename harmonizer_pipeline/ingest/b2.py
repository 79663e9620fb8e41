"""Backblaze B2 landing zone, on b2sdk's v2 API."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any, cast

from b2sdk.v2 import B2Api, B2HttpApiConfig, Bucket, InMemoryAccountInfo
from b2sdk.v2.exception import B2Error
from b2sdk.v3 import AbstractRawApi

from harmonizer_pipeline.ingest.landing import (
    FetchedFile,
    LandedObject,
    LandingError,
    LandingZone,
    atomic_download,
    is_selected,
    split_glob,
)

MAX_PAGE_SIZE = 10_000  # the most b2_list_file_names returns per call
_WRITE_BUFFER = 1 << 20


def b2_api(
    application_key_id: str,
    application_key: str,
    *,
    # v3's base class: v2's config takes it, and v2's RawSimulator derives from it (not from v2's).
    raw_api_class: type[AbstractRawApi] | None = None,
) -> B2Api:
    """An authorized B2Api; raw_api_class (e.g. RawSimulator) replaces B2's HTTP API in tests."""
    # The default HTTP config keeps b2sdk's own retries on: B2Http retries 408/429/5xx, timeouts
    # and dropped connections (20 tries for downloads, 5 for API calls, exponential backoff),
    # SimpleDownloader resumes a body cut off midway, and B2Session re-authorizes with the key
    # kept in the account info when the auth token expires. A 1 MiB buffer writes downloads in
    # 1 MiB chunks rather than b2sdk's default of as little as 8 KiB.
    api = B2Api(
        # b2sdk/v2/api.py annotates account_info as v2's AbstractAccountInfo, which v2's own
        # InMemoryAccountInfo does not derive from (both add a mixin to v3's classes).
        InMemoryAccountInfo(),  # pyright: ignore[reportArgumentType]
        api_config=B2HttpApiConfig(_raw_api_class=raw_api_class),
        save_to_buffer_size=_WRITE_BUFFER,
    )
    try:
        api.authorize_account("production", application_key_id, application_key)
    except B2Error as exc:
        cause = str(exc).replace(application_key, "***") if application_key else str(exc)
        # "from None": the cause is quoted above, redacted; a chained one would print unredacted.
        raise LandingError(f"B2 authorization failed for application key id {application_key_id!r}: {cause}") from None
    return api


def v2_bucket(api: B2Api, name: str) -> Bucket:
    """The bucket `name`, as the v2 Bucket that v2's B2Api makes."""
    # v2's B2Api builds its buckets with BUCKET_CLASS, the v2 Bucket, but keeps the annotation of
    # v3's get_bucket_by_name, which names v3's Bucket.
    return cast(Bucket, api.get_bucket_by_name(name))


class B2Landing(LandingZone):
    """Files in a B2 bucket below a folder-like prefix; keys are full file names."""

    def __init__(self, api: B2Api, bucket: str, prefix: str = "", glob: str = "*", page_size: int = 1000):
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}: {page_size}")
        self.api = api
        self.bucket_name = bucket
        # A folder, as in the B2 web UI: "in" must not also select "in2/x.csv".
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.glob = glob
        self.page_size = page_size
        self._pattern = split_glob(glob)

    def describe(self) -> str:
        """e.g. "b2://bucket/prefix/ (*.csv)"."""
        return f"b2://{self.bucket_name}/{self.prefix} ({self.glob})"

    def list_objects(self, start_after: str | None = None) -> Iterator[LandedObject]:
        """Page through b2_list_file_names from start_after, fetching a page only when needed."""
        start = self._first_name(start_after)
        while start is not None:
            page = self._list_page(start)
            for entry in page["files"]:
                obj = self._landed(entry, start_after)
                if obj is not None:
                    yield obj
            start = page["nextFileName"]

    def fetch(self, obj: LandedObject, staging_dir: Path) -> FetchedFile:
        return FetchedFile(self.download(obj, staging_dir), staged=True)

    def download(self, obj: LandedObject, staging_dir: Path) -> Path:
        """Stream the object to staging, failing if its current version is not the listed one."""

        def fetch(target: Path) -> None:
            # By name, not by id: a deleted or hidden object fails here (as it does in the
            # simulator), and the id in the response headers tells whether it was replaced.
            downloaded = self._bucket.download_file_by_name(obj.key)
            current = downloaded.download_version.id_
            if current != obj.version:
                downloaded.response.close()
                raise LandingError(f"{obj.key!r} in {self.describe()} was replaced since it was listed (file id {obj.version} is now {current}); list it again")
            downloaded.save_to(target)

        return atomic_download(staging_dir, obj.key, fetch, self.describe(), (B2Error,))

    @cached_property
    def _bucket(self) -> Bucket:
        """The bucket, looked up on first use."""
        try:
            return v2_bucket(self.api, self.bucket_name)
        except B2Error as exc:
            raise LandingError(f"B2 bucket {self.bucket_name!r} does not exist or this key cannot access it: {exc}") from exc

    def _first_name(self, start_after: str | None) -> str | None:
        """The first name to request; None if start_after sorts after the whole prefix."""
        if start_after is None or start_after < self.prefix:
            return self.prefix
        if start_after.startswith(self.prefix):
            return start_after  # B2 starts at this name inclusive; _landed drops it
        return None

    def _list_page(self, start: str) -> dict[str, Any]:
        """One b2_list_file_names response."""
        try:
            return self.api.session.list_file_names(self._bucket.id_, start or None, self.page_size, self.prefix or None)
        except B2Error as exc:
            raise LandingError(f"cannot list {self.describe()}: {exc}") from exc

    def _landed(self, entry: dict[str, Any], start_after: str | None) -> LandedObject | None:
        """The listing of an uploaded, selected file after start_after, else None."""
        name = entry["fileName"]
        if entry["action"] != "upload" or (start_after is not None and name <= start_after):
            return None
        if not is_selected(name[len(self.prefix) :], self._pattern):
            return None
        return LandedObject(
            key=name,
            size=entry["contentLength"],
            modified=entry["uploadTimestamp"] / 1000,
            version=entry["fileId"],
            content_sha1=_content_sha1(entry),
        )


def _content_sha1(entry: dict) -> str | None:
    # Large (multi-part) files have no contentSha1; uploaders may put it in large_file_sha1.
    sha1 = entry.get("contentSha1")
    if sha1 and sha1 != "none":
        return sha1.removeprefix("unverified:")
    return (entry.get("fileInfo") or {}).get("large_file_sha1")
