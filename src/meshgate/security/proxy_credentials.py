"""Per-proxy credentials for the xDS stream: a proxy proves which node id it is.

Rules:
- A credential is HMAC-SHA256(mesh key, node id), hex: only the control plane, which holds
  the key, can make one, and each node id has its own. The runtime hands a proxy its
  credential in its bootstrap (an xDS request header), which only that proxy's sandbox
  shows; the xDS server checks it before it registers the stream or sends anything.
- The key is 32 random bytes in `<state dir>/security/xds-credential.key`, mode 0600,
  made once and kept, so proxies that outlive a control-plane restart still authenticate.
- Comparison is constant-time. Nothing here logs a credential or the key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

HEADER = "x-meshgate-proxy-token"
KEY_FILE = "xds-credential.key"


def key_path(state_dir: Path) -> Path:
    return state_dir / "security" / KEY_FILE


def load_or_create_key(state_dir: Path) -> bytes:
    path = key_path(state_dir)
    try:
        key = path.read_bytes()
        if len(key) == 32:
            return key
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    key = secrets.token_bytes(32)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    os.replace(tmp, path)
    return key


def credential(key: bytes, node_id: str) -> str:
    return hmac.new(key, node_id.encode(), hashlib.sha256).hexdigest()


def verify(key: bytes, node_id: str, presented: str | None) -> bool:
    if not presented or not node_id:
        return False
    return hmac.compare_digest(credential(key, node_id), presented)
