"""Where a secret must never be: the layers of an image (``docker save``), as raw bytes."""

from __future__ import annotations

import gzip
import subprocess
import tarfile
from pathlib import Path


def image_members_holding(image: str, marker: str, workdir: Path) -> list[str]:
    """Every file in every layer of ``image`` whose bytes contain ``marker`` (``<layer>:<path>``).

    Layers are read from ``docker save`` as the engine stores them (compressed or not), file by file, so a
    match inside any file of any layer, config or history entry is found.
    """
    archive = Path(workdir) / "image.tar"
    subprocess.run(["docker", "save", "--output", str(archive), image], check=True, capture_output=True)
    needle = marker.encode()
    found = []
    with tarfile.open(archive) as outer:
        members = [m for m in outer.getmembers() if m.isfile()]
        assert members, f"docker save of {image} holds no files"
        for member in members:
            data = outer.extractfile(member).read()
            if needle in data:
                found.append(member.name)
            layer = _as_tar(data)
            if layer is not None:
                with layer:
                    found += [f"{member.name}:{m.name}" for m in layer.getmembers()
                              if m.isfile() and needle in layer.extractfile(m).read()]
    archive.unlink()
    return found


def _as_tar(data: bytes) -> tarfile.TarFile | None:
    import io

    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    try:
        return tarfile.open(fileobj=io.BytesIO(data))
    except tarfile.TarError:
        return None
