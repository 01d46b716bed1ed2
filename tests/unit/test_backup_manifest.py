"""The pure side of backups: ids, manifests, checksum comparison, retention. No I/O, no Docker."""

import json
from datetime import datetime, timedelta, timezone

import pytest

from droplet_deploy.backup import manifest as mf


def make(**overrides) -> mf.Manifest:
    args = dict(
        backup_id="20250102T030405Z-abc123def456", env="prod", project="shop", created_at="2025-01-02T03:04:05Z",
        revision="abc123def456" + "0" * 28, image="shop:abc123def456", tool="droplet-deploy 0.1.0",
        database={"kind": "sqlite", "file": "database.sqlite3", "source": "/data/app.db", "container": "shop-app-1"},
        sums={"database.sqlite3": "a" * 64, "logs/shop-app-1.log": "b" * 64, "config/.env": "c" * 64},
        sizes={"database.sqlite3": 12288, "logs/shop-app-1.log": 10, "config/.env": 42},
        private=["config/.env"], note="before deploy of x", duration_s=1.234,
    )
    args.update(overrides)
    return mf.build(**args)


def test_id_is_utc_time_then_twelve_characters_of_revision():
    local = datetime(2025, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert mf.new_id(local, "abc123def4567890") == "20250102T030405Z-abc123def456"
    assert mf.new_id(local, None) == "20250102T030405Z-unknown"
    assert mf.new_id(local, "../../etc; rm") == "20250102T030405Z-etcrm"
    assert mf.valid_id(mf.new_id(local, "../../etc; rm"))


@pytest.mark.parametrize("text", ["", "latest", "../20250102T030405Z-abc", "20250102T030405Z-abc/../../x",
                                  "20250102T030405Z-.hidden", "20250102T030405Z-", "20250102T030405-abc"])
def test_ids_that_could_leave_the_backup_directory_are_refused(text):
    assert not mf.valid_id(text)


def test_manifest_round_trips_through_json_and_sums_total_size():
    built = make()
    parsed = mf.parse(built.to_json())
    assert parsed == built
    assert parsed.size == 12288 + 10 + 42
    assert [f.path for f in parsed.files] == sorted(["database.sqlite3", "logs/shop-app-1.log", "config/.env"])
    assert parsed.entry("config/.env").private and not parsed.entry("database.sqlite3").private
    assert parsed.is_sqlite and parsed.database_file == "database.sqlite3"
    assert json.loads(built.to_json())["duration_s"] == 1.23


def test_manifest_keeps_fields_it_does_not_know():
    data = json.loads(make().to_json())
    data["written_by_a_newer_version"] = {"x": 1}
    assert json.loads(mf.parse(json.dumps(data)).to_json())["written_by_a_newer_version"] == {"x": 1}


def test_every_file_needs_a_checksum_and_a_size():
    with pytest.raises(ValueError, match="logs/x.log"):
        make(sums={"database.sqlite3": "a" * 64}, sizes={"database.sqlite3": 1, "logs/x.log": 2})


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(format=99), "format 99"),
    (lambda d: d.pop("revision"), "revision is missing"),
    (lambda d: d.update(id="../x"), "not a backup id"),
    (lambda d: d["files"].append({"path": "../../etc/passwd", "size": 1, "sha256": "a" * 64}), "outside"),
    (lambda d: d["files"].append({"path": "/etc/passwd", "size": 1, "sha256": "a" * 64}), "outside"),
    (lambda d: d["files"].append({"path": "x"}), "malformed"),
    (lambda d: d.update(database="sqlite"), "database"),
])
def test_a_bad_manifest_is_refused_naming_the_problem(change, message):
    data = json.loads(make().to_json())
    change(data)
    with pytest.raises(ValueError, match=message):
        mf.parse(json.dumps(data))


def test_not_json_is_refused():
    with pytest.raises(ValueError, match="not valid JSON"):
        mf.parse("{cut short")


def test_sums_file_is_sha256sum_format():
    assert mf.sums_text(make()).splitlines()[0] == f"{'c' * 64}  config/.env"


def test_sha256sum_and_stat_output_parse():
    out = f"{'A' * 64}  database.sqlite3\n{'b' * 64} *logs/app.log\nsha256sum: config/.env: No such file\n"
    assert mf.parse_sums(out) == {"database.sqlite3": "a" * 64, "logs/app.log": "b" * 64}
    assert mf.parse_sizes("12288 database.sqlite3\n10 logs/my app.log\nnonsense\n") == {
        "database.sqlite3": 12288, "logs/my app.log": 10}


def test_compare_names_each_missing_or_changed_file():
    built = make()
    actual = {"database.sqlite3": "f" * 64, "logs/shop-app-1.log": "b" * 64}
    assert mf.compare(built.files, actual) == ["config/.env: missing", "database.sqlite3: checksum mismatch"]
    assert mf.compare(built.files, {f.path: f.sha256 for f in built.files}) == []


IDS = [f"2025010{d}T000000Z-abc" for d in range(1, 8)]


def test_retention_deletes_all_but_the_newest_n_oldest_first():
    assert mf.choose_prune(reversed(IDS), 3) == IDS[:4]
    assert mf.choose_prune(IDS, 7) == [] and mf.choose_prune(IDS, 10) == []
    assert mf.choose_prune(IDS, 1) == IDS[:6]


def test_retention_never_deletes_a_protected_backup_nor_a_stray_directory():
    assert mf.choose_prune(IDS, 3, protect=[IDS[0]]) == IDS[1:4]
    assert mf.choose_prune([*IDS, "lost+found", ".tmp"], 6) == IDS[:1]
    with pytest.raises(ValueError):
        mf.choose_prune(IDS, 0)


def test_listing_splits_manifests_and_names_unreadable_ones():
    good = make()
    text = f"\x1e/srv/b/{good.id}/\n{good.to_json()}\x1e/srv/b/20250101T000000Z-broken/\n{{not json\n"
    text += f"\x1e/srv/b/{good.id}.keep/\n{good.to_json()}"
    manifests, unreadable, copies = mf.parse_listing(text)
    assert manifests == [good] and unreadable == ["20250101T000000Z-broken"]
    assert copies == [f"{good.id}.keep"], "a manifest under another directory name is a copy, not that backup"
    assert mf.parse_listing("") == ([], [], [])


def test_human_size():
    assert [mf.human_size(n) for n in (0, 1023, 1024, 17_408, 5 * 1024**3)] == [
        "0 B", "1023 B", "1.0 KiB", "17.0 KiB", "5.0 GiB"]
