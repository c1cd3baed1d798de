"""The web UI keeps its API key in the browser, on the API's origin: no page of that origin runs a stranger's
script, none is shown in another site's frame, and a stored file opened in a browser is a download."""

from __future__ import annotations

import hashlib
import json
import re

from support.stack import Stack

from modelreg.services.http.web_ui import UI_DIR, page_policy

SCRIPT = "</script><script>document.title=localStorage.getItem('modelreg.apiKey')</script>"
HTML = {"Accept": "text/html"}


async def test_a_graphiql_link_holding_a_script_runs_none_of_it(stack: Stack) -> None:
    # A link anyone can send (or write into a model card): GraphiQL filled in from its query, variables and
    # operation name. Its values are JSON in the page's script, and `</script>` ended that script.
    assert stack.client is not None
    for parameter, value in (("query", SCRIPT), ("variables", json.dumps({"x": SCRIPT})), ("operationName", SCRIPT)):
        page = await stack.client.get("/graphql", params={parameter: value}, headers=HTML)
        body = await page.text()
        assert page.status == 200 and "graphiql" in body.lower()
        assert "<script>document.title" not in body, parameter
        if parameter != "operationName":  # a link never names the operation to run: the page leaves it out
            assert "\\u003c/script\\u003e\\u003cscript\\u003edocument.title" in body.replace("\\\\", "\\"), parameter
        else:
            assert "document.title" not in body
        policy = page.headers["Content-Security-Policy"]
        scripts = policy.split("script-src", 1)[1].split(";", 1)[0]
        assert "unsafe-inline" not in scripts and "'sha256-" in scripts
        assert "frame-ancestors 'none'" in policy


async def test_every_answer_is_shown_in_no_other_sites_frame_and_never_sniffed(stack: Stack) -> None:
    assert stack.client is not None
    answers = {
        "/healthz": await stack.client.get("/healthz"),
        "/graphql": await stack.client.post("/graphql", json={"query": "{ __typename }"}),
        "/ui/index.html": await stack.client.get("/ui/index.html"),
        "a module": await stack.client.get("/ui/app.js"),
        "a missing page": await stack.client.get("/nowhere"),
    }
    for name, answer in answers.items():
        assert answer.headers["X-Frame-Options"] == "DENY", name
        assert answer.headers["X-Content-Type-Options"] == "nosniff", name
        assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"], name
    # The page under its file's name has the page's own policy, as at /.
    index = (UI_DIR / "index.html").read_text()
    assert answers["/ui/index.html"].headers["Content-Security-Policy"] == page_policy(index)
    # Under names the static route also finds it by, it runs no script but the UI's own files: it was served with
    # no script policy at all.
    for other_name in ("/ui/index.html/", "/ui/vendor%2f..%2findex.html"):
        page = await stack.client.get(other_name)
        policy = page.headers["Content-Security-Policy"]
        assert page.status == 200 and "script-src 'self'" in policy and "unsafe-inline" not in policy, (
            other_name,
            page.status,
            policy,
        )


async def test_a_stored_file_opened_in_a_browser_is_a_download_that_runs_nothing(stack: Stack) -> None:
    assert stack.client is not None
    auth = await stack.auth()
    page = b"<html><script>alert(document.domain)</script></html>"
    blob = "/blobs/sha256:" + hashlib.sha256(page).hexdigest()
    assert (await stack.client.put(blob, data=page, headers=auth)).status == 201

    served = await stack.client.get(blob, headers=auth)

    assert await served.read() == page
    assert served.headers["Content-Disposition"] == "attachment"
    assert re.match(r"sandbox; default-src 'none'", served.headers["Content-Security-Policy"])
    assert served.headers["X-Content-Type-Options"] == "nosniff"
