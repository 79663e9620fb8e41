"""Landing zones: the local folder on real files, B2 through b2sdk's own RawSimulator."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import logging
import os
import time
import traceback
from pathlib import Path

import pytest
from b2sdk.v2 import B2Api, Bucket, RawSimulator

from harmonizer_pipeline.ingest.b2 import B2Landing, b2_api
from harmonizer_pipeline.ingest.landing import (
    LandedObject,
    LandingError,
    LandingZone,
    LocalLanding,
    safe_staging_path,
)

MiB = 1 << 20


def write(path: Path, data: bytes | str = "x") -> Path:
    """Create path (and its folders) holding data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)
    return path


def keys(zone: LandingZone, start_after: str | None = None) -> list[str]:
    """The keys a zone lists."""
    return [obj.key for obj in zone.list_objects(start_after)]


# --- local folder -----------------------------------------------------------------------------


def test_local_lists_in_key_order_with_globs_across_subfolders(tmp_path: Path) -> None:
    for key in ["b.csv", "a/y/z.csv", "a-b.csv", "notes.txt", "a/x.csv", "A.csv", "a.csv"]:
        write(tmp_path / key)

    # "a-b.csv" < "a.csv" < "a/x.csv" although the folder "a" sorts before both files.
    everything = ["A.csv", "a-b.csv", "a.csv", "a/x.csv", "a/y/z.csv", "b.csv", "notes.txt"]
    assert keys(LocalLanding(tmp_path, "**/*")) == everything
    assert keys(LocalLanding(tmp_path)) == ["A.csv", "a-b.csv", "a.csv", "b.csv", "notes.txt"]
    assert keys(LocalLanding(tmp_path, "*.csv")) == ["A.csv", "a-b.csv", "a.csv", "b.csv"]
    assert keys(LocalLanding(tmp_path, "**/*.csv")) == [k for k in everything if k.endswith(".csv")]
    assert keys(LocalLanding(tmp_path, "a/*.csv")) == ["a/x.csv"]
    assert keys(LocalLanding(tmp_path, "a/**/*.csv")) == ["a/x.csv", "a/y/z.csv"]
    assert LocalLanding(tmp_path, "*.csv").describe() == f"local folder {tmp_path} (*.csv)"


def test_local_skips_partial_hidden_special_and_escaping_files(tmp_path: Path) -> None:
    outside = write(tmp_path / "outside" / "secret.csv")
    root = tmp_path / "in"
    for key in ["ok.csv", "sub/deep.csv", ".hidden.csv", ".staging/inner.csv", "big.csv.part", "x.TMP", "y.csv.crdownload"]:
        write(root / key)
    (root / "escape.csv").symlink_to(outside)
    (root / "relative_escape.csv").symlink_to(Path("..") / "outside" / "secret.csv")
    (root / "escape_dir").symlink_to(outside.parent, target_is_directory=True)
    (root / "inside.csv").symlink_to(root / "sub" / "deep.csv")
    (root / "dangling.csv").symlink_to(root / "missing.csv")
    os.mkfifo(root / "pipe.csv")

    assert keys(LocalLanding(root, "**/*")) == ["inside.csv", "ok.csv", "sub/deep.csv"]


def test_local_resumes_after_start_after(tmp_path: Path) -> None:
    names = ["a/1.csv", "a/2.csv", "b.csv", "c/d/e.csv"]
    for key in names:
        write(tmp_path / key)
    zone = LocalLanding(tmp_path, "**/*.csv")

    for key in names:
        assert keys(zone, key) == [k for k in names if k > key]
    assert keys(zone, "") == names
    assert keys(zone, "a/") == names
    assert keys(zone, "a/1.csvz") == ["a/2.csv", "b.csv", "c/d/e.csv"]
    assert keys(zone, "c/d/") == ["c/d/e.csv"]
    assert keys(zone, "z") == []


def test_local_version_changes_with_content(tmp_path: Path) -> None:
    file = write(tmp_path / "a.csv", "1,2\n")
    zone = LocalLanding(tmp_path)
    [first] = zone.list_objects()
    assert (first.size, first.modified) == (4, file.stat().st_mtime)

    file.write_text("1,2\n3,4\n")
    [grown] = zone.list_objects()
    # A same-size rewrite a second later (set explicitly: two writes in one test can share a
    # file system timestamp tick).
    before = file.stat()
    file.write_text("9,9\n8,8\n")
    os.utime(file, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    [rewritten] = zone.list_objects()

    assert len({first.version, grown.version, rewritten.version}) == 3


def test_a_local_file_is_read_in_place_and_checked_before_its_load_commits(tmp_path: Path) -> None:
    file = write(tmp_path / "in" / "a.csv", "1,2\n")
    zone = LocalLanding(tmp_path / "in")
    [obj] = zone.list_objects()
    fetched = zone.fetch(obj, tmp_path / "staging")
    assert (fetched.path, fetched.staged) == (file, False)
    fetched.check_unchanged()
    fetched.discard()  # the zone's own file: never deleted
    assert file.read_text() == "1,2\n" and not (tmp_path / "staging").exists()

    file.write_text("1,2\n3,4\n")
    with pytest.raises(LandingError, match="'a.csv'.*changed since it was listed"):
        fetched.check_unchanged()
    with pytest.raises(LandingError, match="'a.csv'.*changed since it was listed"):
        zone.fetch(obj, tmp_path / "staging")
    file.unlink()
    with pytest.raises(LandingError, match="'a.csv' in local folder .* disappeared while it was loaded"):
        fetched.check_unchanged()


def test_local_sha256_is_of_the_listed_version_only(tmp_path: Path) -> None:
    file = write(tmp_path / "in" / "a.csv", "1,2\n")
    zone = LocalLanding(tmp_path / "in")
    [obj] = zone.list_objects()
    assert zone.sha256(obj) == hashlib.sha256(b"1,2\n").hexdigest()
    file.write_text("changed\n")
    with pytest.raises(LandingError, match="changed since it was listed"):
        zone.sha256(obj)


def test_local_refuses_missing_root_and_foreign_keys(tmp_path: Path) -> None:
    write(tmp_path / "outside.csv")
    with pytest.raises(LandingError, match="does not exist"):
        keys(LocalLanding(tmp_path / "nope"))
    zone = LocalLanding(tmp_path / "in")
    (tmp_path / "in").mkdir()
    [outside] = LocalLanding(tmp_path).list_objects()
    forged: LandedObject = dataclasses.replace(outside, key="../outside.csv")
    with pytest.raises(LandingError, match="not a file inside"):
        zone.fetch(forged, tmp_path / "staging")
    with pytest.raises(LandingError, match="not a file inside"):
        zone.sha256(forged)


# --- staging paths ----------------------------------------------------------------------------

HOSTILE_KEYS = {
    "../../etc/passwd": "",
    "/abs/path.csv": ".csv",
    "a/../../b.csv": ".csv",
    "a\\b.csv": ".csv",
    "nul\x00.csv": ".csv",
    "ctrl\x1b[31m\n.csv": ".csv",
    "con.csv": ".csv",
    "x" * 300 + ".csv": ".csv",
    "é" * 300 + ".xlsx": ".xlsx",
    "/".join(["d" * 200] * 5) + "/f.csv": ".csv",
    "": "",
    ".": "",
    "..": "",
    "dir/": "",
    ".bashrc": ".bashrc",
    "ünïcødé name.csv": ".csv",
    "a/b.csv": ".csv",
    "a__b.csv": ".csv",
    "data.csv.gz": ".gz",
}


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_safe_staging_path_stays_inside_and_keeps_the_extension(tmp_path: Path, key: str) -> None:
    path = safe_staging_path(tmp_path, key)

    assert path.parent == tmp_path
    assert path.resolve().parent == tmp_path.resolve()
    assert not path.name.startswith(".")
    assert len(path.name.encode()) <= 160
    assert path.suffix == HOSTILE_KEYS[key]
    write(path, b"ok")  # the file system accepts the name
    assert safe_staging_path(tmp_path, key) == path


def test_safe_staging_path_never_maps_two_keys_to_one_path(tmp_path: Path) -> None:
    paths = {safe_staging_path(tmp_path, key) for key in HOSTILE_KEYS}
    assert len(paths) == len(HOSTILE_KEYS)
    assert safe_staging_path(tmp_path, "data.csv.gz").name.endswith(".csv.gz")


# --- B2, through b2sdk's RawSimulator ---------------------------------------------------------


@pytest.fixture
def simulator() -> RawSimulator:
    return RawSimulator()


@pytest.fixture
def credentials(simulator: RawSimulator) -> tuple[str, str]:
    """(application key id, application key) of a new simulated account."""
    return simulator.create_account()


def simulated_api(simulator: RawSimulator, key_id: str, key: str) -> B2Api:
    """b2_api against this simulator instance, which holds the account."""
    return b2_api(key_id, key, raw_api_class=lambda _b2_http: simulator)


@pytest.fixture
def api(simulator: RawSimulator, credentials: tuple[str, str]) -> B2Api:
    return simulated_api(simulator, *credentials)


@pytest.fixture
def bucket(api: B2Api) -> Bucket:
    return api.create_bucket("landing", "allPrivate")


def test_b2_pages_through_the_prefix_in_key_order(api: B2Api, bucket: Bucket) -> None:
    inside = [f"incoming/{letter}.csv" for letter in "jihgfedcba"]
    versions = {name: bucket.upload_bytes(name.encode(), name) for name in inside}
    for name in ["incoming2/x.csv", "aaa.csv", "other/y.csv", "incoming/.bzEmpty", "incoming/big.csv.part", "incoming/gone.csv"]:
        bucket.upload_bytes(b"x", name)
    bucket.hide_file("incoming/gone.csv")
    zone = B2Landing(api, "landing", prefix="incoming", glob="**/*", page_size=3)

    listed = list(zone.list_objects())

    assert [obj.key for obj in listed] == sorted(inside)
    for obj in listed:
        version = versions[obj.key]
        assert (obj.version, obj.size) == (version.id_, len(obj.key))
        assert obj.modified == version.upload_timestamp / 1000
    assert zone.describe() == "b2://landing/incoming/ (**/*)"


def test_b2_start_after_and_glob(api: B2Api, bucket: Bucket) -> None:
    names = ["in/a.csv", "in/b.txt", "in/c.csv", "in/sub/d.csv", "in/sub/e.txt"]
    for name in names + ["in-x.csv", "in0.csv"]:
        bucket.upload_bytes(b"x", name)

    def zone(glob: str) -> B2Landing:
        return B2Landing(api, "landing", prefix="in/", glob=glob, page_size=2)

    assert keys(zone("*.csv")) == ["in/a.csv", "in/c.csv"]
    assert keys(zone("**/*.csv")) == ["in/a.csv", "in/c.csv", "in/sub/d.csv"]
    assert keys(zone("sub/*")) == ["in/sub/d.csv", "in/sub/e.txt"]
    for name in names:
        assert keys(zone("**/*"), name) == [n for n in names if n > name]
    assert keys(zone("**/*"), "a") == names
    assert keys(zone("**/*"), "in/b") == names[1:]
    assert keys(zone("**/*"), "in0") == []
    assert keys(zone("**/*"), "zzz") == []


def test_b2_download_of_a_multi_mb_object(api: B2Api, bucket: Bucket, tmp_path: Path) -> None:
    data = os.urandom(3 * MiB)
    bucket.upload_bytes(data, "in/ünïcødé name.csv")
    zone = B2Landing(api, "landing", prefix="in")

    [obj] = zone.list_objects()
    path = zone.download(obj, tmp_path)

    assert path.read_bytes() == data
    assert path.suffix == ".csv"
    assert list(tmp_path.iterdir()) == [path]


def test_b2_lists_lazily_so_an_upload_between_pages_appears(api: B2Api, bucket: Bucket) -> None:
    for i in range(6):
        bucket.upload_bytes(b"x", f"in/{i}.csv")
    listing = B2Landing(api, "landing", prefix="in", page_size=3).list_objects()

    first_page = [next(listing).key for _ in range(3)]
    bucket.upload_bytes(b"x", "in/4a.csv")
    rest = [obj.key for obj in listing]

    assert first_page + rest == [f"in/{n}.csv" for n in ["0", "1", "2", "3", "4", "4a", "5"]]


def test_b2_lists_10k_objects_quickly_one_page_at_a_time(simulator: RawSimulator, api: B2Api, bucket: Bucket, monkeypatch: pytest.MonkeyPatch) -> None:
    # The simulator numbers at most 4999 uploads per bucket; widen its counters for 10 000.
    simulated_bucket = simulator.bucket_name_to_bucket["landing"]
    simulated_bucket.upload_timestamp_counter = itertools.count(5000)
    simulated_bucket.file_id_counter = itertools.count(10**6, -1)
    names = [f"in/{i:05d}.csv" for i in range(10_000)]
    for name in names:
        bucket.upload_bytes(b"x", name)
    page_sizes: list[int] = []
    list_file_names = simulator.list_file_names

    def recording_list_file_names(*args, **kwargs):
        page_sizes.append(kwargs["max_file_count"])
        return list_file_names(*args, **kwargs)

    monkeypatch.setattr(simulator, "list_file_names", recording_list_file_names)

    started = time.perf_counter()
    listing = B2Landing(api, "landing", prefix="in", glob="*.csv").list_objects()
    first = next(listing).key
    pages_for_first = len(page_sizes)
    listed = [first] + [obj.key for obj in listing]
    elapsed = time.perf_counter() - started

    print(f"listed 10 000 B2 objects in {elapsed:.3f} s over {len(page_sizes)} pages")
    assert listed == names
    assert pages_for_first == 1
    assert set(page_sizes) == {1000} and len(page_sizes) <= 11  # maybe one empty last page
    assert elapsed < 2.0


def cut_off_bodies(simulator: RawSimulator, monkeypatch: pytest.MonkeyPatch, times: int) -> type:
    """Make the simulated server close the connection halfway through the next `times` bodies."""
    simulated_bucket = simulator.bucket_name_to_bucket["landing"]

    class CutOffResponse(simulated_bucket.RESPONSE_CLASS):
        remaining = times
        served = 0

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            CutOffResponse.served += 1
            if CutOffResponse.remaining:
                CutOffResponse.remaining -= 1
                self.data_bytes = self.data_bytes[: len(self.data_bytes) // 2]

    monkeypatch.setattr(simulated_bucket, "RESPONSE_CLASS", CutOffResponse)
    return CutOffResponse


def test_b2_download_resumes_bodies_cut_off_midway(
    simulator: RawSimulator,
    api: B2Api,
    bucket: Bucket,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = os.urandom(2 * MiB)
    bucket.upload_bytes(data, "in/data.csv")
    zone = B2Landing(api, "landing", prefix="in")
    [obj] = zone.list_objects()
    responses = cut_off_bodies(simulator, monkeypatch, times=3)

    path = zone.download(obj, tmp_path)

    assert path.read_bytes() == data
    assert responses.served == 4  # the first request and three resumed ranges


def test_b2_download_gives_up_after_b2sdk_retries(
    simulator: RawSimulator,
    api: B2Api,
    bucket: Bucket,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket.upload_bytes(os.urandom(MiB), "in/data.csv")
    zone = B2Landing(api, "landing", prefix="in")
    [obj] = zone.list_objects()
    cut_off_bodies(simulator, monkeypatch, times=100)

    with pytest.raises(LandingError, match=r"cannot download 'in/data.csv' from b2://landing/in/"):
        zone.download(obj, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_b2_listing_survives_an_expired_auth_token(simulator: RawSimulator, api: B2Api, bucket: Bucket) -> None:
    for i in range(6):
        bucket.upload_bytes(b"x", f"in/{i}.csv")
    listing = B2Landing(api, "landing", prefix="in", page_size=3).list_objects()
    first_page = [next(listing).key for _ in range(3)]
    token = api.account_info.get_account_auth_token()

    simulator.expire_auth_token(token)
    rest = [obj.key for obj in listing]

    assert first_page + rest == [f"in/{i}.csv" for i in range(6)]
    assert api.account_info.get_account_auth_token() != token  # b2sdk re-authorized by itself


@pytest.mark.parametrize("remove", ["delete", "hide"])
def test_b2_download_of_a_vanished_object(api: B2Api, bucket: Bucket, tmp_path: Path, remove: str) -> None:
    version = bucket.upload_bytes(b"x", "in/a.csv")
    zone = B2Landing(api, "landing", prefix="in")
    [obj] = zone.list_objects()

    if remove == "delete":
        api.delete_file_version(version.id_, version.file_name)
    else:
        bucket.hide_file(version.file_name)

    vanished = r"cannot download 'in/a.csv' from b2://landing/in/.*not present"
    with pytest.raises(LandingError, match=vanished):
        zone.download(obj, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_b2_download_of_a_replaced_object(api: B2Api, bucket: Bucket, tmp_path: Path) -> None:
    bucket.upload_bytes(b"old", "in/a.csv")
    zone = B2Landing(api, "landing", prefix="in")
    [obj] = zone.list_objects()
    bucket.upload_bytes(b"new content", "in/a.csv")

    with pytest.raises(LandingError, match="'in/a.csv' in b2://landing/in/ .*was replaced"):
        zone.download(obj, tmp_path)
    [new] = zone.list_objects()
    assert zone.download(new, tmp_path).read_bytes() == b"new content"


def test_b2_missing_bucket(api: B2Api, tmp_path: Path) -> None:
    zone = B2Landing(api, "no-such-bucket")
    with pytest.raises(LandingError, match="B2 bucket 'no-such-bucket' does not exist"):
        keys(zone)


def assert_secret_absent(error: BaseException, secret: str) -> None:
    """Neither the message nor the printed traceback mentions the secret."""
    assert secret not in str(error)
    assert secret not in "".join(traceback.format_exception(error))


def test_b2_wrong_key_is_a_landing_error_without_the_secret(simulator: RawSimulator, credentials: tuple[str, str]) -> None:
    key_id, key = credentials
    # Secrets in variables: the traceback quotes source lines, which must not contain them.
    wrong, other = "wrong-secret-42", "another-secret-7"
    with pytest.raises(LandingError, match=f"application key id '{key_id}'") as wrong_secret:
        simulated_api(simulator, key_id, wrong)
    assert_secret_absent(wrong_secret.value, wrong)
    assert_secret_absent(wrong_secret.value, key)

    with pytest.raises(LandingError, match="'unknown-id'") as unknown_id:
        b2_api("unknown-id", other, raw_api_class=RawSimulator)
    assert_secret_absent(unknown_id.value, other)


def test_b2_never_logs_the_key(
    simulator: RawSimulator,
    credentials: tuple[str, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    key_id, key = credentials
    api = simulated_api(simulator, key_id, key)
    api.create_bucket("landing", "allPrivate").upload_bytes(b"x", "a.csv")
    zone = B2Landing(api, "landing")
    [obj] = zone.list_objects()
    zone.download(obj, tmp_path)

    assert "authorize_account" in caplog.text  # b2sdk did log its calls
    assert key not in caplog.text
    assert key not in zone.describe()


@pytest.mark.parametrize("page_size", [0, 10_001])
def test_b2_rejects_page_sizes_b2_does_not_serve(api: B2Api, page_size: int) -> None:
    with pytest.raises(ValueError, match="page_size"):
        B2Landing(api, "landing", page_size=page_size)
