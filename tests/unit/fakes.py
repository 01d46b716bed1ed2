"""A Target that records commands and answers them from a small model of a Docker engine, for testing every
branch of rollout and rollback without Docker.

What is not real here, and why: the engine (containers, the proxy's upstream file) is a model, because the unit
suite runs where no engine does; its answers use the same output formats the real CLI gives (``docker ps
--format '{{json .}}'``, ``docker inspect``), and the parsers under test are the real ones. What is real: HTTP.
Each app container is a real local HTTP server (tests/support/http.py), and the public port reaches whichever
container the proxy's upstream names, so health polling, the switch and the checks run as they do in production.
The integration tests prove the real engine agrees.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from droplet_deploy.commands import proxy as proxy_cmd
from droplet_deploy.core import config
from droplet_deploy.core.config import Settings
from droplet_deploy.core.errors import CommandFailed
from droplet_deploy.transport.target import Result
from tests.support.http import ScriptedServer

PROJECT = "shop-test"


def engine_settings(root) -> Settings:
    """Settings for a stack on the modelled engine: fast polling and short waits, so failure paths end quickly."""
    return config.load({"app_name": "shop", "health_interval": 0.05, "health_timeout": 1.5, "drain_seconds": 1,
                        "environments": {"test": {"project": PROJECT, "public_port": 8001}}}, root=root)


@dataclass
class FakeContainer:
    id: str
    name: str
    service: str
    image: str
    revision: str | None
    running: bool = True
    server: ScriptedServer | None = None
    published: tuple[int, ...] = ()  # host ports, as a stack started by `compose up` with `ports:` has them

    @property
    def address(self) -> str:
        return f"10.0.0.{int(self.id[1:]) + 1}"

    def inspect(self) -> dict:
        return {
            "Id": self.id, "Name": "/" + self.name,
            "Config": {"Image": self.image, "Labels": {
                "com.docker.compose.service": self.service,
                "com.docker.compose.container-number": self.name.rsplit("-", 1)[-1],
                "org.opencontainers.image.revision": self.revision or "",
            }},
            "State": {"Status": "running" if self.running else "exited", "StartedAt": f"2025-01-01T00:00:{self.id[1:]}Z"},
            "NetworkSettings": {"Networks": {"default": {"IPAddress": self.address}},
                                "Ports": {"8000/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(p)} for p in self.published]}},
        }


@dataclass
class Engine:
    """The state a compose project has on one engine, changed by the commands the rollout runs."""

    app: str = "app"
    proxy: str = "proxy"
    containers: list[FakeContainer] = field(default_factory=list)
    upstream: str = "app"
    #: how a container started from an image answers: revision -> (status, body); default healthy at its revision
    answers: dict[str, tuple[int, str]] = field(default_factory=dict)
    nginx_rejects: bool = False
    stop_fails: bool = False
    proxy_start_fails: bool = False  # `docker start` of a proxy container fails (its port taken, say)
    images: dict[str, str] = field(default_factory=dict)  # image ref -> revision label
    servers: list[ScriptedServer] = field(default_factory=list)
    #: called after every command, to interrupt a rollout at a chosen point
    after: Callable[[tuple[str, ...]], None] | None = None
    issued: int = 0  # containers created so far: the next id
    #: services that come back on another revision than the release's when recreated (an image not rebuilt)
    stale: dict[str, str] = field(default_factory=dict)

    def add(self, service: str, image: str, revision: str | None, *, running: bool = True) -> FakeContainer:
        number = 1 + max((int(c.name.rsplit("-", 1)[1]) for c in self.containers if c.service == service), default=0)
        # Ids are never reused, as Docker's are not: a container removed earlier keeps its id to itself.
        self.issued += 1
        container = FakeContainer(f"c{self.issued - 1}", f"{PROJECT}-{service}-{number}", service, image,
                                  revision, running)
        if service == self.app:
            container.server = self._serve(revision)
        self.containers.append(container)
        return container

    def _serve(self, revision: str | None) -> ScriptedServer:
        status, body = self.answers.get(revision or "", (200, json.dumps({"status": "healthy", "revision": revision})))
        server = ScriptedServer(status, body)
        self.servers.append(server)
        return server

    def by_name(self, name: str) -> FakeContainer | None:
        return next((c for c in self.containers if c.name == name), None)

    def running(self, service: str) -> list[FakeContainer]:
        return [c for c in self.containers if c.service == service and c.running]

    def serving_server(self) -> ScriptedServer | None:
        named = self.by_name(self.upstream)
        if named is not None:
            return named.server if named.running else None
        apps = self.running(self.app)
        return apps[-1].server if apps else None

    def close(self) -> None:
        for server in self.servers:
            server.close()


class FakeTarget:
    """Records ``run`` (changes) and ``probe`` (reads) and answers both from an ``Engine``."""

    name = "fake"
    cwd = "/srv/shop"
    echo = False

    def __init__(self, engine: Engine, *, dry: bool = False, public_port: int = 8001):
        self.engine, self.dry, self.public_port = engine, dry, public_port
        self.runs: list[tuple[str, ...]] = []
        self.probes: list[tuple[str, ...]] = []
        self.calls: list[tuple[str, ...]] = []  # runs and probes, in the order they came
        self.said: list[str] = []
        self.files: dict[str, str] = {}
        self.dirs: set[str] = set()
        self.tail: str = ""  # what `tail` of the history file answers

    # -- the Target interface ------------------------------------------------------------------------------
    def run(self, argv: Sequence[str], *, check: bool = True, stream: bool = False,
            timeout: float | None = None, shown: str | None = None, watched: bool = False,
            does: str | None = None, progress: object = None) -> Result:
        argv = tuple(str(a) for a in argv)
        self.runs.append(argv)
        self.calls.append(argv)
        if self.dry:
            self.say(f"[dry-run] [{self.name}] {does or ' '.join(argv)}")
            return Result(argv, 0, "", "")
        return self._answer(argv, check)

    def probe(self, argv: Sequence[str], *, check: bool = False, timeout: float | None = None) -> Result:
        argv = tuple(str(a) for a in argv)
        self.probes.append(argv)
        self.calls.append(argv)
        return self._answer(argv, check)

    def say(self, text: str) -> None:
        self.said.append(text)

    def write_text(self, path: str, text: str, mode: int = 0o644) -> None:
        self.files[path] = text

    def read_text(self, path: str) -> str | None:
        return self.files.get(path)

    def put_file(self, local_path: str, path: str, mode: int = 0o644) -> None:
        self.files[path] = open(local_path).read()

    def get_file(self, path: str, local_path: str, mode: int = 0o600) -> None:
        with open(local_path, "w") as out:
            out.write(self.files[path])

    def follow(self, argv: Sequence[str], write, *, timeout: float | None = None) -> Result:
        return self.probe(argv)

    @contextlib.contextmanager
    def tunnel(self, host: str, port: int) -> Iterator[tuple[str, int]]:
        server = self._route(host, port)
        if server is None:
            yield "127.0.0.1", 9  # the discard port: nothing listens, the poller sees a refused connection
            return
        address = server.server.server_address
        yield address[0], address[1]

    def close(self) -> None:
        pass

    # -- the model -----------------------------------------------------------------------------------------
    def _route(self, host: str, port: int) -> ScriptedServer | None:
        if host == "127.0.0.1" and port == self.public_port:
            return self.engine.serving_server()
        found = next((c for c in self.engine.containers if c.address == host and c.running), None)
        return found.server if found else None

    def _answer(self, argv: tuple[str, ...], check: bool) -> Result:
        handler = self._handler(argv)
        status, out, err = handler(argv) if handler else (0, "", "")
        if self.engine.after:
            self.engine.after(argv)
        result = Result(argv, status, out, err)
        if check and not result.ok:
            raise CommandFailed(argv, status, err, where=self.name)
        return result

    def _handler(self, argv: tuple[str, ...]):
        words = " ".join(argv)
        if argv[:2] == ("docker", "ps"):
            return self._ps
        if argv[:2] == ("docker", "inspect"):
            return self._inspect
        if " up --detach" in words:
            return self._up
        if " up --no-start" in words:
            return self._create
        if argv[:2] == ("docker", "start"):
            return self._start
        if argv[:2] == ("docker", "exec") and proxy_cmd.SWITCH_UPSTREAM in argv:
            return self._switch
        if argv[:2] == ("docker", "exec") and proxy_cmd.WAIT_WORKERS in argv:
            return lambda a: (0, "", "")
        if argv[:2] == ("docker", "exec") and argv[3:4] == ("cat",):
            return lambda a: (0, f"server {self.engine.upstream}:8000;\n", "")
        if argv[:2] == ("docker", "stop"):
            return self._stop
        if argv[:2] == ("docker", "rm"):
            return self._rm
        if argv[:3] == ("docker", "image", "inspect"):
            return self._image_inspect
        if argv[:3] == ("docker", "image", "ls"):
            return lambda a: (0, "".join(json.dumps({"Repository": ref.split(":")[0], "Tag": ref.split(":")[1],
                                                      "ID": f"sha256:{i:064x}", "CreatedAt": f"2025-01-0{i + 1}"})
                                         + "\n" for i, ref in enumerate(self.engine.images)), "")
        if argv[:1] == ("tail",):
            return lambda a: (0, self.tail, "")
        if argv[:1] == ("sha256sum",):
            return self._sha256
        return self._file_handler(argv)

    # -- a few file commands, on ``files`` (path -> text) and ``dirs``: enough for the state dir's kept releases
    def _file_handler(self, argv: tuple[str, ...]):
        if argv[:2] in (("test", "-f"), ("test", "-d")):
            return lambda a: (0 if a[2] in (self.files if a[1] == "-f" else self.dirs) else 1, "", "")
        if argv[:2] == ("ls", "-1A"):
            return self._ls
        if argv[:1] == ("mkdir",) or (argv[:2] == ("sh", "-c") and argv[3:4] == ("mkdir-private",)):
            return self._mkdir
        if argv[:2] == ("sh", "-c") and argv[3:4] == ("copy-private",):
            return self._copy
        if argv[:3] == ("mv", "-T", "--"):
            return self._move
        if argv[:3] in (("rm", "-rf", "--"), ("rm", "-f", "--")):
            return self._remove
        return None

    def _ls(self, argv):
        base = argv[-1].rstrip("/") + "/"
        if argv[-1] not in self.dirs:
            return 2, "", f"ls: cannot access '{argv[-1]}': No such file or directory"
        names = {p[len(base):].split("/", 1)[0] for p in [*self.files, *self.dirs] if p.startswith(base)}
        return 0, "".join(f"{n}\n" for n in sorted(names)), ""

    def _mkdir(self, argv):
        private = argv[3:4] == ("mkdir-private",)  # files.mkdir_p: mkdir -p under umask 077
        paths = argv[4:] if private else argv[argv.index("--") + 1:]
        if not private and "-p" not in argv and any(p in self.dirs for p in paths):
            return 1, "", "mkdir: File exists"
        for path in paths:
            parts = path.split("/")
            self.dirs.update("/".join(parts[:i]) for i in range(2, len(parts) + 1))
        return 0, "", ""

    def _copy(self, argv):
        source, dest = argv[-2], argv[-1]
        if source not in self.files:
            return 1, "", f"cp: cannot stat '{source}': No such file or directory"
        self.files[dest] = self.files[source]
        return 0, "", ""

    def _move(self, argv):
        source, dest = argv[-2], argv[-1]
        if dest in self.dirs and any(p.startswith(dest + "/") for p in self.files):
            return 1, "", f"mv: cannot move '{source}' to '{dest}': Directory not empty"
        self.files = {(dest + p[len(source):] if p == source or p.startswith(source + "/") else p): text
                      for p, text in self.files.items()}
        self.dirs = {(dest + d[len(source):] if d == source or d.startswith(source + "/") else d) for d in self.dirs}
        return 0, "", ""

    def _remove(self, argv):
        path = argv[-1]
        self.files = {p: t for p, t in self.files.items() if p != path and not p.startswith(path + "/")}
        self.dirs = {d for d in self.dirs if d != path and not d.startswith(path + "/")}
        return 0, "", ""

    def _ps(self, argv):
        everything = "--all" in argv
        lines = [json.dumps({"ID": c.id}) for c in self.engine.containers if everything or c.running]
        return 0, "\n".join(lines) + ("\n" if lines else ""), ""

    def _inspect(self, argv):
        wanted = set(argv[4:])
        return 0, json.dumps([c.inspect() for c in self.engine.containers if c.id in wanted]), ""

    def _up(self, argv):
        image = next(a.split("=", 1)[1] for a in argv if a.startswith("APP_IMAGE="))
        revision = self.engine.images.get(image)
        if "--force-recreate" in argv:  # one service, replaced by a new container
            service = argv[-1]
            old = [c for c in self.engine.containers if c.service == service]
            self.engine.add(service, image if service == self.engine.app else service, None)
            self.engine.containers = [c for c in self.engine.containers if c not in old]
            return 0, "", ""
        if "--scale" in argv:
            self.engine.add(self.engine.app, image, revision)
            return 0, "", ""
        if "--no-deps" in argv and argv[-1] not in (self.engine.app, self.engine.proxy):
            # A service on the release (a worker on the app's image): replaced by one at the release's revision,
            # unless the model says it keeps an old image (``stale``).
            service = argv[-1]
            self.engine.containers = [c for c in self.engine.containers if c.service != service]
            self.engine.add(service, image, self.engine.stale.get(service, revision))
            return 0, "", ""
        if argv[-1] == self.engine.proxy:
            self.engine.add(self.engine.proxy, "nginx", None)
            return 0, "", ""
        self.engine.add(self.engine.proxy, "nginx", None)
        self.engine.add(self.engine.app, image, revision)
        return 0, "", ""

    def _create(self, argv):
        self.engine.add(argv[-1], "nginx", None, running=False)
        return 0, "", ""

    def _start(self, argv):
        proxies = {c.id for c in self.engine.containers if c.service == self.engine.proxy}
        if self.engine.proxy_start_fails and proxies & set(argv[2:]):
            return 1, "", "Error response from daemon: driver failed programming external connectivity"
        for c in self.engine.containers:
            if c.id in argv[2:]:
                c.running = True
        return 0, "", ""

    def _switch(self, argv):
        if self.engine.nginx_rejects:
            return 1, "", "nginx rejected the upstream"
        name, port = argv[-3:-1]
        self.engine.upstream = name
        # The script prints the upstream nginx accepted, then the workers of the configuration before.
        return 0, f"server {name}:{port};\nworkers-before: 41 42\n", ""

    def _stop(self, argv):
        if self.engine.stop_fails:
            return 1, "", "Error response from daemon: cannot stop container: tired"
        for c in self.engine.containers:
            if c.id in argv[3:]:
                c.running = False
        return 0, "", ""

    def _rm(self, argv):
        self.engine.containers = [c for c in self.engine.containers if c.id not in argv]
        return 0, "", ""

    def _sha256(self, argv):
        path = argv[-1]
        if path not in self.files:
            return 1, "", f"sha256sum: {path}: No such file or directory"
        return 0, f"{hashlib.sha256(self.files[path].encode()).hexdigest()}  {path}\n", ""

    def _image_inspect(self, argv):
        ref = argv[-1]
        if ref not in self.engine.images:
            return 1, "", f"Error: No such image: {ref}"
        return 0, self.engine.images[ref] + "\n", ""


def reporter_output() -> io.StringIO:
    return io.StringIO()
