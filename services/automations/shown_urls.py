"""A webhook's url as those who may not change its automation read it.

An incoming-webhook url is often a credential by itself: Slack's and Discord's carry their secret in the path,
others a token in the query string or a user and password. An automation is read by everyone who reads what it
watches, so its url, its deliveries and its audit records showed that credential to every viewer. Its creator,
the one who may change it (changeAutomation), reads it whole; anyone else reads where it calls (scheme, host and
port) and `/…` for whatever follows, as `modelreg automation list` names only its host. Which parts of a path
hold a token cannot be told, so none of it is shown.

The log keeps each event whole: answers are redacted as they are served (GraphQL's automations, the audit log,
live events).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from modelreg.events.automations import AutomationChanged, AutomationCreated, AutomationFired, WebhookAttempted
from modelreg.services.commands.access import Caller

HIDDEN = "…"

# A url inside a message (a refusal repeats the url it refused: `webhook url 'https://...' points at ...`), up to
# the quote, space or bracket that ends it.
_URL_IN_TEXT = re.compile(r"https?://[^\s'\"<>]+", re.IGNORECASE)
# A host (a name, an address, or an IPv6 address in brackets) and its port: anything else in its place (a password
# written with a `/` in it, which ends the authority early) is not shown.
_HOST_AND_PORT = re.compile(r"(\[[^\]/?#@\s]*\]|[^\s:/?#@\[\]]+)(:\d*)?")

# The events whose payload names a webhook's url, whole or inside a message.
CARRY_A_URL = frozenset({AutomationCreated.type, AutomationChanged.type, WebhookAttempted.type, AutomationFired.type})
# Of those, the events whose actor is the automation's creator (they alone create and change one); the others are
# the automation's own (actor `automation:<id>`).
BY_ITS_CREATOR = frozenset({AutomationCreated.type, AutomationChanged.type})


def reads_whole_urls(caller: Caller | None, created_by: str | None) -> bool:
    """Whether `caller` reads the urls of an automation `created_by` whole: who may change it, its creator with a
    key of their own (a job attempt's key may not change it either)."""
    return caller is not None and caller.job_id is None and created_by is not None and str(caller.actor) == created_by


def url_shown_to_others(url: str) -> str:
    """`https://hooks.slack.com/services/T0/B0/XXXX` -> `https://hooks.slack.com/…`; the userinfo dropped."""
    scheme, separator, rest = url.partition("://")
    if not separator or not scheme:
        return HIDDEN
    authority, tail = _split_authority(rest)
    host = authority.rpartition("@")[2]
    if not _HOST_AND_PORT.fullmatch(host):
        return HIDDEN
    return f"{scheme}://{host}" + (f"/{HIDDEN}" if tail.strip("/") else tail)


def _split_authority(rest: str) -> tuple[str, str]:
    """The authority (user, host and port) and what follows it: the path, query and fragment."""
    ends = [i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0]
    end = min(ends) if ends else len(rest)
    return rest[:end], rest[end:]


def urls_shown_to_others_in(text: str) -> str:
    """A message with each url in it shown as `url_shown_to_others` shows it."""
    return _URL_IN_TEXT.sub(lambda found: url_shown_to_others(found.group(0)), text)


def action_shown_to_others(action: Mapping[str, Any]) -> dict[str, Any]:
    """An automation's action with its webhook url shown as to who may not change it; a launch's as it is."""
    url = action.get("url")
    if action.get("kind") != "webhook" or not isinstance(url, str):
        return dict(action)
    return {**action, "url": url_shown_to_others(url)}


def payload_shown_to_others(event_type: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """An event's payload (as JSON, in the audit log or a live event) with the webhook urls it names shown as to
    who may not change the automation."""
    shown = dict(payload)
    if event_type in BY_ITS_CREATOR and isinstance(action := payload.get("action"), Mapping):
        shown["action"] = action_shown_to_others(action)
    if event_type == WebhookAttempted.type and isinstance(url := payload.get("url"), str):
        shown["url"] = url_shown_to_others(url)
    for message in ("error", "detail"):  # a webhook's refusal or the firing it failed repeats its url
        if event_type in CARRY_A_URL and isinstance(text := payload.get(message), str):
            shown[message] = urls_shown_to_others_in(text)
    return shown
