"""A webhook's url is a credential: whole to the automation's creator, to anyone else only where it calls."""

from __future__ import annotations

from uuid import uuid4

from modelreg.events.envelope import Actor
from modelreg.services.automations.shown_urls import (
    action_shown_to_others,
    payload_shown_to_others,
    reads_whole_urls,
    url_shown_to_others,
    urls_shown_to_others_in,
)
from modelreg.services.commands.access import Caller

BOB = Actor(kind="user", id="bob")


def test_a_slack_url_is_shown_to_others_as_its_host_without_the_token_in_its_path() -> None:
    assert url_shown_to_others("https://hooks.slack.com/services/T000/B000/XXXX") == "https://hooks.slack.com/…"


def test_a_token_in_the_query_the_fragment_or_the_userinfo_is_not_shown_to_others() -> None:
    assert url_shown_to_others("https://hooks.example/hook?token=SECRET") == "https://hooks.example/…"
    assert url_shown_to_others("https://hooks.example/?token=SECRET") == "https://hooks.example/…"
    assert url_shown_to_others("https://hooks.example#SECRET") == "https://hooks.example/…"
    assert url_shown_to_others("http://ci:p%40ss@ci.example:8443/deploy") == "http://ci.example:8443/…"
    assert url_shown_to_others("https://user:SECRET@hooks.example") == "https://hooks.example"


def test_a_url_with_nothing_after_its_host_is_shown_as_it_is() -> None:
    assert url_shown_to_others("https://hooks.example") == "https://hooks.example"
    assert url_shown_to_others("https://hooks.example/") == "https://hooks.example/"
    assert url_shown_to_others("http://[fe80::1%25eth0]:80/x") == "http://[fe80::1%25eth0]:80/…"
    assert url_shown_to_others("not a url SECRET") == "…"
    assert url_shown_to_others("https://user:SEC/RET@hooks.example/") == "…"  # the password's `/` ends the host


def test_a_refusal_repeating_a_url_repeats_it_as_others_are_shown_it() -> None:
    refused = "webhook url 'https://hooks.example/hook?token=SECRET' points at 10.0.0.1, a private address"
    shown = "webhook url 'https://hooks.example/…' points at 10.0.0.1, a private address"
    assert urls_shown_to_others_in(refused) == shown
    assert urls_shown_to_others_in("answered 500") == "answered 500"


def test_only_a_webhooks_url_is_hidden_of_an_automations_action_and_records() -> None:
    webhook = {"kind": "webhook", "url": "https://hooks.example/hook?token=SECRET", "payload": {"text": "${actor}"}}
    assert action_shown_to_others(webhook) == {**webhook, "url": "https://hooks.example/…"}
    launch = {"kind": "launch", "queue": "gpu", "entity": "acme", "config": {"url": "https://x.example/a?b"}}
    assert action_shown_to_others(launch) == launch
    created = {
        "automation_id": str(uuid4()),
        "name": "tell slack",
        "trigger": {"event": "alias_added"},
        "action": webhook,
    }
    assert payload_shown_to_others("automations.automation_created", created) == {
        **created,
        "action": {**webhook, "url": "https://hooks.example/…"},
    }
    attempted = {"url": webhook["url"], "error": f"webhook url {webhook['url']!r} points at 10.0.0.1", "attempt": 1}
    assert payload_shown_to_others("automations.webhook_attempted", attempted) == {
        "url": "https://hooks.example/…",
        "error": "webhook url 'https://hooks.example/…' points at 10.0.0.1",
        "attempt": 1,
    }
    fired = {"outcome": "failed", "detail": f"gave up (the last: {webhook['url']} answered 500)"}
    assert payload_shown_to_others("automations.automation_fired", fired)["detail"] == (
        "gave up (the last: https://hooks.example/… answered 500)"
    )
    linked = {"registered_model": "m", "url": "https://x.example/a?b"}
    assert payload_shown_to_others("registry.version_linked", linked) == linked


def test_its_creator_reads_its_urls_whole_and_nobody_else_not_even_through_a_job_of_theirs() -> None:
    assert reads_whole_urls(Caller(BOB, "member"), "user:bob")
    assert not reads_whole_urls(Caller(Actor(kind="user", id="ada"), "admin"), "user:bob")
    assert not reads_whole_urls(Caller(BOB, "member", job_id=uuid4(), job_attempt=1), "user:bob")
    assert not reads_whole_urls(Caller(BOB, "member"), None)  # not in the read model yet
    assert not reads_whole_urls(None, "user:bob")
