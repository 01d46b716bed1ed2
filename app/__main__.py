"""``python3 -m app`` serves; ``python3 -m app --check`` proves the code imports and the config is valid."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Mapping, Sequence

import app as package
from app.config import Config, ConfigError, load

EXIT_CONFIG = 2


def import_all() -> None:
    """Import every module of the package, so a broken or stale module fails the check, not the first request."""
    for module in pkgutil.iter_modules(package.__path__):
        if module.name != "__main__":
            importlib.import_module(f"{package.__name__}.{module.name}")


def check_line(config: Config) -> str:
    from app.routes import route_table

    return f"app ok: {len(route_table(config))} routes, revision {config.revision}"


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m app", description=package.__doc__)
    parser.add_argument("--check", action="store_true",
                        help="import everything, validate the config, print one line and exit (no network, no files)")
    args = parser.parse_args(argv)
    try:
        config = load(os.environ if environ is None else environ)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"config error: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    if args.check:
        import_all()
        print(check_line(config))
        return 0
    from app.server import run

    return run(config)


if __name__ == "__main__":
    sys.exit(main())
