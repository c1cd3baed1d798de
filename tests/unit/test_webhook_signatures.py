"""A webhook delivery's V2 signature covers its delivery id and when it was sent, so that a receiver refuses a
captured delivery replayed under a new id or replayed later; the first, body-only signature is still sent."""

from __future__ import annotations

import hashlib
import hmac
import time

from modelreg.services.automations.webhook_signing import TOLERANCE_S, signature, signature_v2, verified_v2

SECRET = "whsec-of-the-automation"
DELIVERY = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b:0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a60"
BODY = b'{"alias": "production"}'


def test_a_delivery_signed_now_verifies_as_the_docs_say() -> None:
    now = int(time.time())
    header = signature_v2(SECRET, DELIVERY, BODY, now)

    assert verified_v2(SECRET, header, DELIVERY, BODY, now=now)
    # What docs/api.md tells receivers to compute, written out without modelreg.
    t, v1 = (part.split("=", 1)[1] for part in header.split(","))
    assert v1 == hmac.new(SECRET.encode(), f"{t}.{DELIVERY}.".encode() + BODY, hashlib.sha256).hexdigest()


def test_a_captured_delivery_replayed_under_a_new_delivery_id_is_refused() -> None:
    # The body-only signature verified the same under any X-Modelreg-Delivery: the receiver, deduping by that id,
    # acted on the replay as on a new delivery.
    now = int(time.time())
    header = signature_v2(SECRET, DELIVERY, BODY, now)

    assert not verified_v2(SECRET, header, DELIVERY.replace("5b:", "5c:"), BODY, now=now)


def test_a_captured_delivery_replayed_later_is_refused() -> None:
    sent_at = int(time.time())
    header = signature_v2(SECRET, DELIVERY, BODY, sent_at)

    assert verified_v2(SECRET, header, DELIVERY, BODY, now=sent_at + TOLERANCE_S)
    assert not verified_v2(SECRET, header, DELIVERY, BODY, now=sent_at + TOLERANCE_S + 1)
    # Nor by moving the time forward: the time is signed.
    forged = header.replace(f"t={sent_at}", f"t={sent_at + 3600}")
    assert not verified_v2(SECRET, forged, DELIVERY, BODY, now=sent_at + 3600)


def test_another_body_another_secret_or_a_mangled_header_is_refused() -> None:
    now = int(time.time())
    header = signature_v2(SECRET, DELIVERY, BODY, now)

    assert not verified_v2(SECRET, header, DELIVERY, b'{"alias": "staging"}', now=now)
    assert not verified_v2("another-secret", header, DELIVERY, BODY, now=now)
    for mangled in ("", "t=abc,v1=00", f"v1={header.split('v1=')[1]}", f"t={now}"):
        assert not verified_v2(SECRET, mangled, DELIVERY, BODY, now=now)


def test_the_first_body_only_signature_is_unchanged_for_receivers_written_against_it() -> None:
    assert signature(SECRET, BODY) == "sha256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()


def test_after_a_rotation_a_delivery_verifies_with_the_new_secret_and_for_a_while_the_previous_one() -> None:
    now = int(time.time())
    header = signature_v2("the-new-secret", DELIVERY, BODY, now, previous=SECRET)

    assert header.count("v1=") == 2 and header.index("t=") == 0
    assert verified_v2("the-new-secret", header, DELIVERY, BODY, now=now)
    assert verified_v2(SECRET, header, DELIVERY, BODY, now=now)  # a receiver not switched over yet
    assert not verified_v2("another-secret", header, DELIVERY, BODY, now=now)
    assert signature_v2("the-new-secret", DELIVERY, BODY, now) == header.rsplit(",", 1)[0]
