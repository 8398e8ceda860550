"""Files the runtime makes for a pod's containers: the contents of configMap and secret
volumes, and the layer of a container's image (see `images`).

Rules:
- A configMap or secret volume is written once, when its pod is created, under the mesh's
  runtime directory (a tmpfs, as the kubelet keeps secrets in memory) in a directory only
  root may reach (0700): the host never shows the files at their mount paths, and other
  users of the host cannot read them. Inside a sandbox, the volume's directory (0755) is
  bound read-only at each mount path; each file has its item's mode, else the volume's
  `defaultMode`, else 0644, owned by root. Files are plain files (no `..data` symlinks:
  a volume's content is fixed for the pod's life).
- A file's path stays inside its volume: `..`, absolute paths and empty parts are refused
  (validation refuses them first; this is the last guard).
- An image's layer directories are made anew for each run of a container (its writable
  layer starts clean, as under a container runtime), on the node's disk under the state
  directory, owned as the image has them; they go with the pod.
"""

from __future__ import annotations

import base64
import os
import pwd
import shutil
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from meshgate.runtime import images, sandbox
from meshgate.runtime.podspec import VolumeSpec


def _safe(path: str) -> PurePosixPath:
    p = PurePosixPath(path)
    if p.is_absolute() or not p.parts or any(part in ("", ".", "..") for part in p.parts):
        raise ValueError(f"volume file path {path!r} leaves its volume")
    return p


def _mkdirs(top: Path, rel: PurePosixPath, mode: int = 0o755) -> None:
    d = top
    for part in rel.parts:
        d = d / part
        if not d.is_dir():
            d.mkdir(mode=mode)
            os.chmod(d, mode)


def write_volume(d: Path, vol: VolumeSpec) -> None:
    """Write a configMap/secret volume's files into `d` (replaced whole)."""
    shutil.rmtree(d, ignore_errors=True)
    d.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(d.parent, 0o700)
    d.mkdir(mode=0o755)
    os.chmod(d, 0o755)
    for f in vol.files:
        rel = _safe(f.path)
        _mkdirs(d, rel.parent)
        target = d / rel
        target.write_bytes(base64.b64decode(f.data))
        os.chmod(target, f.mode & 0o7777)


def _owner(name: str) -> tuple[int, int]:
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        return 0, 0  # the host lacks the user its package would have made: root's
    return pw.pw_uid, pw.pw_gid


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def make_layer(
    base: Path, layer: Sequence[images.LayerDir], covered: Sequence[str]
) -> tuple[sandbox.Mount, ...]:
    """Make the image's layer directories under `base` (replaced whole) and return their
    mounts; a directory that a volume of the container covers (`covered`: mount paths) is
    left out, as the volume would hide it."""
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(mode=0o700, parents=True)
    os.chmod(base, 0o700)
    mounts = []
    for i, entry in enumerate(layer):
        if any(_under(entry.path, top) for top in covered):
            continue
        d = base / str(i)
        d.mkdir(mode=entry.mode)
        for name, text in entry.files:
            rel = _safe(name)
            _mkdirs(d, rel.parent)
            (d / rel).write_text(text, encoding="utf-8")
            os.chmod(d / rel, 0o644)
        for name, source in entry.copies:
            rel = _safe(name)
            if os.path.isfile(source):
                _mkdirs(d, rel.parent)
                shutil.copyfile(source, d / rel)
                os.chmod(d / rel, 0o644)
        for name, target in entry.links:
            rel = _safe(name)
            _mkdirs(d, rel.parent)
            os.symlink(target, d / rel)
        uid, gid = _owner(entry.owner)
        os.chown(d, uid, gid)
        os.chmod(d, entry.mode)
        mounts.append(sandbox.Mount(str(d), entry.path, read_only=False))
    return tuple(mounts)
