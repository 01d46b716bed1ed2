"""Which way each node gets a release (``engines.swarm.distribute``), on modelled engines: a node that holds an
earlier release pulls through the manager's registry, relayed for real (the node end in a python3 process here,
its connections carried to an HTTP server standing in for the registry); one with nothing to run the relay from,
or when there is no registry, gets the whole image by save | load. The engines are modelled (this runs without
Docker); the integration test on two engines (tests/integration/test_swarm.py) proves the real ones agree."""

from __future__ import annotations

import contextlib
import http.server
import sys
import threading
import urllib.request

import pytest

from droplet_deploy.commands import swarm as cmd
from droplet_deploy.engines.swarm.distribute import NodeEngine, ensure_everywhere
from droplet_deploy.engines.swarm.registry import ImageRegistry
from droplet_deploy.transport.relay import ProcessStream, local_connect
from droplet_deploy.transport.target import Result

IMAGE, WANT, OLD = "shop:new", "sha256:" + "b" * 64, "sha256:" + "a" * 64


class _Registry(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the stdlib's name
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def _r(status: int, stdout: str, stderr: str) -> Result:
    return Result((), status, stdout, stderr)


class Engines:
    """The manager (this target) and nodes reached as ``docker --host <name>``: images by name, and what ran."""

    def __init__(self, registry_port: int | None, nodes: dict[str, dict[str, str]], *, python: bool = True):
        self.name, self.cwd, self.echo, self.dry = "manager", "/srv", False, False
        self.images = {"manager": {IMAGE: WANT}, **nodes}
        self.registry_port, self.python = registry_port, python
        self.ran: list[list[str]] = []
        self.said: list[str] = []
        self.pulled_through: list[int] = []

    def say(self, text: str) -> None:
        self.said.append(text)

    @staticmethod
    def _engine(argv: list[str]) -> tuple[str, list[str]]:
        if argv[:2] == ["docker", "--host"]:
            return argv[2], argv[3:]
        return "manager", argv[1:]

    def probe(self, argv, *, check=False, timeout=None) -> Result:
        return self.run(argv, check=False)

    def run(self, argv, *, check=True, **_) -> Result:
        argv = list(argv)
        self.ran.append(argv)
        if argv[:2] == ["sh", "-c"]:  # save | load into the node named in the receiving argv
            self.images[argv[-3]][argv[4]] = self.images["manager"][argv[4]]
            return _r(0, "", "")
        engine, words = self._engine(argv)
        have = self.images[engine]
        if words[:2] == ["image", "inspect"]:
            return _r(0, have[words[-1]] + "\n", "") if words[-1] in have else _r(1, "", "No such image")
        if words[:2] == ["container", "inspect"]:
            return _r(0, "running\n", "") if self.registry_port else _r(1, "", "No such container")
        if words[:2] == ["container", "port"]:
            return _r(0, f"127.0.0.1:{self.registry_port}\n", "")
        if words[0] == "run":
            return _r(125, "", "Unable to find image 'registry:2' locally")
        if words[:2] == ["image", "ls"]:
            repository = words[-1]
            return _r(0, "".join(f"{name}\n" for name in have if name.startswith(repository + ":")), "")
        if words[:2] == ["image", "tag"]:
            have[words[-1]] = have.get(words[-2], WANT)
            return _r(0, "", "")
        if words[:2] == ["image", "pull"]:
            # The node's engine fetches through its own localhost port: here a real request through the relay.
            port = int(words[-1].split("/")[0].split(":")[1])
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=10).read()
            self.pulled_through.append(port)
            have[words[-1]] = WANT
            return _r(0, "", "")
        if words[:2] == ["image", "rm"]:
            have.pop(words[-1], None)
        return _r(0, "", "")

    def duplex(self, argv, *, shown=None):
        self.ran.append(list(argv))
        script = cmd.RELAY_NODE_END if self.python else "import sys; sys.exit('exec: python3: not found')"
        return ProcessStream([sys.executable, "-c", script])

    def connect(self, host, port):
        return local_connect(host, port)

    @contextlib.contextmanager
    def tunnel(self, host, port):
        yield host, port


@pytest.fixture
def registry_port():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


NODES = [NodeEngine("w1", ("docker", "--host", "w1")), NodeEngine("w2", ("docker", "--host", "w2"))]
REGISTRY = ImageRegistry("shop", "registry:2")


def test_nodes_with_an_earlier_release_pull_through_the_registry_and_a_bare_one_gets_the_whole_image(registry_port):
    target = Engines(registry_port, {"w1": {"shop:old": OLD}, "w2": {}})
    delivered = ensure_everywhere(target, IMAGE, NODES, registry=REGISTRY)
    assert [(d.hostname, d.how) for d in delivered] == [("w1", "registry"), ("w2", "save | load")]
    assert target.images["w1"][IMAGE] == WANT and target.images["w2"][IMAGE] == WANT
    assert len(target.pulled_through) == 1 and target.pulled_through[0] != registry_port
    assert delivered[0].carried and delivered[0].carried > 0
    assert not [name for name in target.images["w1"] if name.startswith("localhost:")], "the relay's tag is gone"
    assert any("w2: no earlier release on it to run the relay from" in line for line in target.said)


def test_a_node_already_holding_the_image_gets_nothing(registry_port):
    target = Engines(registry_port, {"w1": {IMAGE: WANT}, "w2": {IMAGE: WANT}})
    delivered = ensure_everywhere(target, IMAGE, NODES, registry=REGISTRY)
    assert [d.sent for d in delivered] == [False, False]
    assert not any("push" in argv for argv in target.ran)


def test_without_a_registry_every_node_gets_the_whole_image():
    target = Engines(None, {"w1": {"shop:old": OLD}, "w2": {"shop:old": OLD}})
    delivered = ensure_everywhere(target, IMAGE, NODES, registry=REGISTRY)
    assert [d.how for d in delivered] == ["save | load", "save | load"]
    assert any("no image registry on the manager: registry:2 does not start" in line for line in target.said)


def test_a_release_image_without_python3_falls_back_to_save_and_load(registry_port):
    target = Engines(registry_port, {"w1": {"shop:old": OLD}, "w2": {}}, python=False)
    delivered = ensure_everywhere(target, IMAGE, NODES, registry=REGISTRY)
    assert [d.how for d in delivered] == ["save | load", "save | load"]
    assert any("w1: the relay did not start (exec: python3: not found)" in line for line in target.said)


def test_every_node_is_asked_for_the_image_at_once():
    """Each node answers only once both were asked: asked one after the other, the first never answers."""
    asked = threading.Barrier(2, timeout=5)

    class Waiting(Engines):
        def run(self, argv, *, check=True, **kwargs):
            engine, words = self._engine(list(argv))
            if engine != "manager" and words[:2] == ["image", "inspect"]:
                asked.wait()
            return super().run(argv, check=check, **kwargs)

    target = Waiting(None, {"w1": {IMAGE: WANT}, "w2": {IMAGE: WANT}})
    deliveries = ensure_everywhere(target, IMAGE, NODES)  # type: ignore[arg-type]
    assert [d.sent for d in deliveries] == [False, False]
