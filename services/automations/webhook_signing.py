"""Webhook secrets and signatures.

No secret is ever on the log: a webhook's secret is HMAC(server key, automation id + generation), shown
once when the automation is created and recomputed by the runner that signs each delivery. Receivers
check `X-Modelreg-Signature: sha256=<hex HMAC-SHA256(secret, body)>`.
"""

from __future__ import annotations

import hashlib
import hmac
from uuid import UUID

SIGNATURE_HEADER = "X-Modelreg-Signature"
DELIVERY_HEADER = "X-Modelreg-Delivery"  # automation:event, the same on every retry: receivers dedupe by it


WITHOUT_A_KEY = (
    "webhooks need a server secret key: set MODELREG_WEBHOOK_SECRET_KEY for `modelreg api` and `modelreg triggers` "
    "(`modelreg server` makes one in its data dir)"
)


class WebhookSecrets:
    def __init__(self, server_key: str | None) -> None:
        self._server_key = server_key.encode() if server_key else None

    @property
    def can_sign(self) -> bool:
        return self._server_key is not None

    def secret(self, automation_id: UUID, generation: int) -> str:
        if self._server_key is None:
            raise RuntimeError(WITHOUT_A_KEY)
        return hmac.new(self._server_key, f"{automation_id}:{generation}".encode(), hashlib.sha256).hexdigest()


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
