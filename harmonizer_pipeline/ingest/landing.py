"""Landing zones: where input files arrive before ingestion (a local folder or a B2 bucket).

Both implementations share key selection (`glob`, hidden and partial files), staging paths and
atomic downloads, so a sensor behaves the same whichever zone it polls.

Glob semantics (both zones): the pattern is matched against the key relative to the zone root,
segment by segment and case-sensitively; `*`, `?` and `[...]` never cross a '/', and a `**`
segment matches any number of folders (including none). So "*.csv" selects top-level files only
and "**/*.csv" selects them at any depth.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

PARTIAL_SUFFIXES = (".part", ".tmp", ".crdownload")
_UNSAFE_CHARS = re.compile(r"[^\w.-]+")
_EXTENSION = re.compile(r"(?:\.[A-Za-z0-9]{1,10}){1,2}$")
_MAX_STEM_BYTES = 100


class LandingError(RuntimeError):
    """A landing zone could not be listed or an object could not be downloaded."""


@dataclass(frozen=True)
class LandedObject:
    """One object in a landing zone, as listed."""

    key: str
    size: int
    modified: float
    version: str
    content_sha1: str | None = None  # B2 lists it; a sensor can know the content without downloading


@dataclass
class FetchedFile:
    """A landed object's bytes as a local file: the zone's own file (a local folder's, read in place
    and never touched) or a copy in the staging folder, deleted by discard()."""

    path: Path
    staged: bool
    # Raises LandingError when the file is no longer the version listed (read in place: it may change).
    check_unchanged: Callable[[], None] = lambda: None

    def discard(self) -> None:
        if self.staged:
            self.path.unlink(missing_ok=True)


class LandingZone(ABC):
    """A place new input files land in, polled by sensors."""

    @abstractmethod
    def list_objects(self, start_after: str | None = None) -> Iterator[LandedObject]:
        """Stream every selected object with key > start_after, in ascending key order."""

    @abstractmethod
    def fetch(self, obj: LandedObject, staging_dir: Path) -> FetchedFile:
        """The listed version of obj as a local file to read: the file itself where the zone is
        local, else a copy downloaded atomically to safe_staging_path(staging_dir, obj.key)."""

    @abstractmethod
    def describe(self) -> str:
        """A human-readable location, never credentials."""


def safe_staging_path(staging_dir: Path, key: str) -> Path:
    """A path directly inside staging_dir for key: sanitised, hash-suffixed, extension kept."""
    segments = [s for s in re.split(r"[/\\]", key) if s not in ("", ".", "..")]
    flat = "__".join(segments)
    match = _EXTENSION.search(flat)
    extension = match.group() if match else ""
    stem = _UNSAFE_CHARS.sub("_", flat[: len(flat) - len(extension)]).strip("._-")
    # Keep the tail (the file name says more than its folders) within a byte budget, so that
    # name + hash + extension stays far below the usual 255-byte file name limit.
    stem = stem.encode()[-_MAX_STEM_BYTES:].decode(errors="ignore").lstrip("._-")
    # The hash of the raw key keeps distinct keys apart after sanitising; surrogatepass accepts
    # the lone surrogates os.fsdecode produces for undecodable local file names.
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return Path(staging_dir) / f"{stem or 'object'}-{digest}{extension}"


def split_glob(glob: str) -> tuple[str, ...]:
    """The segments of a zone glob, validated: relative to the zone root and inside it."""
    if not glob or glob.startswith("/"):
        raise ValueError(f"glob must be a non-empty pattern relative to the zone root: {glob!r}")
    segments = tuple(glob.split("/"))
    if ".." in segments:
        raise ValueError(f"glob must stay inside the zone ('..' leaves it): {glob!r}")
    if "" in segments or "." in segments:
        # Keys are plain relative paths: such a pattern would silently match nothing.
        raise ValueError(f"glob must not have an empty or '.' segment: {glob!r}")
    return segments


def is_hidden(name: str) -> bool:
    """Whether a file or folder name is hidden (still being written, or a placeholder)."""
    return name.startswith(".")


def is_selected(relative_key: str, pattern: Sequence[str]) -> bool:
    """Whether a key relative to the zone root is complete (not hidden or partial) and matches."""
    parts = relative_key.split("/")
    if any(is_hidden(part) for part in parts) or parts[-1].lower().endswith(PARTIAL_SUFFIXES):
        return False
    return _glob_matches(parts, pattern)


def _glob_matches(parts: Sequence[str], pattern: Sequence[str]) -> bool:
    """Segment-wise glob match where a '**' segment spans any number of segments."""
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_glob_matches(parts[i:], pattern[1:]) for i in range(len(parts) + 1))
    head_matches = bool(parts) and fnmatchcase(parts[0], pattern[0])
    return head_matches and _glob_matches(parts[1:], pattern[1:])


def atomic_download(
    staging_dir: Path,
    key: str,
    write: Callable[[Path], None],
    zone: str,
    errors: tuple[type[Exception], ...] = (),
) -> Path:
    """write() a temp file in staging_dir, then rename it onto the key's staging path."""
    # OSError and the zone's own `errors` become one LandingError naming the key and the zone.
    target = safe_staging_path(staging_dir, key)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # A hidden '.part' name: a LocalLanding over the staging folder never picks it up.
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        os.close(fd)
        try:
            write(Path(temp))
            os.replace(temp, target)
        finally:
            with suppress(FileNotFoundError):
                os.unlink(temp)
    except (OSError, *errors) as exc:
        raise LandingError(f"cannot download {key!r} from {zone}: {exc}") from exc
    return target


def _local_version(st: os.stat_result) -> str:
    """The version string of a local file."""
    return f"{st.st_mtime_ns}:{st.st_size}"


class LocalLanding(LandingZone):
    """Files under a local folder; keys are POSIX paths relative to it."""

    def __init__(self, root: Path, glob: str = "*"):
        self.root = Path(root)
        self.glob = glob
        self._pattern = split_glob(glob)

    def describe(self) -> str:
        """e.g. "local folder /data/in (*.csv)"."""
        return f"local folder {self.root} ({self.glob})"

    def list_objects(self, start_after: str | None = None) -> Iterator[LandedObject]:
        """Walk the folder depth-first in key order, one directory listing at a time."""
        return self._walk(self.root, "", self._real_root(), start_after)

    def fetch(self, obj: LandedObject, staging_dir: Path) -> FetchedFile:
        """The file itself, read in place (a copy would cost a pass over it): the reader checks
        before committing that it is still the listed version."""
        source = self._source(obj.key)
        try:
            self._check_version(obj, os.stat(source))
        except OSError as exc:
            raise LandingError(f"cannot read {obj.key!r} in {self.describe()}: {exc}") from exc
        return FetchedFile(source, staged=False, check_unchanged=lambda: self._check_unchanged(obj, source))

    def sha256(self, obj: LandedObject) -> str:
        """SHA-256 of the listed version of obj (LandingError if it changes while being hashed)."""
        source = self._source(obj.key)
        try:
            with open(source, "rb") as file:
                self._check_version(obj, os.fstat(file.fileno()))
                digest = hashlib.file_digest(file, "sha256")
                self._check_version(obj, os.fstat(file.fileno()))
        except OSError as exc:
            raise LandingError(f"cannot read {obj.key!r} in {self.describe()}: {exc}") from exc
        return digest.hexdigest()

    def _check_unchanged(self, obj: LandedObject, source: Path) -> None:
        try:
            self._check_version(obj, os.stat(source))
        except OSError as exc:
            raise LandingError(f"{obj.key!r} in {self.describe()} disappeared while it was loaded: {exc}") from exc

    def _real_root(self) -> Path:
        """The resolved root folder, which must exist."""
        if not self.root.is_dir():
            raise LandingError(f"{self.describe()} does not exist or is not a folder")
        return self.root.resolve()

    def _walk(self, folder: Path, prefix: str, real_root: Path, start_after: str | None) -> Iterator[LandedObject]:
        """Yield selected files below folder (keys starting with prefix) in key order."""
        for sort_name, entry in _sorted_entries(folder):
            key = prefix + sort_name
            if is_hidden(entry.name) or not _may_contain_keys_after(key, start_after):
                continue
            if key.endswith("/"):
                yield from self._walk(Path(entry.path), key, real_root, start_after)
            elif is_selected(key, self._pattern):
                obj = _landed_file(entry, key, real_root)
                if obj is not None:
                    yield obj

    def _source(self, key: str) -> Path:
        """The file a listed key refers to, refusing keys that lead outside the root."""
        source = self.root / key
        real = Path(os.path.realpath(source))
        if Path(key).is_absolute() or not _is_inside(real, self._real_root()):
            raise LandingError(f"{key!r} is not a file inside {self.describe()}")
        return source

    def _check_version(self, obj: LandedObject, st: os.stat_result) -> None:
        """Fail if the file changed since it was listed (it will be listed again)."""
        if _local_version(st) != obj.version:
            raise LandingError(
                f"{obj.key!r} in {self.describe()} changed since it was listed (version {obj.version} is now {_local_version(st)}); list it again"
            )


def _sorted_entries(folder: Path) -> list[tuple[str, os.DirEntry[str]]]:
    """Entries of folder, folders named with a trailing '/', sorted by that name."""
    # Sorting "name/" for folders makes a depth-first walk emit keys in plain string order:
    # "a-b.csv" < "a/x.csv" although the folder "a" < "a-b.csv".
    try:
        with os.scandir(folder) as it:
            entries = [(e.name + "/" if e.is_dir(follow_symlinks=False) else e.name, e) for e in it]
    except FileNotFoundError:  # removed while we were walking
        return []
    except OSError as exc:
        raise LandingError(f"cannot list {folder}: {exc}") from exc
    return sorted(entries, key=lambda pair: pair[0])


def _may_contain_keys_after(key: str, start_after: str | None) -> bool:
    """Whether a file key, or a folder key ending in '/', holds keys > start_after."""
    if start_after is None:
        return True
    if key.endswith("/"):
        return start_after < key or start_after.startswith(key)
    return key > start_after


def _landed_file(entry: os.DirEntry[str], key: str, real_root: Path) -> LandedObject | None:
    """The listing of a regular file (through an in-root symlink too), else None."""
    if entry.is_symlink() and not _is_inside(Path(os.path.realpath(entry.path)), real_root):
        return None
    try:
        st = entry.stat()
    except FileNotFoundError:  # dangling symlink, or removed since scandir
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return LandedObject(key=key, size=st.st_size, modified=st.st_mtime, version=_local_version(st))


def _is_inside(path: Path, real_root: Path) -> bool:
    """Whether a resolved path lies strictly below the resolved root."""
    return path != real_root and path.is_relative_to(real_root)
