"""API keys as they are handed out: `mr_<key id>_<secret>`, of which the log and the read model keep a hash only."""

from __future__ import annotations

import hashlib
import secrets


def new_api_key() -> tuple[str, str]:
    """A fresh key and its id (the part after `mr_`, which names the key in the Access page and the audit log)."""
    key_id = secrets.token_hex(6)
    return key_id, f"mr_{key_id}_{secrets.token_urlsafe(32)}"


def key_sha256(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
