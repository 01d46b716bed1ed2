"""The registry fixture itself: an image pushed to localhost:<port> comes back with the same ID, a one-layer
change moves only that layer, and the images outlive a recreated registry on the same volume."""

from __future__ import annotations

import subprocess
import time
import uuid

import pytest

from .registry import docker, ensure_registry_available, running_registry, unique_name

pytestmark = pytest.mark.integration

BASE = "local/bookworm-python:latest"


@pytest.fixture(autouse=True)
def parts_available():
    reason = ensure_registry_available()
    if reason:
        pytest.skip(reason)
    if docker("image", "inspect", BASE, check=False).returncode != 0:
        pytest.skip(f"{BASE} is not built; scripts/bootstrap builds it offline")


@pytest.fixture
def cleanup_images():
    """Image references a test creates; each is untagged afterwards (the base image itself stays)."""
    refs: list[str] = []
    yield refs
    for ref in refs:
        docker("rmi", ref, check=False)


def image_id(ref: str) -> str:
    return docker("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()


def timed(*argv: str) -> float:
    started = time.monotonic()
    docker(*argv)
    return time.monotonic() - started


def test_push_delete_pull_gives_the_same_image_and_a_one_layer_change_moves_one_layer(tmp_path, cleanup_images):
    with running_registry() as registry:
        bindings = docker("port", registry.name, "5000/tcp").stdout.split()
        assert bindings == [f"127.0.0.1:{registry.port}"]

        base_id = image_id(BASE)
        first = registry.ref("x", "1")
        cleanup_images.append(first)
        docker("tag", BASE, first)
        push_base = timed("push", first)
        docker("rmi", first)
        assert docker("image", "inspect", first, check=False).returncode != 0
        pull_base = timed("pull", first)
        assert image_id(first) == base_id
        assert registry.catalog() == ["x"]

        # A release that differs from the base by one small layer: only that layer travels.
        context = tmp_path / "release"
        context.mkdir()
        (context / "release.txt").write_text(f"release {uuid.uuid4().hex}\n")
        (context / "Dockerfile").write_text(f"FROM {BASE}\nCOPY release.txt /release.txt\n")
        second = registry.ref("x", "2")
        cleanup_images.append(second)
        docker("build", "-q", "--label", "org.droplet-deploy.test=registry", "-t", second, str(context))
        release_id = image_id(second)
        started = time.monotonic()
        pushed = docker("push", second).stdout
        push_layer = time.monotonic() - started
        assert pushed.count("Pushed") == 1 and "Layer already exists" in pushed, pushed
        docker("rmi", second)
        started = time.monotonic()
        pulled = docker("pull", second).stdout
        pull_layer = time.monotonic() - started
        assert image_id(second) == release_id
        assert pulled.count("Pull complete") == 1 and "Already exists" in pulled, pulled
        assert registry.tags("x") == ["1", "2"]
    print(f"\nregistry: base image push {push_base:.2f}s, pull {pull_base:.2f}s (layer already local); "
          f"one-layer release push {push_layer:.2f}s, pull {pull_layer:.2f}s")


def test_images_survive_a_recreated_registry_on_the_same_volume(tmp_path, cleanup_images):
    # A one-file image from scratch: this test is about the volume, not about moving a big layer.
    (tmp_path / "kept.txt").write_text(f"kept {uuid.uuid4().hex}\n")
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY kept.txt /kept.txt\n")
    volume = unique_name("test-registry-data")
    docker("volume", "create", volume)
    try:
        with running_registry(volume=volume) as registry:
            ref = registry.ref("kept", "1")
            cleanup_images.append(ref)
            docker("build", "-q", "--label", "org.droplet-deploy.test=registry", "-t", ref, str(tmp_path))
            built = image_id(ref)
            docker("push", ref)
            docker("rmi", ref)
        with running_registry(volume=volume) as again:
            assert again.name != registry.name
            assert again.catalog() == ["kept"]
            ref = again.ref("kept", "1")
            cleanup_images.append(ref)
            docker("pull", ref)
            assert image_id(ref) == built
    finally:
        docker("volume", "rm", "-f", volume, check=False)


def test_the_registry_is_gone_after_the_block():
    with running_registry() as registry:
        name, volume = registry.name, registry.volume
    assert docker("inspect", name, check=False).returncode != 0
    assert subprocess.run(["docker", "volume", "inspect", volume], capture_output=True).returncode != 0
