"""The PostgreSQL backup settings and builders: each bad setting is one line naming its key; the scripts are
constants, every value an argument; the parsers read what the scripts print."""

import pytest

from droplet_deploy.backup import manifest as mf
from droplet_deploy.backup.postgres import _compare
from droplet_deploy.commands import backup as cmd
from droplet_deploy.commands import postgres as pg
from droplet_deploy.core.config import load
from droplet_deploy.core.config_keys import DEFAULTS
from droplet_deploy.core.errors import ConfigError
from droplet_deploy.transport.target import command_line

HOSTILE = "x; rm -rf / #$(touch /tmp/pwned) `id` \"'"


def config(**overrides):
    return {**DEFAULTS, "app_name": "shop", **overrides}


def test_a_db_service_with_postgres_resolves(root):
    settings = load(config(backup_service="db", db_kind="postgres", db_user="shop", db_name="shopdb"), root=root)
    assert (settings.backup_service, settings.db_kind, settings.db_user, settings.db_name) == \
        ("db", "postgres", "shop", "shopdb")
    plain = load(config(), root=root)
    assert (plain.backup_service, plain.db_kind) == (None, None)


@pytest.mark.parametrize("overrides, key, words", [
    ({"db_kind": "mongo"}, "deploy.db_kind", "not a database kind"),
    ({"db_kind": "postgres", "backup_command": ["pg_dump"]}, "deploy.db_kind", "together with backup_command"),
    ({"backup_service": "db web"}, "deploy.backup_service", "not a compose service name"),
    ({"backup_service": "proxy"}, "deploy.backup_service", "is the proxy service"),
    ({"db_user": "shop"}, "deploy.db_user", "db_kind: postgres only"),
    ({"db_kind": "postgres", "db_name": "shop; drop"}, "deploy.db_name", "not a PostgreSQL name"),
])
def test_each_bad_database_setting_names_its_key_and_the_fix(root, overrides, key, words):
    with pytest.raises(ConfigError) as info:
        load(config(**overrides), root=root)
    text = str(info.value)
    assert info.value.key == key and words in text and "\n" not in text and text.endswith(")")


def test_dump_and_restore_pass_every_value_as_an_argument():
    dump = pg.dump(HOSTILE, "shopdb")
    assert dump[:3] == ["sh", "-c", pg.DUMP_SCRIPT] and dump[3:] == ["pg-dump", HOSTILE, "shopdb", pg.COUNTS_SQL]
    assert pg.restore(None, None) == ["sh", "-c", pg.RESTORE_SCRIPT, "pg-restore", "", ""]
    assert HOSTILE not in pg.DUMP_SCRIPT + pg.RESTORE_SCRIPT
    line = command_line(cmd.dump_with("c1", dump, "/b/1/database.pgdump"))
    assert "'" + HOSTILE.replace("'", "'\"'\"'") + "'" in line  # quoted once, as one word
    # Shown by name, not as a wall of script.
    assert cmd.shown(dump).count("<pg-dump.sh>") == 1 and "pg_export_snapshot" not in cmd.shown(dump)


def test_the_scratch_server_has_no_network_and_is_labelled():
    argv = pg.start_scratch("p-verify-1", "postgres:15", "p-verify-1", "shop", "shopdb")
    assert argv[argv.index("--network") + 1] == "none" and "--publish" not in argv and "-p" not in argv
    assert f"{pg.SCRATCH_LABEL}=1" in argv and argv[-1] == "postgres:15"
    assert "type=volume,source=p-verify-1,target=/var/lib/postgresql/data" in argv
    assert pg.remove_scratch("p-verify-1") == ["docker", "rm", "--force", "--volumes", "p-verify-1"]


def test_counts_and_the_database_are_read_from_the_dump_s_stderr():
    stderr = ("droplet-deploy-database shop\tshopdb\n"
              "droplet-deploy-rows public.quotes\t3\n"
              "droplet-deploy-rows public.\"odd\tname\"\t0\n"
              "pg_dump: warning: something\n")
    assert pg.parse_database(stderr) == ("shop", "shopdb")
    assert pg.parse_counts(stderr) == {"public.quotes": 3, 'public."odd\tname"': 0}
    assert pg.without_counts(stderr) == "pg_dump: warning: something"


def test_a_restore_proves_the_same_tables_and_rows():
    expected = {"public.a": 1, "public.b": 2}
    assert _compare(expected, dict(expected)).ok
    assert "public.b is missing" in _compare(expected, {"public.a": 1}).detail
    assert "public.a: 0 rows, 1 at backup time" in _compare(expected, {"public.a": 0, "public.b": 2}).detail
    assert not _compare({}, {}).ok


def test_retention_always_spares_the_newest_verified():
    ids = ["20260101T000000Z-a", "20260102T000000Z-b", "20260103T000000Z-c", "20260104T000000Z-d"]
    verdicts = mf.parse_verdicts("".join(f"\x1e/b/{i}/\n{{\"ok\": {'true' if i.endswith(('a', 'b')) else 'false'}}}\n"
                                         for i in ids) + "\x1e/b/20260105T000000Z-e/\nnot json\n")
    assert verdicts == {ids[0]: True, ids[1]: True, ids[2]: False, ids[3]: False, "20260105T000000Z-e": False}
    good = mf.newest_verified(ids, verdicts)
    assert good == ids[1]
    assert mf.choose_prune(ids, 1, (good,)) == [ids[0], ids[2]]
    assert mf.newest_verified(ids, {}) is None


@pytest.mark.parametrize("place", ["ftp://host/dir", "ssh://vault/", "s3://", "s3://UPPER/x", "ssh://a b/dir"])
def test_a_copy_place_that_is_neither_ssh_nor_s3_is_named(root, place):
    with pytest.raises(ConfigError) as info:
        load(config(backup_copy=[place]), root=root)
    assert info.value.key == "deploy.backup_copy[0]" and "is not a place to copy to" in str(info.value)


def test_copy_places_parse_into_host_and_directory_or_bucket_and_prefix(root):
    from droplet_deploy.backup.copies import Place

    settings = load(config(backup_copy=["ssh://backup@vault:2222/srv/offsite/", "s3://shop-backups/droplet/x"]),
                    root=root)
    ssh, s3 = (Place.parse(text) for text in settings.backup_copy)
    assert (ssh.kind, ssh.where, ssh.path) == ("ssh", "backup@vault:2222", "/srv/offsite")
    assert (s3.kind, s3.where, s3.path) == ("s3", "shop-backups", "droplet/x")
