"""A release is its image, its compose file, its override and its env file: what a deploy keeps of it in the state
dir, what a rollback runs with, and what retention must leave for the release a rollback would go back to.

Driven against the modelled engine and file commands of tests/unit/fakes.py (no Docker here; the integration tests
in tests/integration/test_whole_release.py run the same on the real engine and a real sshd).
"""

from __future__ import annotations

import io
import json
import threading

import pytest

from droplet_deploy.core import config
from droplet_deploy.core.errors import RollbackImpossible, RolloutFailed
from droplet_deploy.core.ui import Reporter
from droplet_deploy.engines import ComposeBackend
from droplet_deploy.engines.compose.override_file import override_path
from droplet_deploy.host.ship import newest_of
from droplet_deploy.pipeline import deploy as pipeline
from droplet_deploy.pipeline.rollback import rollback
from droplet_deploy.session import Session
from droplet_deploy.steps.revision import Revision
from droplet_deploy.transaction import release_files as kept
from droplet_deploy.transaction import retention as releases
from droplet_deploy.transaction.history import Record

from .fakes import PROJECT, Engine, FakeTarget

OLDER, OLD, NEW = "c" * 40, "a" * 40, "b" * 40
OLDER_IMAGE, OLD_IMAGE, NEW_IMAGE = (f"shop:{r[:12]}" for r in (OLDER, OLD, NEW))
SECRET = "APP_SECRET_KEY=never-printed-value"
COMPOSE = "services:\n  app:\n    image: ${APP_IMAGE}\n  proxy:\n    image: ${PROXY_IMAGE}\n"
STATE = "/srv/shop/.deploy/test"


def rec(revision: str, *, action: str = "deploy", result: str = "ok", release: str = "", backup: str = "",
        at: float = 0.0) -> Record:
    return Record(revision, f"shop:{revision[:12]}", "test", "me", at, 1.0, result, action=action, release=release,
                  backup=backup)


# -- the retention rule, pure ----------------------------------------------------------------------------------


def test_retention_spares_the_release_a_rollback_would_bring_back_and_the_backup_it_would_restore():
    history = [rec(OLDER, release="r-older"), rec(OLD, release="r-old", backup="x-before-old"),
               rec(NEW, release="r-new", backup="x-before-new"), rec(OLDER, result="failed", release="r-bad")]
    need = releases.needed(history, NEW)
    assert need.images == {OLD_IMAGE, NEW_IMAGE} and need.releases == {"r-old", "r-new"}
    assert need.revisions == {OLD, NEW}
    assert need.backups == {"x-before-new"}, "rollback --with-data from NEW restores the backup taken before it"


def test_after_a_rollback_the_way_back_is_the_release_it_replaced_and_the_backup_it_took():
    history = [rec(OLD, release="r-old"), rec(NEW, release="r-new", backup="x-before-new"),
               rec(OLD, action="rollback", release="r-old", backup="x-before-rollback")]
    need = releases.needed(history, OLD)
    assert need.images == {OLD_IMAGE, NEW_IMAGE} and need.releases == {"r-old", "r-new"}
    assert need.backups == {"x-before-rollback"}, "rolling back again --with-data returns to NEW's data"


def test_with_nothing_serving_retention_spares_what_the_newest_release_would_need():
    assert releases.needed([], None) == releases.Needed()
    history = [rec(OLD, release="r-old"), rec(NEW, release="r-new", backup="x-before-new")]
    assert releases.needed(history, None) == releases.needed(history, NEW)


def test_a_host_spares_the_newest_release_directory_of_each_needed_revision():
    names = [f"20250101T00000{i}Z-{OLD[:12]}" for i in range(3)] + [f"20250102T000000Z-{NEW[:12]}"]
    assert newest_of(names, [OLD]) == {names[2]}
    assert newest_of(names, [OLD, NEW, OLDER]) == {names[2], names[3]}


# -- what a deploy keeps ---------------------------------------------------------------------------------------


@pytest.fixture
def engine():
    made = Engine(images={OLDER_IMAGE: OLDER, OLD_IMAGE: OLD, NEW_IMAGE: NEW})
    yield made
    made.close()


def make_settings(root, **test):
    return config.load({"app_name": "shop", "health_interval": 0.05, "health_timeout": 1.5, "drain_seconds": 1,
                        "state_dir": STATE,
                        "environments": {"test": {"project": PROJECT, "public_port": 8001, **test}}}, root=root)


def session_on(target: FakeTarget, settings) -> tuple[Session, io.StringIO]:
    target.files[settings.compose_file] = COMPOSE
    if settings.env_file_path:
        target.files[settings.env_file_path] = SECRET + "\n"
    out = io.StringIO()
    session = Session(settings, target, target, Reporter(out))
    ComposeBackend(session)
    return session, out


def kept_files(target: FakeTarget, release_id: str) -> dict[str, str]:
    base = f"{STATE}/releases/{release_id}/"
    return {p[len(base):]: text for p, text in target.files.items() if p.startswith(base)}


def test_a_deploy_keeps_its_compose_file_override_and_env_file_once_it_serves(engine, root):
    target = FakeTarget(engine)
    session, out = session_on(target, make_settings(root, env_file=".env"))
    session.backend.stack.overrides = (override_path(STATE),)
    target.files[override_path(STATE)] = "services: {app: {image: shop:bbbbbbbbbbbb}}\n"
    with kept.keeping(session, Revision(NEW), session.backend.in_use()) as keeping:
        incoming = [d for d in target.dirs if "/releases/.incoming-" in d]
        assert len(incoming) == 1 and keeping.id == "", "copied aside first, kept only once the release serves"
    assert keeping.id.endswith("-" + NEW[:12])
    assert kept_files(target, keeping.id) == {"compose.yml": COMPOSE, "compose.override.yml":
                                              target.files[override_path(STATE)], "env": SECRET + "\n"}
    assert not [d for d in target.dirs if ".incoming-" in d]
    copies = [argv for argv in target.runs if argv[3:4] == ("copy-private",)]
    assert copies and all(argv[2].startswith("umask 077;") for argv in copies), "mode 600 from the first byte"
    assert ("mkdir", "-m", "700", "--", f"{STATE}/releases/.incoming-{keeping.id}") in target.runs
    assert SECRET not in out.getvalue() + "".join(target.said), "the env file's values are never printed"
    assert kept.read(target, STATE, keeping.id) == kept.Kept(keeping.id, f"{STATE}/releases/{keeping.id}", True, True)


def test_a_release_that_fails_keeps_nothing(engine, root):
    target = FakeTarget(engine)
    session, _ = session_on(target, make_settings(root))
    with pytest.raises(RolloutFailed), kept.keeping(session, Revision(NEW), session.backend.in_use()) as keeping:
        raise RolloutFailed("new release never became healthy")
    assert keeping.id == "" and not [p for p in [*target.files, *target.dirs] if "/releases/" in p]


def test_a_kept_release_without_its_compose_file_or_under_a_foreign_name_is_not_one(engine):
    target = FakeTarget(engine)
    target.dirs.add(f"{STATE}/releases/20250101T000000Z-{OLD[:12]}")
    assert kept.read(target, STATE, f"20250101T000000Z-{OLD[:12]}") is None
    assert kept.read(target, STATE, "") is None and kept.read(target, STATE, "../../etc") is None


def test_prune_keeps_the_newest_and_the_spared_and_clears_leftovers(engine, root):
    target = FakeTarget(engine)
    session, _ = session_on(target, make_settings(root))
    names = [f"2025010{i}T000000Z-{OLD[:12]}" for i in range(1, 5)]
    for name in [*names, f".incoming-20250109T000000Z-{NEW[:12]}"]:
        target.dirs.add(f"{STATE}/releases/{name}")
        target.files[f"{STATE}/releases/{name}/compose.yml"] = COMPOSE
    target.dirs.add(f"{STATE}/releases")
    removed = kept.prune(session, 2, spare={names[0]})
    assert removed == [names[1]]
    left = kept.root(STATE)
    assert sorted(d[len(left) + 1:] for d in target.dirs if d.startswith(left + "/")) == [names[0], *names[2:]]


def test_prune_after_a_deploy_spares_the_image_and_files_of_the_release_to_go_back_to(engine, root):
    engine.add("proxy", "nginx", None)
    engine.upstream = engine.add("app", NEW_IMAGE, NEW).name
    target = FakeTarget(engine)
    # NEW's own line is written after the prune: the history holds the releases before it.
    target.tail = "".join(json.dumps({**rec(r, release=f"2025010{i}T000000Z-{r[:12]}").__dict__}) + "\n"
                          for i, r in enumerate((OLDER, OLD), 1))
    session, _ = session_on(target, make_settings(root, keep_images=1, keep_releases=1))
    target.dirs.add(kept.root(STATE))
    for name in ("20250101T000000Z-" + OLDER[:12], "20250102T000000Z-" + OLD[:12], "20250103T000000Z-" + NEW[:12]):
        target.dirs.add(f"{kept.root(STATE)}/{name}")
    pipeline.prune(session, NEW_IMAGE, "20250103T000000Z-" + NEW[:12])
    [removal] = [argv for argv in target.runs if argv[:3] == ("docker", "image", "rm")]
    assert removal[3:] == (OLDER_IMAGE,), "keep_images 1 and the image of the release a rollback would bring back"
    assert sorted(d.rsplit("/", 1)[-1] for d in target.dirs if d.startswith(kept.root(STATE) + "/")) == \
        ["20250102T000000Z-" + OLD[:12], "20250103T000000Z-" + NEW[:12]]


def test_prune_lists_the_images_while_it_reads_what_runs(engine, root):
    engine.add("proxy", "nginx", None)
    engine.upstream = engine.add("app", NEW_IMAGE, NEW).name
    listed = threading.Event()

    class ListingFirst(FakeTarget):
        """``docker ps`` answers only once the image listing has started: a prune that reads one after the other
        never gets its answer within the bound."""

        def probe(self, argv, *, check=False, timeout=None):
            if tuple(argv[:3]) == ("docker", "image", "ls"):
                listed.set()
            elif tuple(argv[:2]) == ("docker", "ps"):
                assert listed.wait(5), "the images were listed only after what runs was read"
            return super().probe(argv, check=check, timeout=timeout)

    target = ListingFirst(engine)
    session, _ = session_on(target, make_settings(root, keep_images=1, keep_releases=1))
    pipeline.prune(session, NEW_IMAGE, "20250103T000000Z-" + NEW[:12])
    [removal] = [argv for argv in target.runs if argv[:3] == ("docker", "image", "rm")]
    assert NEW_IMAGE not in removal, "the image that serves is kept"


# -- what a rollback runs with ---------------------------------------------------------------------------------


def serving_new(engine: Engine) -> None:
    engine.add("proxy", "nginx", None)
    engine.upstream = engine.add("app", NEW_IMAGE, NEW).name


def history_lines(*records: Record) -> str:
    return "".join(json.dumps(r.__dict__) + "\n" for r in records)


def test_rollback_runs_compose_with_the_files_the_release_ran_with(engine, root):
    serving_new(engine)
    target = FakeTarget(engine)
    old_id = "20250101T000000Z-" + OLD[:12]
    target.tail = history_lines(rec(OLD, release=old_id), rec(NEW, release="20250102T000000Z-" + NEW[:12]))
    session, out = session_on(target, make_settings(root, env_file=".env"))
    kept_dir = f"{STATE}/releases/{old_id}"
    target.dirs.add(kept_dir)
    target.files.update({f"{kept_dir}/compose.yml": COMPOSE + "# A\n", f"{kept_dir}/env": "APP_SECRET_KEY=old\n",
                         f"{kept_dir}/compose.override.yml": "# A's override\n"})

    rollback(session)

    [up] = [argv for argv in target.runs if "up" in argv]
    assert f"APP_ENV_FILE={kept_dir}/env" in up
    assert up[up.index("--project-directory") + 1] == "/srv/shop", "relative paths resolve where they used to"
    files = [up[i + 1] for i, word in enumerate(up) if word == "--file"]
    assert files == [f"{kept_dir}/compose.yml", f"{kept_dir}/compose.override.yml"]
    assert engine.by_name(engine.upstream).revision == OLD
    assert target.files[override_path(STATE)] == "# A's override\n", "day-two tasks carry A's override now"
    [line] = [json.loads(argv[4]) for argv in target.runs if argv[:2] == ("sh", "-c") and argv[3] == "append"]
    assert (line["action"], line["release"], line["backup"]) == ("rollback", old_id, "")
    assert f"compose shape    compose file, override and env file kept with release {old_id}" in out.getvalue()


@pytest.mark.parametrize("kept_env, said", [("APP_SECRET_KEY=before-rotation\n", True), (SECRET + "\n", False)])
def test_a_rollback_bringing_back_an_env_file_other_than_todays_says_so_in_one_line(engine, root, kept_env, said):
    serving_new(engine)
    target = FakeTarget(engine)
    old_id = "20250101T000000Z-" + OLD[:12]
    target.tail = history_lines(rec(OLD, release=old_id), rec(NEW, release="20250102T000000Z-" + NEW[:12]))
    session, out = session_on(target, make_settings(root, env_file=".env"))
    kept_dir = f"{STATE}/releases/{old_id}"
    target.dirs.add(kept_dir)
    target.files.update({f"{kept_dir}/compose.yml": COMPOSE, f"{kept_dir}/env": kept_env})
    rollback(session)
    lines = [line for line in out.getvalue().splitlines() if "rotated secrets included, come back" in line]
    assert len(lines) == int(said)
    if said:
        assert f"env file kept with release {old_id}" in lines[0] and "deploy again to run with today's" in lines[0]
    assert "before-rotation" not in out.getvalue() and SECRET not in out.getvalue()


def test_a_release_without_kept_files_comes_back_with_the_files_of_today_and_says_so(engine, root):
    serving_new(engine)
    target = FakeTarget(engine)
    target.tail = history_lines(rec(OLD), rec(NEW))
    session, out = session_on(target, make_settings(root))
    rollback(session)
    [up] = [argv for argv in target.runs if "up" in argv]
    assert "--project-directory" not in up and up[up.index("--file") + 1] == "docker-compose.test.yml"
    assert f"no files kept with {OLD[:12]}" in out.getvalue()


def test_rollback_with_data_without_a_backup_to_restore_refuses_before_anything_runs(engine, root):
    serving_new(engine)
    target = FakeTarget(engine)
    target.tail = history_lines(rec(OLD), rec(NEW))
    session, _ = session_on(target, make_settings(root))
    with pytest.raises(RollbackImpossible) as refused:
        rollback(session, with_data=True)
    assert str(refused.value).startswith(f"--with-data: no backup was taken before {NEW[:12]} went into service")
    assert target.runs == [], "not even the lock"
