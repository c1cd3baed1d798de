"""What analysis notebooks call on the public API beyond runs and artifacts: every run's history at once, who the
key belongs to, and the deletions modelreg has no counterpart for, refused saying what to use instead."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from modelreg.api import Api, ArtifactCollection, RegisteredModel, RegistryCollection
from modelreg.errors import InvalidInput, NotSupported
from modelreg.public_run import PublicRun

HISTORIES = {"r1": {"acc": ([0, 5], [0.5, 0.7])}, "r2": {"acc": ([0], [0.9])}}


def stored_run(run_id: str) -> dict[str, Any]:
    return {
        "entity": "acme",
        "project": "nature",
        "runId": run_id,
        "state": "FINISHED",
        "config": {},
        "summary": {},
        "startedAt": "2026-12-01T00:00:00+00:00",
        "startedBy": "user:alice",
    }


class Server:
    """A Transport whose project acme/nature holds runs r1 and r2, whose key is alice's, and whose installation
    knows the principals user:admin, user:admins and service:ci."""

    url = "http://registry.invalid"
    principals = [{"id": "user:admin", "role": "ADMIN"}, {"id": "user:admins", "role": None}]

    def graphql(self, query: str, variables: dict[str, Any] | None = None, *, compress: bool = False) -> Any:
        variables = variables or {}
        if "viewer" in query:
            return {"viewer": {"id": "user:alice", "role": "MEMBER"}}
        if "principals" in query:
            found = [p for p in self.principals if variables["search"] in p["id"]]
            return {"principals": {"items": found, "endCursor": None, "hasNextPage": False}}
        if "history(" in query:
            curves = HISTORIES[variables["r"]]
            return {"run": {"history": [{"key": k, "steps": s, "values": v} for k, (s, v) in curves.items()]}}
        if "runs(" in query:
            items = [stored_run(run_id) for run_id in HISTORIES]
            return {"runs": {"items": items, "endCursor": None, "hasNextPage": False}}
        raise AssertionError(f"not asked of this server: {query}")


def test_a_notebook_reads_every_runs_history_at_once_and_who_its_key_belongs_to() -> None:
    api = Api(transport=Server())  # type: ignore[arg-type]
    runs = api.runs("acme/nature")
    assert runs.histories(samples=10, keys=["acc"], format="default") == [
        {"acc": 0.5, "_step": 0, "run_id": "r1"},
        {"acc": 0.7, "_step": 5, "run_id": "r1"},
        {"acc": 0.9, "_step": 0, "run_id": "r2"},
    ]
    if importlib.util.find_spec("pandas") is not None:  # not a dependency of ours: the `bench` extra brings it
        assert runs.histories(format="pandas").shape == (3, 3)
    else:
        with pytest.raises(InvalidInput, match=r"histories\(format='pandas'\) needs pandas: pip install pandas"):
            runs.histories(format="pandas")
    with pytest.raises(InvalidInput, match="give 'default', 'pandas' or 'polars'"):
        runs.histories(format="csv")

    assert (api.viewer.username, api.viewer.entity, api.viewer.admin) == ("alice", "alice", False)
    admin = api.user("admin")
    assert admin is not None and (admin.username, admin.admin) == ("admin", True)  # not user:admins, also found
    assert api.user("nobody") is None


def test_deleting_a_run_or_a_whole_collection_is_refused_saying_what_to_use_instead() -> None:
    # They failed with a bare AttributeError, which says neither that modelreg lacks them nor what to do.
    server = Server()
    api = Api(transport=server)  # type: ignore[arg-type]
    model = RegisteredModel("fraud", None, None, None, [], [])
    refusals = [
        (lambda: PublicRun(server, stored_run("r1")).delete(), '"$nin": ["deleted"]'),  # type: ignore[arg-type]
        (lambda: ArtifactCollection("acme", "nature", "raw", "dataset", "", 1, api).delete(), "v.delete("),
        (lambda: RegistryCollection("fraud", "model", model, api).delete(), "v.unlink()"),
    ]
    for delete, instead in refusals:
        with pytest.raises(NotSupported, match="not deleted") as refused:
            delete()
        assert instead in refused.value.message and isinstance(refused.value, NotImplementedError)
