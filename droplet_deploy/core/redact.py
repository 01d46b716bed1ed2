"""What the toolkit shows or stores of a command: the command with its credentials masked.

Configured commands (``backup_command``, ``restore_command``, ``check_command``) and ``build_args`` are the
user's, and users pass passwords the way their tools take them: in a URL (``postgresql://app:PW@db/app``), in a
flag (``--password=PW``, ``--password PW``, MySQL's ``-pPW``) or in an assignment (``PGPASSWORD=PW``). The command
runs with the real value; everything that shows or stores one (echo lines, ``--dry`` plans, error lines,
history, status) renders it through ``display`` here, and output that may repeat it through ``clean``.

Why patterns rather than a wrapper type (Kamal's Sensitive, pyinfra's MaskString): a wrapper only protects the
values someone remembered to wrap, and a ``str`` subclass loses its mark at the first join or slice. Configured
commands arrive from YAML as plain strings, so the shape of a credential is what can be recognised, wherever the
text ends up. A value of no recognisable shape is not masked: keep such secrets in the env file and let the
command read them from its environment (``["sh", "-c", "pg_dump \\"$DATABASE_URL\\""]``).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence

MASK = "***"

# Words that make a name (a flag, an environment variable, a query parameter) hold a secret. Substrings for the
# long ones (PGPASSWORD, client_secret, GITHUB_TOKEN); whole words for the short ones, so `keep_images` or
# `--passes` stay readable.
_SECRET_PARTS = ("password", "passwd", "passphrase", "secret", "token", "credential", "apikey", "privatekey",
                 "accesskey")
_SECRET_WORDS = {"pass", "pwd", "pw", "key", "auth"}
# MySQL and MariaDB clients take the password glued to -p; elsewhere -pX means other things (find's -print).
_GLUED_P_PROGRAMS = {"mysql", "mysqldump", "mysqladmin", "mysqlpump", "mariadb", "mariadb-dump", "mariadb-admin"}

# scheme://user:PASSWORD@host. The password runs to the last '@' of the word: users paste passwords with an
# unencoded '@' in them, and showing the part after the first one would show most of the password.
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/]*:)(?P<secret>\S+)@(?=[^\s@]*(?:\s|$))")
# NAME=value and --name=value, also inside a script (`PGPASSWORD=x pg_dump`) or a query string (`?password=x&`).
_ASSIGNMENT = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)=(?P<secret>'[^']*'|\"[^\"]*\"|[^\s&;'\"]+)")
_FLAG = re.compile(r"^--?(?P<name>[A-Za-z][A-Za-z0-9_-]*)$")
# Shorter values are left alone in free text: masking every "ab" in an error message would hide the message.
_MIN_SCRUB = 4


def secret_name(name: str) -> bool:
    """Does this variable, flag or parameter name hold a secret (``DB_PASSWORD``, ``api-key``, ``X-Auth-Token``)?"""
    words = [w for w in re.split(r"[^a-z0-9]+", _split_camel(name).lower()) if w]
    joined = "".join(words)
    return any(part in joined for part in _SECRET_PARTS) or any(w in _SECRET_WORDS for w in words)


def redact(text: str) -> str:
    """``text`` with credentials of a recognisable shape masked: URL passwords and secret-named assignments."""
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK + "@", str(text))
    return _ASSIGNMENT.sub(_mask_assignment, text)


def display(argv: Sequence[str], names: Mapping[str, str] | None = None) -> str:
    """The command as a shell line for people: credentials masked, long constant arguments (``names``) shown by
    name. Never run this line; run ``argv``."""
    return " ".join(names[item] if names and item in names else shlex.quote(shown)
                    for item, (shown, _) in zip(map(str, argv), _masked(argv), strict=True))


def secrets_in(argv: Sequence[str]) -> list[str]:
    """The raw values ``display`` masks in ``argv``, longest first: what output repeating the command would leak."""
    found = {whole for _, whole in _masked(argv) if whole}
    for item in map(str, argv):
        found.update(_unquote(m.group("secret")) for m in _URL_PASSWORD.finditer(item))
        found.update(_unquote(m.group("secret")) for m in _ASSIGNMENT.finditer(item) if secret_name(m.group("name")))
    return sorted((s for s in found if len(s) >= _MIN_SCRUB), key=len, reverse=True)


def clean(text: str, argv: Sequence[str] = ()) -> str:
    """Output of ``argv`` (an error's stderr, a check's last line) with its secrets masked, even where the output
    repeats a value without its name (``auth failed for MARKER``)."""
    return redact(scrub(text, secrets_in(argv)))


def scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def _masked(argv: Sequence[str]) -> list[tuple[str, str | None]]:
    """Each argument as shown, with the raw value when the whole of it is a secret: the value after a
    secret-named flag (``--password PW``) or MySQL's glued ``-pPW``. Anything else is ``redact``-ed."""
    shown: list[tuple[str, str | None]] = []
    mask_next, mysql = False, False
    for item in map(str, argv):
        if mask_next:
            shown.append((MASK, item))
            mask_next = False
        elif mysql and item.startswith("-p") and len(item) > 2:
            shown.append(("-p" + MASK, item[2:]))
        else:
            shown.append((redact(item), None))
            flag = _FLAG.match(item)
            mask_next = bool(flag and secret_name(flag.group("name")))
        mysql = mysql or item.rsplit("/", 1)[-1] in _GLUED_P_PROGRAMS
    return shown


def _mask_assignment(match: re.Match[str]) -> str:
    if not secret_name(match.group("name")):
        return match.group(0)
    return f"{match.group('name')}={MASK}"


def _split_camel(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)


def _unquote(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"" else value
