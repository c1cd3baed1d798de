"""Who proved to hold a file: a principal that sent a file's bytes, verified against its digest.

The blob store keeps one file per content, whoever sent it, and a version's manifest names files by digest.
A digest is no secret once it is shown (a manifest, a lineage page, a shared link), and a file that only a
private team's versions list must not become readable to whoever lists its digest in a version of their own.
So logging a version that lists such a file needs a proof of possession: the caller sent those bytes
itself. The store answers that caller as if it lacked the file, the client sends it, the store verifies the
digest (the stored copy is never touched) and records the sender here, beside the bytes, where every API
process sharing the store finds it.

A record is an empty marker named by a hash of the holder, under the file's digest. The holder is the API key
that sent the bytes (`Caller.holder`): a key limited to one team does not inherit what its principal's other
keys sent.
"""

from __future__ import annotations

import hashlib


def holder_mark(holder: str) -> str:
    """The marker's name for a principal: fixed-length, no path characters, the same in every store."""
    return hashlib.sha256(holder.encode()).hexdigest()[:32]
