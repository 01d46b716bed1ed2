"""Masking's cost on output the toolkit masks: a failed build's whole log, and single long words (a base64 blob, a
progress line), each against one pass of a trivial regular expression over the same text in the same run.

    .venv/bin/python bench/redact.py

Prints the time of each and its ratio to the baseline; asserts nothing.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from droplet_deploy.core.redact import clean  # noqa: E402

LINE = ('#12 [app 5/9] RUN pip install --index-url https://pypi.org/simple -r requirements.txt "quoted" it\'s '
        '{"a": "b"} X-Cache: HIT\n')
CASES = {
    "build log, 1 MB": LINE * (1_000_000 // len(LINE)),
    "one word of letters, 20 kB": "a" * 20_000,
    "one hyphenated word, 20 kB": "ab-cd-" * 3_333,
    "one dotted word, 20 kB": "a." * 10_000,
    "an unclosed quote, 20 kB": "'" + "a" * 20_000,
}
ARGV = ["docker", "build", "--build-arg", "NPM_TOKEN=npm_abcdefgh", "."]


def timed(run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main() -> None:
    print(f"{'text':<30} {'masked':>9} {'baseline':>9} {'ratio':>7}")
    for name, text in CASES.items():
        baseline = timed(lambda text=text: re.sub(r"x{3}", "", text))
        masked = timed(lambda text=text: clean(text, ARGV))
        print(f"{name:<30} {masked:>8.3f}s {baseline:>8.4f}s {masked / max(baseline, 1e-6):>7.0f}")


if __name__ == "__main__":
    main()
