"""What a person sees: plain lines in a log, colour and a live build line only on a terminal, NO_COLOR honoured."""

from __future__ import annotations

import io
import threading
import time

import pytest

from droplet_deploy.core.ui import LiveLine, Reporter


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")


def test_a_log_gets_plain_lines_and_every_step_says_how_long_it_took():
    out = io.StringIO()
    ui = Reporter(out)
    with ui.step("build", "shop:abc"), ui.live("building") as live:
        live.feed("Step 1/2 : FROM base")
    ui.check(True, "docker engine", "server 20.10")
    ui.check(False, "free disk", "10 MB free")
    lines = out.getvalue().splitlines()
    assert lines[0] == "==> build shop:abc"
    assert lines[1].startswith("    build took ") and lines[1].endswith("s")
    assert lines[2:] == ["    PASS  docker engine    server 20.10", "    FAIL  free disk        10 MB free"]
    assert "\x1b" not in out.getvalue() and "building" not in out.getvalue()


def test_a_failed_step_prints_no_duration_line():
    out = io.StringIO()
    ui = Reporter(out)
    with pytest.raises(RuntimeError), ui.step("verify.build"):
        raise RuntimeError("no")
    assert out.getvalue() == "==> verify.build\n" and "verify.build" in ui.timings


def test_a_terminal_gets_colour_unless_no_color_is_set(monkeypatch):
    out = Terminal()
    Reporter(out).check(False, "compose file", "invalid")
    assert "\x1b[31mFAIL\x1b[0m" in out.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    plain = Terminal()
    Reporter(plain).check(False, "compose file", "invalid")
    assert plain.getvalue() == "    FAIL  compose file     invalid\n"


def test_the_live_line_shows_the_time_and_the_builds_own_step_then_goes(monkeypatch):
    monkeypatch.setattr(LiveLine, "TICK", 0.02)
    out = Terminal()
    ui = Reporter(out, color=False)
    with ui.live("building") as live:
        live.feed("Step 3/9 : RUN pip install -r requirements.txt")
        live.feed("Collecting flask")  # not a step line: the step stays on screen
        deadline = time.monotonic() + 10  # a loaded machine may hold the ticking thread back
        while "Step 3/9" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.02)
    shown = out.getvalue()
    assert "\r\x1b[K    building " in shown and "Step 3/9 : RUN pip install" in shown
    assert "Collecting" not in shown
    assert shown.endswith("\r\x1b[K"), "the line is cleared when the build ends"


def test_the_live_line_is_cut_to_the_terminal_width():
    line = LiveLine(io.StringIO(), "building", threading.Lock(), enabled=False)
    line.feed("#7 [3/5] RUN " + "x" * 300)
    assert len(line.render(60)) == 60 and line.render(60).endswith("…")
