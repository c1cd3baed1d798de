"""Webhook secrets and signatures.

No secret is ever on the log: a webhook's secret is HMAC(server key, automation id + generation), shown
once when the automation is created and recomputed by the runner that signs each delivery.

A rotation (rotateWebhookSecret) moves an automation to the next generation; the previous one still signs, as a
second `v1` of the V2 header, until the time the rotation named, so that a receiver switches over unhurried.

Each attempt carries two signatures:
- `X-Modelreg-Signature-V2: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{delivery id}.{body}")>` covers
  the delivery id (X-Modelreg-Delivery, which receivers dedupe by) and when the attempt was sent. The body-only
  signature let whoever captured one delivery replay it under a new delivery id (the receiver took it as new)
  or days later; a receiver checking this one refuses both (`verified_v2`, docs/api.md).
- `X-Modelreg-Signature: sha256=<hex HMAC-SHA256(secret, body)>`, the first one, kept for receivers written
  against it.
"""

from __future__ import annotations

import hashlib
import hmac
from uuid import UUID

SIGNATURE_HEADER = "X-Modelreg-Signature"
SIGNATURE_V2_HEADER = "X-Modelreg-Signature-V2"
DELIVERY_HEADER = "X-Modelreg-Delivery"  # automation:event, the same on every retry: receivers dedupe by it
# How far a receiver lets an attempt's signed time be from its own clock (Stripe's and Svix's default).
TOLERANCE_S = 300


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


def signature_v2(secret: str, delivery: str, body: bytes, sent_at: int, previous: str | None = None) -> str:
    """The V2 header's value for one attempt: signed anew at each, so that a retry hours later is still fresh.
    `previous`: the secret a rotation replaced, while it still signs (a second v1, after the current one)."""
    signed = f"t={sent_at},v1={_v1(secret, delivery, body, sent_at)}"
    return signed if previous is None else f"{signed},v1={_v1(previous, delivery, body, sent_at)}"


def _v1(secret: str, delivery: str, body: bytes, sent_at: int) -> str:
    signed = f"{sent_at}.{delivery}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def verified_v2(
    secret: str, header: str, delivery: str, body: bytes, *, now: float, tolerance_s: float = TOLERANCE_S
) -> bool:
    """What a receiver checks (docs/api.md has it as a snippet): the V2 header signs this body, this delivery id
    and a time within `tolerance_s` of `now`."""
    fields = [part.split("=", 1) for part in header.split(",") if "=" in part]
    times = [value for name, value in fields if name == "t"]
    try:
        (sent_at,) = (int(value) for value in times)
    except ValueError:
        return False
    if abs(now - sent_at) > tolerance_s:
        return False
    expected = _v1(secret, delivery, body, sent_at)
    # Any of them: after a rotation the header carries the new secret's and, for a while, the previous one's.
    return any(hmac.compare_digest(value, expected) for name, value in fields if name == "v1")
