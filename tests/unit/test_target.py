"""LocalTarget on a real invoke.Context: quoting, dry runs and probes."""

import io

import pytest
from invoke import Config, Context

from droplet_deploy.core.errors import CommandFailed
from droplet_deploy.transport.target import LocalTarget


def target(tmp_path, dry=False):
    out = io.StringIO()
    config = Config(overrides={"run": {"dry": dry, "in_stream": False}})
    return LocalTarget(Context(config), str(tmp_path), out=out), out


def test_run_quotes_every_argument(tmp_path):
    t, out = target(tmp_path)
    hostile = "a b; touch pwned"
    result = t.run(["printf", "%s|", hostile, "$(id)"])
    assert result.stdout == "a b; touch pwned|$(id)|"
    assert not (tmp_path / "pwned").exists()
    assert "[local] $ printf" in out.getvalue()


def test_runs_in_the_target_directory_even_with_spaces(tmp_path):
    where = tmp_path / "my project"
    where.mkdir()
    t, _ = target(where)
    assert t.probe(["pwd"]).stdout.strip() == str(where)


def test_failure_carries_command_status_and_stderr(tmp_path):
    t, _ = target(tmp_path)
    with pytest.raises(CommandFailed) as info:
        t.run(["sh", "-c", "echo boom >&2; exit 7"])
    err = info.value
    assert err.exit_status == 7 and err.stderr.strip() == "boom"
    assert str(err).startswith("[local] `sh -c") and str(err).endswith("exited 7: boom")
    assert not t.run(["false"], check=False).ok


def test_dry_run_prints_and_changes_nothing_but_probes_still_read(tmp_path):
    t, out = target(tmp_path, dry=True)
    assert t.dry
    t.run(["touch", "made-by-run"])
    t.write_text("written.txt", "x")
    assert not (tmp_path / "made-by-run").exists()
    assert not (tmp_path / "written.txt").exists()
    assert "[dry-run] [local] touch made-by-run" in out.getvalue()
    assert "[dry-run] [local] write written.txt" in out.getvalue()
    (tmp_path / "real.txt").write_text("state")
    assert t.read_text("real.txt") == "state", "probes read real state during a dry run"


def test_write_text_is_atomic_and_sets_mode(tmp_path):
    t, _ = target(tmp_path)
    t.write_text("sub/secret.env", "A=1\n", mode=0o600)
    path = tmp_path / "sub" / "secret.env"
    assert path.read_text() == "A=1\n"
    assert path.stat().st_mode & 0o777 == 0o600
    assert t.read_text("missing") is None


def test_put_file_replaces_atomically_with_its_mode_and_get_file_never_overwrites(tmp_path):
    t, _ = target(tmp_path)
    source = tmp_path / "archive.bin"
    payload = bytes(range(256)) * 1000  # binary, larger than one chunk
    source.write_bytes(payload)
    t.put_file(str(source), "up/archive.bin", mode=0o600)
    assert (tmp_path / "up" / "archive.bin").read_bytes() == payload
    assert (tmp_path / "up" / "archive.bin").stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "up" / "archive.bin.tmp").exists()

    copy = tmp_path / "copy.bin"
    t.get_file("up/archive.bin", str(copy))
    assert copy.read_bytes() == payload and copy.stat().st_mode & 0o777 == 0o600
    copy.write_bytes(b"mine")
    with pytest.raises(FileExistsError):
        t.get_file("up/archive.bin", str(copy))
    assert copy.read_bytes() == b"mine"
    with pytest.raises(FileNotFoundError):
        t.get_file("up/absent", str(tmp_path / "never"))
    assert not (tmp_path / "never").exists()


def test_put_file_under_dry_run_changes_nothing(tmp_path):
    t, out = target(tmp_path, dry=True)
    (tmp_path / "a").write_text("x")
    t.put_file(str(tmp_path / "a"), "b")
    assert not (tmp_path / "b").exists() and "[dry-run] [local] copy" in out.getvalue()


# -- what a person sees: quiet by default, everything with --verbose, the failing command and its tail always --


def quiet(tmp_path, *, echo=False):
    out = io.StringIO()
    return LocalTarget(Context(Config(overrides={"run": {"in_stream": False}})), str(tmp_path), echo=echo,
                       out=out), out


def test_quiet_runs_echo_nothing_and_hide_a_streamed_commands_output(tmp_path, capfd):
    t, out = quiet(tmp_path)
    t.run(["sh", "-c", "echo step 1/2; echo step 2/2 >&2"], stream=True)
    t.run(["true"])
    captured = capfd.readouterr()
    assert out.getvalue() == "" and captured.out == "" and captured.err == ""


def test_verbose_echoes_every_command_and_streams_its_output(tmp_path, capfd):
    t, out = quiet(tmp_path, echo=True)
    t.run(["sh", "-c", "echo step 1/2"], stream=True)
    assert out.getvalue() == "[local] $ sh -c 'echo step 1/2'\n"
    assert capfd.readouterr().out == "step 1/2\n"


def test_a_failing_quiet_command_shows_itself_and_the_tail_of_its_output_in_order(tmp_path, capfd):
    t, out = quiet(tmp_path)
    # Two pipes are read by two threads: the pause lets stdout's lines be read before the stderr line arrives.
    script = 'for i in $(seq 30); do echo "line $i"; done; sleep 0.3; echo "broke at 31" >&2; exit 3'
    with pytest.raises(CommandFailed) as info:
        t.run(["sh", "-c", script, "build", "--password=hunter2"], stream=True)
    shown = out.getvalue().splitlines()
    assert shown[0].startswith("[local] $ sh -c") and shown[0].endswith("'--password=***'  (failed, exit 3)")
    assert shown[1:] == [f"    | line {i}" for i in range(12, 31)] + ["    | broke at 31"], "the last 20 lines"
    assert "hunter2" not in out.getvalue() + capfd.readouterr().out
    assert str(info.value).endswith("exited 3: broke at 31")


def test_a_failing_command_that_was_not_streamed_shows_its_stderr_tail_even_when_verbose(tmp_path):
    t, out = quiet(tmp_path, echo=True)
    with pytest.raises(CommandFailed):
        t.run(["sh", "-c", "echo why >&2; exit 1"], shown="sh -c <script>")
    assert out.getvalue() == "[local] $ sh -c <script>\n    | why\n", "echoed once, by its short name"
    assert not t.run(["false"], check=False).ok
    assert out.getvalue().endswith("    | why\n[local] $ false\n"), "check=False: the caller decides, no report"
