"""The command line of Launch and automations: `modelreg queue`, `modelreg automation`, `modelreg launch` and
`modelreg job`, all through the API with the caller's key."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlsplit

import click

from modelreg.services.cli_client import client_options, graphql, seconds, warn, with_command_id
from modelreg.services.terminal_text import say, shown_output


@click.group()
def queue() -> None:
    """Launch queues (admins create them)."""


@queue.command("create")
@click.argument("name")
@click.option(
    "--resource",
    type=click.Choice(["local-process", "docker", "kubernetes"]),
    default="local-process",
    show_default=True,
)
@click.option(
    "--config", "resource_config", default="{}", help='JSON, e.g. {"namespace": "ml", "gpu": 1} for kubernetes.'
)
@click.option(
    "--entity",
    "entities",
    multiple=True,
    metavar="NAME",
    help="Take only this entity's jobs (repeat for several; every entity's if none): its jobs run side by side on "
    "its agents' machines, so name teams that trust each other.",
)
@client_options
def queue_create(
    name: str, resource: str, resource_config: str, entities: tuple[str, ...], url: str | None, api_key: str | None
) -> None:
    """Create a queue NAME whose jobs run as local processes, in Docker, or as Kubernetes Jobs."""
    # Without --entity, neither sent nor asked for: the command still works against a server older than entities.
    returned = "name resource entities" if entities else "name resource"
    query = f"mutation($i: CreateLaunchQueueInput!) {{ createLaunchQueue(input: $i) {{ {returned} }} }}"
    queue_input = {"name": name, "resource": _enum_name(resource), "resourceConfig": json.loads(resource_config)}
    if entities:
        queue_input["entities"] = list(entities)
    created = graphql(url, api_key, query, {"i": queue_input})["createLaunchQueue"]
    takes = _takes(created.get("entities", []))
    say(f"queue {created['name']} ({_enum_value(created['resource'])}) created, {takes}")


@queue.command("entities")
@click.argument("name")
@click.argument("entities", nargs=-1, metavar="[ENTITY]...")
@client_options
def queue_entities(name: str, entities: tuple[str, ...], url: str | None, api_key: str | None) -> None:
    """Make queue NAME take only these entities' jobs (none named: every entity's)."""
    query = "mutation($i: SetLaunchQueueEntitiesInput!) { setLaunchQueueEntities(input: $i) { name entities } }"
    changed = graphql(url, api_key, query, {"i": {"name": name, "entities": list(entities)}})["setLaunchQueueEntities"]
    say(f"queue {changed['name']} {_takes(changed['entities'])}")


@queue.command("delete")
@click.argument("name")
@client_options
def queue_delete(name: str, url: str | None, api_key: str | None) -> None:
    """Delete queue NAME (admins), once no job waits or runs in it and no automation launches into it."""
    query = "mutation($i: DeleteLaunchQueueInput!) { deleteLaunchQueue(input: $i) { name } }"
    done = graphql(url, api_key, query, {"i": {"name": name}})["deleteLaunchQueue"]
    say(f"queue {done['name']} deleted")


def _takes(entities: list[str]) -> str:
    return f"takes jobs of {', '.join(entities)} only" if entities else "takes every entity's jobs"


def _enum_name(value: str) -> str:
    """A value as the API's enums spell it: local-process -> LOCAL_PROCESS."""
    return value.upper().replace("-", "_")


def _enum_value(name: str) -> str:
    """An API enum as the CLI shows it: LOCAL_PROCESS -> local-process."""
    return name.lower().replace("_", "-")


@click.group()
def automation() -> None:
    """Automations: when an event happens, enqueue a job or call a webhook."""


@automation.command("create")
@click.argument("spec", type=click.File("r"))
@client_options
def automation_create(spec: Any, url: str | None, api_key: str | None) -> None:
    """SPEC: a YAML or JSON file with name, trigger, action and optionally description and cooldown_s."""
    query = (
        "mutation($i: CreateAutomationInput!) { createAutomation(input: $i) { "
        "automation { id name warnings } webhookSecret } }"
    )
    created = graphql(url, api_key, query, {"i": _automation_input(spec)})["createAutomation"]
    say(f"automation {created['automation']['id']} ({created['automation']['name']}) created")
    warn(created["automation"]["warnings"])
    if created["webhookSecret"]:
        say(
            "webhook secret (shown once; verify X-Modelreg-Signature-V2 with it, as docs/api.md shows): "
            f"{created['webhookSecret']}"
        )


def _automation_input(spec: Any) -> dict[str, Any]:
    """An automation's spec file (YAML or JSON, its keys as the action's: cooldown_s) as the API's input."""
    import yaml

    fields = yaml.safe_load(spec) or {}
    if not isinstance(fields, dict):
        raise click.BadParameter("the spec is a mapping: name, trigger, action, description, cooldown_s")
    return {
        "name": fields.get("name"),
        "description": fields.get("description"),
        "trigger": fields.get("trigger"),
        "action": fields.get("action"),
        "cooldownS": fields.get("cooldown_s", 0),
    }


@automation.command("list")
@client_options
def automation_list(url: str | None, api_key: str | None) -> None:
    """Every automation: id, state, name, its trigger with what it watches -> its action and where it acts."""
    query = """query($after: String) { automations(first: 500, after: $after) {
      items { id name enabled trigger action lastFiredAt warnings } endCursor hasNextPage } }"""
    for found in _every("automations", query, {}, url, api_key):
        state = "enabled" if found["enabled"] else "disabled"
        say(
            f"{found['id']}  {state:8}  {found['name']}  "
            f"on {trigger_in_words(found['trigger'])} -> {action_in_words(found['action'])}"
        )
        # On stderr, away from the lines a script reads: each names its automation (a creator with no live key).
        warn([f"automation {found['id']}: {warning}" for warning in found["warnings"]])


def trigger_in_words(trigger: dict[str, Any]) -> str:
    """`alias_added model=nature-classification alias~candidate`: the event and each scope field it was given (two
    automations on the same event told apart), patterns with ~, a metric's crossing as `metric=loss < 0.1`."""
    said = [trigger["event"]]
    where = "/".join(trigger[field] for field in ("entity", "project", "collection") if trigger.get(field))
    if where:
        said.append(f"in={where}")
    for field, label in (("artifact_type", "type"), ("registered_model", "model"), ("run_state", "state")):
        if trigger.get(field):
            said.append(f"{label}={trigger[field]}")
    for field, label in (("alias_pattern", "alias"), ("tag_pattern", "tag")):
        if trigger.get(field):
            said.append(f"{label}~{trigger[field]}")
    if trigger.get("metric"):
        said.append(f"metric={trigger['metric']} {trigger.get('op')} {trigger.get('threshold')}")
    return " ".join(said)


def action_in_words(action: dict[str, Any]) -> str:
    """`launch queue=cpu in=acme/nature`, `webhook host=hooks.example.com` (its path may hold a token)."""
    if action.get("kind") == "launch":
        return f"launch queue={action.get('queue')} in={action.get('entity')}/{action.get('project')}"
    if action.get("kind") == "webhook":
        return f"webhook host={urlsplit(str(action.get('url', ''))).hostname}"
    return str(action.get("kind"))


@automation.command("enable")
@click.argument("automation_id")
@client_options
def automation_enable(automation_id: str, url: str | None, api_key: str | None) -> None:
    """Let it fire again (recorded as an event: the audit shows who)."""
    _set_enabled(automation_id, True, url, api_key)


@automation.command("disable")
@click.argument("automation_id")
@client_options
def automation_disable(automation_id: str, url: str | None, api_key: str | None) -> None:
    """Stop it firing (recorded as an event: the audit shows who)."""
    _set_enabled(automation_id, False, url, api_key)


@automation.command("change")
@click.argument("automation_id")
@click.argument("spec", type=click.File("r"))
@client_options
def automation_change(automation_id: str, spec: Any, url: str | None, api_key: str | None) -> None:
    """Give your automation a new SPEC (as `create` takes it; its action of the same kind): its id, secret and
    history stay."""
    query = "mutation($i: ChangeAutomationInput!) { changeAutomation(input: $i) { id name warnings } }"
    done = graphql(url, api_key, query, {"i": {"id": automation_id, **_automation_input(spec)}})["changeAutomation"]
    say(f"automation {done['id']} ({done['name']}) changed")
    warn(done["warnings"])


@automation.command("delete")
@click.argument("automation_id")
@client_options
def automation_delete(automation_id: str, url: str | None, api_key: str | None) -> None:
    """Delete it (yours, or any as an admin): it fires no more; its firings stay, for the audit."""
    query = "mutation($i: DeleteAutomationInput!) { deleteAutomation(input: $i) { name } }"
    done = graphql(url, api_key, query, {"i": {"id": automation_id}})["deleteAutomation"]
    say(f"automation {done['name']} deleted")


_FIRING_STATUSES = ("pending", "skipped", "enqueued", "delivered", "failed")


@automation.command("firings")
@click.argument("automation_id")
@click.option("--status", type=click.Choice(_FIRING_STATUSES), default=None, help="Only firings that came to this.")
@click.option("--limit", default=50, show_default=True, help="At most this many, newest first.")
@client_options
def automation_firings(
    automation_id: str, status: str | None, limit: int, url: str | None, api_key: str | None
) -> None:
    """What it fired on, newest first: the event's id (for `retry`), its type, status, and why or which job."""
    query = """query($id: ID!, $after: String) { automation(id: $id) { firings(first: 100, after: $after) {
      items { eventId eventType actor status jobId detail occurredAt retries } endCursor hasNextPage } } }"""
    shown = 0
    missing = f"no automation {automation_id} that this key may read"
    for found in _every("automation.firings", query, {"id": automation_id}, url, api_key, missing):
        if shown == limit:
            break
        if status is not None and found["status"] != _enum_name(status):
            continue
        result = f"job {found['jobId']}" if found["jobId"] else (found["detail"] or "")
        retried = f" (retried {found['retries']}x)" if found["retries"] else ""
        say(
            f"{found['eventId']}  {_enum_value(found['status']):9}  {found['eventType']}  by {found['actor']} at "
            f"{found['occurredAt']}{retried}  {result}".rstrip()
        )
        shown += 1
    if not shown:
        say("no firings")


@automation.command("retry")
@click.argument("automation_id")
@click.argument("event_id")
@client_options
def automation_retry(automation_id: str, event_id: str, url: str | None, api_key: str | None) -> None:
    """Carry out again its firing for EVENT_ID (`firings --status failed` lists them), which failed or was skipped:
    a webhook is called again under the same delivery id, a launch enqueues its job."""
    query = "mutation($i: RetryFiringInput!) { retryFiring(input: $i) { status retries } }"
    done = graphql(url, api_key, query, {"i": {"id": automation_id, "eventId": event_id}})["retryFiring"]
    say(f"firing for event {event_id} {_enum_value(done['status'])} again (retry {done['retries']})")


def _set_enabled(automation_id: str, enabled: bool, url: str | None, api_key: str | None) -> None:
    query = "mutation($i: SetAutomationEnabledInput!) { setAutomationEnabled(input: $i) { name enabled } }"
    done = graphql(url, api_key, query, {"i": {"id": automation_id, "enabled": enabled}})["setAutomationEnabled"]
    say(f"automation {done['name']} {'enabled' if done['enabled'] else 'disabled'}")


@click.command()
@click.option("--queue", "queue_name", required=True)
@click.option("--from-run", "from_run", required=True, help="entity/project/run_id of a finished run to re-run.")
@click.option(
    "--config",
    "overrides",
    multiple=True,
    help="key=value knobs that change the run's config (values parse as JSON). A dotted key sets a nested value "
    "where the config nests (optimizer.lr=0.1); a key naming a dict replaces it whole (optimizer='{\"lr\": 0.1}').",
)
@click.option("--priority", default=0, show_default=True)
@click.option(
    "--time-limit",
    "time_limit",
    default=None,
    help="How long an attempt may run (90s, 30m, 6h, 2d): then its agent stops it and the job fails. None by default.",
)
@click.option("--url", envvar="MODELREG_URL", default=None)
@click.option("--api-key", envvar="MODELREG_API_KEY", default=None)
@click.argument("more_overrides", nargs=-1)
def launch(
    queue_name: str,
    from_run: str,
    overrides: tuple[str, ...],
    priority: int,
    time_limit: str | None,
    url: str | None,
    api_key: str | None,
    more_overrides: tuple[str, ...],
) -> None:
    """Enqueue a finished run again with changed knobs:
    `modelreg launch --queue cpu --from-run acme/nature/ab12 --config lr=0.01 epochs=3`; a nested knob by its
    dotted path: `--config optimizer.lr=0.1`."""
    parts = from_run.split("/")
    if len(parts) != 3:
        raise click.BadParameter("use entity/project/run_id", param_hint="--from-run")
    knobs = {}
    for pair in (*overrides, *more_overrides):
        key, sep, raw = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r} is not key=value", param_hint="--config")
        try:
            knobs[key] = json.loads(raw)
        except ValueError:
            knobs[key] = raw
    query = "mutation($i: EnqueueJobInput!) { enqueueJob(input: $i) { id state config } }"
    # A command id: the transport sends it again after a lost answer, and the server enqueues it once.
    enqueue = with_command_id(
        {
            "queue": queue_name,
            "entity": parts[0],
            "project": parts[1],
            "fromRun": parts[2],
            "overrides": knobs,
            "priority": priority,
            "timeLimitS": None if time_limit is None else seconds(time_limit, "--time-limit"),
        }
    )
    job = graphql(url, api_key, query, {"i": enqueue})
    say(
        f"job {job['enqueueJob']['id']} queued on {queue_name} "
        f"with config {json.dumps(job['enqueueJob']['config'], sort_keys=True)}"
    )


@queue.command("list")
@client_options
def queue_list(url: str | None, api_key: str | None) -> None:
    """Every queue: name, what runs its jobs, whose jobs it takes."""
    query = """query($after: String) { launchQueues(first: 500, after: $after) {
      items { name resource entities } endCursor hasNextPage } }"""
    for found in _every("launchQueues", query, {}, url, api_key):
        say(f"{found['name']}  {_enum_value(found['resource'])}  {_takes(found['entities'])}")


def _every(
    path: str, query: str, variables: dict[str, Any], url: str | None, api_key: str | None, missing: str = ""
) -> Any:
    """Every item of a paged field (`automations`, or `automation.firings` within an object), page after page;
    `missing` is said when the object is not found."""
    after = None
    while True:
        page = graphql(url, api_key, query, {**variables, "after": after})
        for field in path.split("."):
            page = page[field]
            if page is None:
                raise click.ClickException(missing)
        yield from page["items"]
        if not page["hasNextPage"]:
            return
        after = page["endCursor"]


_JOB_STATES = ("queued", "claimed", "running", "finished", "failed", "cancelled")
_JOB = (
    "id queue entity project state attempt requeues agentId exitCode reason enqueuedAt enqueuedBy timeLimitS runIds "
    "retryOf triggeredBy"
)


@click.group()
def job() -> None:
    """Launch jobs: list them, see one and its output, cancel one, run an ended one again."""


@job.command("list")
@click.option("--queue", "queue_name", default=None, help="Only this queue's jobs.")
@click.option("--state", type=click.Choice(_JOB_STATES), default=None, help="Only jobs in this state.")
@click.option("--limit", default=50, show_default=True, help="At most this many (newest first; queued: next first).")
@client_options
def job_list(queue_name: str | None, state: str | None, limit: int, url: str | None, api_key: str | None) -> None:
    """Jobs you may read, newest first: id, state, queue, entity/project, enqueued by."""
    query = f"""query($q: String, $s: JobState, $after: String) {{ launchJobs(queue: $q, state: $s, first: 100,
      after: $after) {{ items {{ {_JOB} }} endCursor hasNextPage }} }}"""
    variables = {"q": queue_name, "s": state and _enum_name(state)}
    shown = 0
    for found in _every("launchJobs", query, variables, url, api_key):
        if shown == limit:
            break
        say(
            f"{found['id']}  {_enum_value(found['state']):9}  {found['queue']}  {found['entity']}/{found['project']}  "
            f"by {found['enqueuedBy']} at {found['enqueuedAt']}"
        )
        shown += 1
    if not shown:
        say("no jobs")


@job.command("show")
@click.argument("job_id")
@client_options
def job_show(job_id: str, url: str | None, api_key: str | None) -> None:
    """One job: its state, attempts, why it ended, its runs."""
    found = _job(job_id, url, api_key)
    say(f"job {found['id']}  {_enum_value(found['state'])}")
    say(f"  queue {found['queue']}, {found['entity']}/{found['project']}, enqueued by {found['enqueuedBy']}")
    if trigger := found["triggeredBy"]:  # where it came from, as the web UI's job page says
        say(f"  triggered by automation {trigger['automation_id']} on {trigger['event_type']} {trigger['event_id']}")
    if found["retryOf"]:
        say(f"  runs job {found['retryOf']} again")
    requeued = f", requeued {found['requeues']} time(s)" if found["requeues"] else ""
    say(f"  attempt {found['attempt']}{requeued}" + (f" on {found['agentId']}" if found["agentId"] else ""))
    if found["timeLimitS"] is not None:
        say(f"  time limit {found['timeLimitS']} s")
    if found["exitCode"] is not None:
        say(f"  exit status {found['exitCode']}")
    if found["reason"]:
        say(f"  reason: {found['reason']}")
    if found["runIds"]:
        say(f"  runs: {', '.join(found['runIds'])}")


def _job(job_id: str, url: str | None, api_key: str | None) -> dict[str, Any]:
    found = graphql(url, api_key, f"query($id: ID!) {{ launchJob(id: $id) {{ {_JOB} }} }}", {"id": job_id})
    if found["launchJob"] is None:
        raise click.ClickException(f"no job {job_id} that this key may read")
    return found["launchJob"]


_ENDED = ("FINISHED", "FAILED", "CANCELLED")


@job.command("logs")
@click.argument("job_id")
@click.option("--follow", "-f", is_flag=True, help="Keep printing what it prints until it ends.")
@client_options
def job_logs(job_id: str, follow: bool, url: str | None, api_key: str | None) -> None:
    """What the job printed (stdout, and stderr to stderr), attempt by attempt."""
    query = """query($id: ID!, $after: String) { launchJob(id: $id) { state
      output(first: 500, after: $after) { items { attempt stream text } endCursor hasNextPage } } }"""
    after, attempt = None, None
    while True:
        found = graphql(url, api_key, query, {"id": job_id, "after": after})["launchJob"]
        if found is None:
            raise click.ClickException(f"no job {job_id} that this key may read")
        page = found["output"]
        for chunk in page["items"]:
            if chunk["attempt"] != attempt:
                if attempt is not None:
                    say(f"[modelreg: attempt {chunk['attempt']}]", err=True)
                attempt = chunk["attempt"]
            click.echo(shown_output(chunk["text"]), nl=False, err=chunk["stream"] == "STDERR")
        after = page["endCursor"] or after
        if page["hasNextPage"]:
            continue
        if not follow or found["state"] in _ENDED:
            return
        time.sleep(1.0)


@job.command("cancel")
@click.argument("job_id")
@click.option("--reason", default=None, help="Why: kept with the job and in the audit log.")
@client_options
def job_cancel(job_id: str, reason: str | None, url: str | None, api_key: str | None) -> None:
    """Cancel a job: a running one is asked to stop (SIGTERM), then killed 10 s later."""
    query = "mutation($i: CancelJobInput!) { cancelJob(input: $i) { id state } }"
    done = graphql(url, api_key, query, {"i": with_command_id({"id": job_id, "reason": reason})})["cancelJob"]
    say(f"job {done['id']} {_enum_value(done['state'])}")


@job.command("retry")
@click.argument("job_id")
@client_options
def job_retry(job_id: str, url: str | None, api_key: str | None) -> None:
    """Run an ended job (failed, cancelled, finished) again, as it was enqueued: prints the new job's id."""
    query = "mutation($i: RetryJobInput!) { retryJob(input: $i) { id queue } }"
    done = graphql(url, api_key, query, {"i": with_command_id({"id": job_id})})["retryJob"]
    say(f"job {done['id']} queued on {done['queue']} (a retry of {job_id})")
