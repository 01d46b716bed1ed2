"""The build context's ``.dockerignore``, as init writes or extends it: ``COPY . .`` must not put the env file's
secrets, the repository's history or the deploy state into an image (verify.build refuses an image with a ``.env``)."""

from __future__ import annotations

# What every context keeps out, with why, in the order written.
ENTRIES = ((".env", "secrets: compose gives them to the container at run time"),
           (".git", "history and credentials"),
           (".deploy/", "the local deploy state"))
HEADER = "# Kept out of the image (written by `inv init`)\n"


def _covered(lines: set[str], entry: str) -> bool:
    bare = entry.rstrip("/")
    return bool(lines & {bare, bare + "/", "/" + bare, "/" + bare + "/", bare + "/**"})


def plan(existing: str | None, written: list[str], in_place: list[str]) -> str | None:
    """The new text, or None when every entry is there; says which through ``written`` / ``in_place``."""
    lines = {line.strip() for line in (existing or "").splitlines()}
    missing = [(entry, why) for entry, why in ENTRIES if not _covered(lines, entry)]
    if not missing:
        in_place.append(".dockerignore keeps .env, .git and .deploy/ out of the image")
        return None
    names = ", ".join(entry for entry, _ in missing)
    written.append(f".dockerignore: {names} " + ("added" if existing is not None else "(no .env in the image)"))
    text = existing or ""
    text += ("" if not text or text.endswith("\n") else "\n") + HEADER
    return text + "".join(f"{entry}\n" for entry, _ in missing)
