"""The PostgreSQL fixture itself: data survives a recreated container, dump and restore move it, passwords guard TCP,
and the init phase's temporary server is never taken for the final one."""

from __future__ import annotations

import subprocess
import time

import pytest

from .postgres import (
    IMAGE,
    docker_network,
    ensure_postgres_available,
    postgres_volume,
    remove_postgres,
    running_postgres,
    start_postgres,
    stop_postgres,
    unique_name,
    wait_until_ready,
)

pytestmark = pytest.mark.integration

INIT_DONE = "PostgreSQL init process complete"


@pytest.fixture(autouse=True)
def image_available():
    reason = ensure_postgres_available()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def volume():
    with postgres_volume() as name:
        yield name


def test_rows_survive_a_recreated_container_on_the_same_volume(volume):
    with running_postgres(volume=volume, user="shop", password="first-secret", db="orders") as first:
        first.psql("create table items (id serial primary key, name text not null);"
                   "insert into items (name) values ('apple'), ('pear'), ('plum');")
        assert INIT_DONE in first.logs()
        stop_postgres(first)
        assert "database system is shut down" in first.logs()
    # A new container (new name, other password in its env) on the same data: no initdb, same rows.
    with running_postgres(volume=volume, user="shop", password="ignored-now", db="orders") as second:
        assert second.name != first.name
        assert second.psql("select string_agg(name, ',' order by id) from items") == "apple,pear,plum"
        assert INIT_DONE not in second.logs()
        assert "initdb" not in second.logs()
        assert second.psql("select current_setting('server_version_num')::int / 10000") == "15"
        assert second.psql("select pg_encoding_to_char(encoding) from pg_database where datname = 'orders'") == "UTF8"


def test_pg_dump_custom_format_restores_into_a_second_server():
    with running_postgres(db="source") as source, running_postgres(db="target") as target:
        source.psql("create table events (id int primary key, body jsonb);"
                    "insert into events select n, jsonb_build_object('n', n) from generate_series(1, 500) n;"
                    "create index events_body on events using gin (body);")
        archive = source.dump()
        assert archive.startswith(b"PGDMP"), archive[:20]
        target.restore(archive)
        assert target.psql("select count(*), sum((body->>'n')::int) from events") == "500|125250"
        assert target.psql("select indexname from pg_indexes where tablename = 'events' order by 1") == (
            "events_body\nevents_pkey")


def test_tcp_clients_need_the_password_and_it_is_stored_as_scram():
    with docker_network() as network, running_postgres(network=network, password="s3cret") as pg:
        assert pg.psql("select left(rolpassword, 14) from pg_authid where rolname = current_user") == (
            "SCRAM-SHA-256$")
        assert pg.psql("show listen_addresses") == "*"

        def client(url: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["docker", "run", "--rm", "--network", network, "--entrypoint", "psql", IMAGE,
                                   "-X", "-A", "-t", url, "-c", "select current_user"],
                                  capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)

        good = client(pg.url())
        assert good.returncode == 0 and good.stdout.strip() == "app", good.stderr
        bad = client(pg.url().replace(":s3cret@", ":wrong@"))
        assert bad.returncode != 0
        assert 'password authentication failed for user "app"' in bad.stderr


def test_published_port_is_on_loopback_only():
    with running_postgres(publish=True) as pg:
        assert pg.host_port
        bindings = subprocess.run(["docker", "port", pg.name, "5432/tcp"], capture_output=True, text=True,
                                  check=True).stdout.split()
        assert bindings == [f"127.0.0.1:{pg.host_port}"]


def test_the_init_phase_temporary_server_is_not_taken_for_the_final_one():
    # An init script holds the temporary server up until the test lets it go: meanwhile nothing may look ready.
    hold = ("#!/bin/sh\necho holding init\n"
            "for _ in $(seq 1 600); do [ -e /tmp/release-init ] && exit 0; sleep 0.1; done\nexit 1\n")
    init = {"50-hold.sh": hold, "60-table.sql": "create table made_at_init (n int);"}
    handle = start_postgres(init_files=init)
    try:
        deadline = time.monotonic() + 30
        while "holding init" not in handle.logs() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "holding init" in handle.logs(), handle.logs()
        seen_during_init = []
        for _ in range(3):
            socket_probe = handle.exec("pg_isready", "-U", handle.user, check=False).returncode
            tcp_probe = handle.exec("pg_isready", "-h", "127.0.0.1", "-U", handle.user, check=False).returncode
            seen_during_init.append((socket_probe, tcp_probe, _health(handle.name)))
            time.sleep(0.5)
        assert INIT_DONE not in handle.logs()
        # pg_isready exits 2 for "no response"; the health check has not passed while the temporary server ran.
        assert all(s == 2 and t == 2 and h == "starting" for s, t, h in seen_during_init), seen_during_init
        handle.exec("touch", "/tmp/release-init")
        waited = wait_until_ready(handle)
        assert INIT_DONE in handle.logs()
        assert handle.psql("select count(*) from made_at_init") == "0"
        deadline = time.monotonic() + 30
        while _health(handle.name) != "healthy" and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _health(handle.name) == "healthy", f"ready after {waited:.1f}s, but the health check never passed"
    finally:
        remove_postgres(handle)


def _health(name: str) -> str:
    return subprocess.run(["docker", "inspect", "--format", "{{.State.Health.Status}}", name],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_an_uninitialised_volume_without_a_password_is_refused_as_upstream_does():
    name = unique_name()
    result = subprocess.run(["docker", "run", "--rm", "--name", name, IMAGE], capture_output=True, text=True,
                            timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert "superuser password is not specified" in result.stderr


def test_the_container_is_gone_after_the_block():
    with running_postgres() as pg:
        name = pg.name
    result = subprocess.run(["docker", "inspect", name], capture_output=True, text=True)
    assert result.returncode != 0
