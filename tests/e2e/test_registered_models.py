"""The registry's collections: a model card, tags, search, unlinking, and the global audit log."""

from __future__ import annotations

import asyncio

from support.stack import Stack
from support.story import LINK, LOG_VERSION, digest_of, version_input

CARD = """mutation($m: String!, $d: String!, $i: String, $o: String) {
  updateModelCard(input: {registeredModel: $m, description: $d, inputs: $i, outputs: $o})
  { name description inputs outputs }
}"""
TAG = "mutation($m: String!, $t: String!) { tagRegisteredModel(input: {registeredModel: $m, tag: $t}) { tags } }"
UNTAG = "mutation($m: String!, $t: String!) { untagRegisteredModel(input: {registeredModel: $m, tag: $t}) { tags } }"
MODELS = """query($s: String, $t: String, $first: Int, $after: String) {
  registeredModels(search: $s, tag: $t, first: $first, after: $after) { items { name tags } endCursor hasNextPage }
}"""
UNLINK = (
    "mutation($m: String!, $id: ID!) { unlinkArtifactVersion(input: {registeredModel: $m, artifactVersionId: $id}) { "
    "name } }"
)


async def log(stack: Stack, content: bytes) -> str:
    answer = await stack.graphql(LOG_VERSION, {"input": version_input("classifier", content)})
    return answer["data"]["logArtifactVersion"]["id"]


async def test_a_model_card_and_tags_make_a_registered_model_findable(stack: Stack) -> None:
    card = await stack.graphql(
        CARD,
        {
            "m": "nature-classification",
            "d": "# Nature\nClassifies photos of nature.",
            "i": "224x224 RGB",
            "o": "10 class scores",
        },
    )
    assert card["data"]["updateModelCard"]["description"].startswith("# Nature")
    await stack.graphql(TAG, {"m": "nature-classification", "t": "vision"})
    await stack.graphql(TAG, {"m": "nature-classification", "t": "vision"})  # again: no change
    await stack.graphql(TAG, {"m": "nature-classification", "t": "prod-ready"})
    await stack.graphql(TAG, {"m": "fraud-detector", "t": "tabular"})
    untagged = await stack.graphql(UNTAG, {"m": "nature-classification", "t": "prod-ready"})
    assert untagged["data"]["untagRegisteredModel"]["tags"] == ["vision"]

    by_tag = (await stack.graphql(MODELS, {"t": "vision"}))["data"]["registeredModels"]
    assert by_tag["items"] == [{"name": "nature-classification", "tags": ["vision"]}]
    by_name = (await stack.graphql(MODELS, {"s": "FRAUD"}))["data"]["registeredModels"]
    assert [m["name"] for m in by_name["items"]] == ["fraud-detector"]

    first = (await stack.graphql(MODELS, {"first": 1}))["data"]["registeredModels"]
    rest = (await stack.graphql(MODELS, {"first": 1, "after": first["endCursor"]}))["data"]["registeredModels"]
    assert [first["items"][0]["name"], rest["items"][0]["name"]] == ["fraud-detector", "nature-classification"]
    assert (first["hasNextPage"], rest["hasNextPage"]) == (True, False)

    missing = await stack.graphql(UNTAG, {"m": "fraud-detector", "t": "nope"})
    assert missing["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_an_unlinked_version_leaves_with_its_aliases_and_its_number_is_not_reused(stack: Stack) -> None:
    a, b, c = [await log(stack, content) for content in (b"a", b"b", b"c")]
    await stack.graphql(LINK, {"model": "m", "id": a, "aliases": ["production"]})
    await stack.graphql(LINK, {"model": "m", "id": b})

    await stack.graphql(UNLINK, {"m": "m", "id": a})
    linked = await stack.graphql(LINK, {"model": "m", "id": c})

    assert linked["data"]["linkArtifactVersion"]["version"] == "v2"
    model = await stack.graphql(
        '{ registeredModel(name: "m") { versions { items { version aliases } } '
        'alias(name: "production") { version } } }'
    )
    assert model["data"]["registeredModel"] == {
        "versions": {"items": [{"version": "v1", "aliases": []}, {"version": "v2", "aliases": []}]},
        "alias": None,
    }
    again = await stack.graphql(UNLINK, {"m": "m", "id": a})
    assert again["errors"][0]["extensions"]["code"] == "NOT_FOUND"

    # Newest first (W&B's order, the web UI's), a page at a time, and counted: the unlinked one is not.
    newest = """query($after: String) { registeredModel(name: "m") { versionCount
      versions(newestFirst: true, first: 1, after: $after) { items { version } endCursor hasNextPage } } }"""
    first = (await stack.graphql(newest))["data"]["registeredModel"]
    assert first["versionCount"] == 2
    assert first["versions"]["items"] == [{"version": "v2"}] and first["versions"]["hasNextPage"]
    second = (await stack.graphql(newest, {"after": first["versions"]["endCursor"]}))["data"]["registeredModel"]
    assert second["versions"] == {
        "items": [{"version": "v1"}],
        "endCursor": second["versions"]["endCursor"],
        "hasNextPage": False,
    }
    oldest_first = '{ registeredModel(name: "m") { versions(first: 1) { endCursor } } }'
    cursor = (await stack.graphql(oldest_first))["data"]["registeredModel"]["versions"]["endCursor"]
    crossed = await stack.graphql(newest, {"after": cursor})  # a cursor of the other order
    assert "is not one this API returned" in crossed["errors"][0]["message"]


async def test_the_audit_log_answers_who_did_what_filtered_and_page_by_page(stack: Stack) -> None:
    version = await log(stack, b"weights")
    await stack.graphql(LINK, {"model": "m", "id": version, "aliases": ["staging"]}, actor="user:bob")
    await stack.graphql(TAG, {"m": "m", "t": "vision"}, actor="user:carol")

    query = """query($actor: String, $action: String, $first: Int, $after: String) {
      auditLog(actor: $actor, action: $action, first: $first, after: $after) {
        items { action actor details } endCursor hasNextPage } }"""
    bobs = (await stack.graphql(query, {"actor": "user:bob"}))["data"]["auditLog"]["items"]
    assert [r["action"] for r in bobs] == ["registry.alias_added", "registry.version_linked"]
    aliases = (await stack.graphql(query, {"action": "registry.alias_added"}))["data"]["auditLog"]["items"]
    assert aliases == [
        {
            "action": "registry.alias_added",
            "actor": "user:bob",
            "details": {"registered_model": "m", "artifact_version_id": version, "alias": "staging"},
        }
    ]

    seen, after = [], None
    while True:
        page = (await stack.graphql(query, {"first": 2, "after": after}))["data"]["auditLog"]
        seen += [r["action"] for r in page["items"]]
        if not page["hasNextPage"]:
            break
        after = page["endCursor"]
    registry_actions = [a for a in seen if not a.startswith("identity.")]  # the test's API keys are issued as it goes
    assert registry_actions == [
        "registry.model_tagged",
        "registry.alias_added",
        "registry.version_linked",
        "artifacts.version_logged",
    ]


async def test_an_audit_filter_no_record_could_match_is_refused_saying_what_is_valid(stack: Stack) -> None:
    # Each answered an empty page, as if nobody had done it; the live subscription refused the same misspelt type.
    query = """query($actor: String, $action: String, $actions: [String!]) {
      auditLog(actor: $actor, action: $action, actions: $actions) { items { action } } }"""
    refusals = [
        ({"action": "registry.alias_addd"}, "unknown event type(s) registry.alias_addd; known: "),
        ({"actions": ["runs.run_started", "runs.run_finishd"]}, "unknown event type(s) runs.run_finishd; known: "),
        ({"actor": "alice"}, "actor 'alice' matches no record: write it as kind:id, the kind one of user, service"),
        ({"actor": "user:"}, "actor 'user:' matches no record"),
    ]
    for variables, message in refusals:
        refused = await stack.graphql(query, variables)
        assert refused["errors"][0]["extensions"]["code"] == "INVALID_INPUT", variables
        assert message in refused["errors"][0]["message"]
    assert (
        "registry.alias_added"
        in (await stack.graphql(query, {"action": "registry.alias_addd"}))["errors"][0]["message"]
    )

    # What the filter takes, for a form to offer.
    offered = (await stack.graphql("{ auditActions }"))["data"]["auditActions"]
    assert "registry.alias_added" in offered and offered == sorted(offered)

    await log(stack, b"weights")
    found = await stack.graphql(query, {"actor": "user:alice", "actions": ["artifacts.version_logged"]})
    assert [r["action"] for r in found["data"]["auditLog"]["items"]] == ["artifacts.version_logged"]


async def test_eight_clients_linking_and_moving_one_alias_at_once_leave_no_gaps_and_one_alias(stack: Stack) -> None:
    versions = [await log(stack, f"weights-{i}".encode()) for i in range(40)]
    alias_move = (
        'mutation($id: ID!) { addAlias(input: {registeredModel: "m", artifactVersionId: $id, alias: "production"}) { '
        "version } }"
    )

    async def client(n: int) -> None:
        for version in versions[n * 5 : n * 5 + 5]:
            await stack.graphql(LINK, {"model": "m", "id": version}, actor=f"user:client{n}")
            await stack.graphql(alias_move, {"id": version}, actor=f"user:client{n}")

    await asyncio.gather(*(client(n) for n in range(8)))

    model = (
        await stack.graphql(
            '{ registeredModel(name: "m") { versions(first: 100) { items { version aliases } } history(first: 500) { '
            "items { action details } } } }"
        )
    )["data"]["registeredModel"]
    assert [v["version"] for v in model["versions"]["items"]] == [f"v{i}" for i in range(40)]
    assert sum(v["aliases"] == ["production"] for v in model["versions"]["items"]) == 1
    moves = [
        h["details"]["artifact_version_id"] for h in model["history"]["items"] if h["action"] == "registry.alias_added"
    ]
    assert len(moves) == 40  # every move recorded, in log order: the newest is where the alias is
    holder = next(v for v in model["versions"]["items"] if v["aliases"])
    alias = await stack.graphql(
        '{ registeredModel(name: "m") { alias(name: "production") { artifactVersion { id } } } }'
    )
    assert alias["data"]["registeredModel"]["alias"]["artifactVersion"]["id"] == moves[0]
    assert holder["version"] in {v["version"] for v in model["versions"]["items"]}
    # The same history in pages of 7: every action once, newest first, as in one page.
    paged = """query($after: String) { registeredModel(name: "m") {
      history(first: 7, after: $after) { items { action details } endCursor hasNextPage } } }"""
    actions, after = [], None
    while True:
        page = (await stack.graphql(paged, {"after": after}))["data"]["registeredModel"]["history"]
        actions += page["items"]
        if not page["hasNextPage"]:
            break
        after = page["endCursor"]
    assert actions == model["history"]["items"]


VERSIONS = """query($alias: String, $tag: String, $metadata: GenericScalar) {
  registeredModel(name: "m") { versions(alias: $alias, tag: $tag, metadata: $metadata) { items { version } } }
}"""
TAG_VERSION = "mutation($r: String!, $t: String!) { tagArtifactVersion(input: {ref: $r, tag: $t}) { version tags } }"
UNTAG_VERSION = (
    "mutation($r: String!, $t: String!) { untagArtifactVersion(input: {ref: $r, tag: $t}) { version tags } }"
)


async def test_versions_are_found_by_the_alias_they_hold_their_tags_and_their_metadata(stack: Stack) -> None:
    for lr, content in [(0.1, b"a"), (0.01, b"b"), (0.01, b"c")]:
        logged = await stack.graphql(
            LOG_VERSION, {"input": version_input("classifier", content, metadata={"lr": lr, "arch": "resnet"})}
        )
        await stack.graphql(
            LINK, {"model": "m", "id": logged["data"]["logArtifactVersion"]["id"], "aliases": ["production"]}
        )
    tagged = await stack.graphql(TAG_VERSION, {"r": "acme/nature/classifier:v1", "t": "validated"})
    await stack.graphql(TAG_VERSION, {"r": "acme/nature/classifier:v2", "t": "validated"})
    untagged = await stack.graphql(UNTAG_VERSION, {"r": "acme/nature/classifier:latest", "t": "validated"})

    async def found(**filters: object) -> list[str]:
        answer = await stack.graphql(VERSIONS, filters)
        return [v["version"] for v in answer["data"]["registeredModel"]["versions"]["items"]]

    assert tagged["data"]["tagArtifactVersion"] == {"version": "v1", "tags": ["validated"]}
    assert untagged["data"]["untagArtifactVersion"] == {"version": "v2", "tags": []}
    assert await found(tag="validated") == ["v1"]
    assert await found(metadata={"lr": 0.01}) == ["v1", "v2"]
    assert await found(metadata={"lr": 0.01, "arch": "vit"}) == []
    assert await found(alias="production") == ["v2"]
    assert await found(alias="production", tag="validated") == []
    not_an_object = await stack.graphql(VERSIONS, {"metadata": [1, 2]})
    assert not_an_object["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


async def test_each_version_shows_the_code_that_pulls_exactly_it_down_and_the_code_works(
    stack: Stack, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    import modelreg

    assert stack.client is not None
    uploaded = await stack.client.put(
        f"/blobs/{digest_of(b'weights-0')}", data=b"weights-0", headers=await stack.auth()
    )
    assert uploaded.status in (200, 201, 204), await uploaded.text()
    first = await log(stack, b"weights-0")
    await log(stack, b"weights-1")
    await stack.graphql(LINK, {"model": "m", "id": first, "aliases": ["production"]})
    answer = await stack.graphql('{ registeredModel(name: "m") { alias(name: "production") { version usage } } }')
    usage = answer["data"]["registeredModel"]["alias"]["usage"]

    assert 'use_artifact("acme/nature/classifier:v0")' in usage and "m v0 = acme/nature/classifier:v0" in usage
    line = next(x for x in usage.splitlines() if x.startswith("path = modelreg.Api()"))
    api_call = line.removeprefix("path = ").replace(".download()", f".download({str(tmp_path / 'pulled')!r})")
    url = str(stack.client.make_url("/"))
    path = await asyncio.to_thread(
        eval, api_call.replace("modelreg.Api()", f"modelreg.Api(url={url!r})"), {"modelreg": modelreg}
    )
    assert (path / "weights.bin").read_bytes() == b"weights-0"
