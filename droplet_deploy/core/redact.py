"""What the toolkit shows or stores of a command: the command with its credentials masked.

Configured commands (``backup_command``, ``restore_command``, ``check_command``, hooks, ``deploy.exec``) and
``build_args`` are the user's, and users pass credentials the way their tools take them: in a URL
(``postgresql://app:PW@db/app``, a Sentry DSN's key, a Slack or Telegram webhook), in a flag (``--password=PW``,
``--password PW``, MySQL's ``-pPW``, ``redis-cli -a PW``, ``sshpass -p PW``, ``curl -u user:PW``), in a header
(``Authorization: Bearer PW``), in JSON (``{"token": "PW"}``) or in an assignment (``PGPASSWORD=PW``), also inside
a ``sh -c`` script. The command runs with the real value; everything that shows or stores one (echo lines,
``--dry`` plans, error lines, history, status) renders it through ``display`` here, and output that may repeat it
through ``clean``.

Why patterns rather than a wrapper type (Kamal's Sensitive, pyinfra's MaskString): a wrapper only protects the
values someone remembered to wrap, and a ``str`` subclass loses its mark at the first join or slice. Configured
commands arrive from YAML as plain strings, so the shape of a credential is what can be recognised, wherever the
text ends up. A value of no recognisable shape is not masked: keep such secrets in the env file and let the
command read them from its environment (``["sh", "-c", "pg_dump \\"$DATABASE_URL\\""]``).
"""

from __future__ import annotations

import functools
import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

MASK = "***"

# Words that make a name (a flag, an environment variable, a query parameter, a header, a JSON key) hold a
# secret. Substrings for the long ones (PGPASSWORD, client_secret, GITHUB_TOKEN, SLACK_WEBHOOK_URL); whole words
# for the short ones, so `keep_images` or `--passes` stay readable.
_SECRET_PARTS = ("password", "passwd", "passphrase", "secret", "token", "credential", "apikey", "privatekey",
                 "accesskey", "webhook", "bearer")
_SECRET_WORDS = {"pass", "pwd", "pw", "key", "auth", "dsn"}
# Shorter values are left alone in free text: masking every "ab" in an error message would hide the message.
_MIN_SCRUB = 4


@dataclass(frozen=True)
class _Flags:
    """How one program takes a credential on its command line."""

    glued: tuple[str, ...] = ()  # short flags whose glued rest is the secret: mysql's -pPW
    next: frozenset[str] = frozenset()  # flags whose next word is the secret: redis-cli -a PW
    userinfo: frozenset[str] = frozenset()  # flags taking user:PW, glued, after '=' or as the next word


_MYSQL = _Flags(glued=("-p",))
# Only for these programs: elsewhere -p, -a and -u mean other things (find's -print, docker's -p 80:80, -u 0:0).
_PROGRAMS: dict[str, _Flags] = {
    **dict.fromkeys(("mysql", "mysqldump", "mysqladmin", "mysqlpump", "mariadb", "mariadb-dump", "mariadb-admin"),
                    _MYSQL),
    "redis-cli": _Flags(next=frozenset({"-a"})),
    "sshpass": _Flags(glued=("-p",), next=frozenset({"-p"})),
    **dict.fromkeys(("mongo", "mongosh", "mongodump", "mongorestore"), _Flags(next=frozenset({"-p"}))),
    "login": _Flags(next=frozenset({"-p"})),  # docker login -u user -p PW
    "curl": _Flags(userinfo=frozenset({"-u", "--user", "-U", "--proxy-user"})),
}
_FLAG = re.compile(r"^--?(?P<name>[A-Za-z][A-Za-z0-9_-]*)$")


@dataclass(frozen=True)
class _Shape:
    """A credential recognised by its surroundings: the ``secret`` group is masked when ``wanted`` agrees."""

    pattern: re.Pattern[str]
    wanted: Callable[[re.Match[str]], bool] = lambda match: True


def secret_name(name: str) -> bool:
    """Does this variable, flag or parameter name hold a secret (``DB_PASSWORD``, ``api-key``, ``X-Auth-Token``)?"""
    words = [w for w in re.split(r"[^a-z0-9]+", _split_camel(name).lower()) if w]
    joined = "".join(words)
    return any(part in joined for part in _SECRET_PARTS) or any(w in _SECRET_WORDS for w in words)


def _named(match: re.Match[str]) -> bool:
    return secret_name(match.group("name"))


_JSON_VALUE = r'(?P<q>\\?")(?P<name>[A-Za-z_][\w.-]*)(?P=q)\s*:\s*(?P=q)(?P<secret>(?:(?!(?P=q))[^\\]|\\.)*?)(?P=q)'


@functools.cache
def _shapes() -> tuple[_Shape, ...]:
    """In the order they are tried; an earlier shape's mask is not looked at again. Compiled at the first
    mask, not at import: listing the tasks never masks anything."""
    return (
        # NAME=value and --name=value, also inside a script (`PGPASSWORD=x pg_dump`) or a query string (`?password=x&`).
        # Before URLs: SENTRY_DSN=https://key@host is masked whole.
        # (A name starts where no name character is before it, nor one and a '-': tried at every character of a long
        # word, the pattern would take quadratic time.)
        _Shape(re.compile(r"(?<![A-Za-z0-9_.])(?<![A-Za-z0-9_.]-)(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)=(?P<secret>'[^']*'|\"[^\"]*\"|[^\s&;'\"]+)"),
               _named),
        # JSON and Python-repr values of secret keys: {"token": "x"}, {\"password\":\"x\"} (JSON inside JSON), {'pw': 'x'}.
        _Shape(re.compile(_JSON_VALUE), _named),
        _Shape(re.compile(r"'(?P<name>[A-Za-z_][\w.-]*)'\s*:\s*'(?P<secret>[^']*)'"), _named),
        # Authorization: Bearer x (any scheme), and headers named for a secret: X-Api-Key: x, PRIVATE-TOKEN: x.
        _Shape(re.compile(r"(?i)\b(?:proxy-)?authorization\s*:\s*(?:(?:bearer|basic|token|bot|apikey|negotiate)\s+)?"
                          r"(?P<secret>[^\s'\"]+)")),
        _Shape(re.compile(r"(?<![A-Za-z0-9-])(?P<name>[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)+)\s*:\s*(?P<secret>[^\s'\"]+)"),
               _named),
        # Webhook URLs are their own credential: whoever has one can post. The ids before the token stay readable.
        _Shape(re.compile(r"\bhttps?://hooks\.slack\.com/(?:services|workflows|triggers)/(?:[^\s'\"/?#]+/)*"
                          r"(?P<secret>[^\s'\"/?#]+)")),
        _Shape(re.compile(r"\bhttps?://(?:[\w-]+\.)?discord(?:app)?\.com/api/webhooks/\d+/(?P<secret>[^\s'\"/?#]+)")),
        _Shape(re.compile(r"\bhttps?://[\w.-]+\.webhook\.office\.com/(?P<secret>[^\s'\"?#]+)")),
        _Shape(re.compile(r"\bhttps?://api\.telegram\.org/(?:file/)?bot\d+:(?P<secret>[^\s'\"/?#]+)")),
        _Shape(re.compile(r"(?<![\w:/])\d{6,12}:(?P<secret>[A-Za-z0-9_-]{30,})\b")),  # a bare Telegram bot token
        # scheme://user:PASSWORD@host. The password runs to the last '@' of the word: users paste passwords with an
        # unencoded '@' in them, and showing the part after the first one would show most of the password.
        _Shape(re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/]*:(?P<secret>\S+)@(?=[^\s@]*(?:\s|$))")),
        # https://KEY@host: a user without a password in a web URL is a token (a Sentry DSN, a GitHub clone URL).
        _Shape(re.compile(r"\b(?:https?|wss?)://(?P<secret>[^\s:/@'\"]+)@(?=[^\s@]*(?:\s|$))")),
    )


# A word of a shell line, quotes kept, and what ends a simple command (the program in force ends with it; a
# backquote too, also where a message quotes a command in backquotes).
_WORD = re.compile(r"(?P<word>(?:'[^']*'|\"[^\"]*\"|[^\s'\";&|()<>`])+)|(?P<end>[;&|()\n`])")


def redact(text: str) -> str:
    """``text`` with credentials of a recognisable shape masked, a shell line's flags included."""
    return _redact(str(text))[0]


def display(argv: Sequence[str], names: Mapping[str, str] | None = None) -> str:
    """The command as a shell line for people: credentials masked, long constant arguments (``names``) shown by
    name. Never run this line; run ``argv``."""
    return " ".join(names[item] if names and item in names else shlex.quote(shown)
                    for item, (shown, _) in zip(map(str, argv), _masked(argv), strict=True))


def secrets_in(argv: Sequence[str]) -> list[str]:
    """The raw values ``display`` masks in ``argv``, longest first: what output repeating the command would leak."""
    found = {whole for _, whole in _masked(argv) if whole}
    for item in map(str, argv):
        found.update(_redact(item)[1])
    return sorted((s for s in found if len(s) >= _MIN_SCRUB and MASK not in s), key=len, reverse=True)


def clean(text: str, argv: Sequence[str] = ()) -> str:
    """Output of ``argv`` (an error's stderr, a check's last line) with its secrets masked, even where the output
    repeats a value without its name (``auth failed for MARKER``)."""
    return redact(scrub(text, secrets_in(argv)))


def scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


class _Words:
    """Reads one command word by word and says which words are credentials by their place: after a
    secret-named flag (``--password PW``) or the flag a program takes one with (``redis-cli -a PW``)."""

    def __init__(self) -> None:
        self.program: _Flags | None = None
        self.pending: str | None = None  # "secret" | "userinfo": what the next word is

    def end(self) -> None:
        self.program, self.pending = None, None

    def step(self, word: str) -> tuple[str, str] | None:
        """(the word as shown, the raw secret) when the word holds one, else None."""
        pending, self.pending = self.pending, None
        if pending == "secret":
            return MASK, word
        if pending == "userinfo":
            return _userinfo("", word)
        name = word.rsplit("/", 1)[-1]
        if name in _PROGRAMS:
            self.program = _PROGRAMS[name]
            return None
        found = self._program_flag(word, self.program or _Flags())
        named = _FLAG.match(word)
        if found is None and not self.pending and named and secret_name(named.group("name")):
            self.pending = "secret"
        return found

    def _program_flag(self, word: str, flags: _Flags) -> tuple[str, str] | None:
        """The flags the program in force takes a credential with."""
        for flag in flags.glued:
            if word.startswith(flag) and len(word) > len(flag):
                return flag + MASK, word[len(flag):]
        head, eq, value = word.partition("=")
        if head in flags.userinfo:
            if eq:
                return _userinfo(head + "=", value)
            self.pending = "userinfo"
        elif len(head) > 2 and head[:2] in flags.userinfo and not head.startswith("--"):
            return _userinfo(word[:2], word[2:])  # curl -uuser:PW
        elif word in flags.next:
            self.pending = "secret"
        return None


def _userinfo(prefix: str, value: str) -> tuple[str, str] | None:
    user, colon, secret = value.partition(":")
    return (f"{prefix}{user}:{MASK}", secret) if colon and secret else None


def _masked(argv: Sequence[str]) -> list[tuple[str, str | None]]:
    """Each argument as shown, with the raw value when the whole of it is a secret by its place. Anything else
    is ``redact``-ed."""
    words = _Words()
    shown: list[tuple[str, str | None]] = []
    for item in map(str, argv):
        found = words.step(item)
        shown.append(found if found is not None else (redact(item), None))
    return shown


def _redact(text: str) -> tuple[str, list[str]]:
    """``text`` masked, and the raw values masked in it."""
    found: list[str] = []
    for shape in _shapes():
        text = shape.pattern.sub(functools.partial(_mask_group, shape=shape, found=found), text)
    return (_mask_words(text, found) if _has_placed_secrets(text) else text), found


_PROGRAM_WORD = re.compile(r"(?<![\w.-])(?:" + "|".join(map(re.escape, sorted(_PROGRAMS, key=len, reverse=True)))
                           + r")(?![\w.-])")
_ANY_FLAG = re.compile(r"(?<![\w-])--?([A-Za-z][A-Za-z0-9_-]*)")


def _has_placed_secrets(text: str) -> bool:
    """Whether reading ``text`` word by word can find anything: a program of ``_PROGRAMS`` or a secret-named
    flag is in it. (Most output holds neither, and the word by word reading costs ten times the patterns.)"""
    return bool(_PROGRAM_WORD.search(text)) or any(secret_name(name) for name in set(_ANY_FLAG.findall(text)))


def _mask_group(match: re.Match[str], shape: _Shape, found: list[str]) -> str:
    start, end = (at - match.start() for at in match.span("secret"))
    whole, secret = match.group(0), match.group("secret")
    if not shape.wanted(match):
        # Not a secret, but it may hold one: EXTRA=https://host/?token=x, a URL in a plain variable.
        inner = shape.pattern.sub(functools.partial(_mask_group, shape=shape, found=found), secret)
        return whole[:start] + inner + whole[end:]
    raw = _unquote(secret)
    # And what it holds, which output may repeat alone (the key of SENTRY_DSN=https://KEY@host).
    found += [raw, *_redact(raw)[1]]
    return whole[:start] + MASK + whole[end:]


def _mask_words(text: str, found: list[str]) -> str:
    """A shell line (a ``sh -c`` script, a command in an error message) with the credentials its words hold by
    their place masked."""
    words, parts, done = _Words(), [], 0
    for match in _WORD.finditer(text):
        if match.group("end"):
            words.end()
            continue
        word = match.group("word")
        masked = words.step(_unquote_word(word))
        if masked is None and _quoted_line(word):
            masked = word[0] + _mask_words(word[1:-1], found) + word[-1], ""  # a command quoted whole
        if masked is None:
            continue
        parts += [text[done:match.start()], masked[0]]
        if masked[1]:
            found.append(masked[1])
        done = match.end()
    return "".join(parts) + text[done:]


def _split_camel(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)


def _unquote(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"" else value


def _quoted_line(word: str) -> bool:
    return len(word) > 2 and word[0] == word[-1] and word[0] in "'\"" and any(c.isspace() for c in word)


def _unquote_word(word: str) -> str:
    if "'" not in word and '"' not in word:
        return word
    try:
        split = shlex.split(word)
    except ValueError:
        return word
    return split[0] if len(split) == 1 else word
