"""Headers every answer of the API process carries, whatever route gives it.

The web UI keeps its API key in the browser, on this origin: any page of the origin that runs a stranger's
script, or that another site may frame, reaches it. So every answer says not to sniff its type, to be shown in
no other site's frame and to tell no other site where it came from. A file from /blobs is a download that runs
nothing even if a browser is sent to it. Pages with a policy of their own (the web UI, GraphiQL) keep it.
"""

from __future__ import annotations

from aiohttp import web

EVERY_ANSWER = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}
NO_FRAMES = "frame-ancestors 'none'"
A_DOWNLOAD = "sandbox; default-src 'none'; frame-ancestors 'none'"
# The web UI's files, whatever name the static route finds them by: `/ui/index.html/` served the page with no
# script policy, where a card that got past its sanitiser would have run its handlers. Its own routes (`/`,
# `/ui/index.html`) send the page's policy, which lets its import map run.
UI_FILES = "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"


async def _secured(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in EVERY_ANSWER.items():
        response.headers.setdefault(name, value)
    if request.path.startswith("/blobs/"):
        response.headers.setdefault("Content-Security-Policy", A_DOWNLOAD)
        response.headers.setdefault("Content-Disposition", "attachment")
    elif request.path.startswith("/ui/"):
        response.headers.setdefault("Content-Security-Policy", UI_FILES)
    else:
        response.headers.setdefault("Content-Security-Policy", NO_FRAMES)


def secure_every_answer(app: web.Application) -> None:
    # on_response_prepare, not a middleware: streamed answers (downloads, websockets) send their headers
    # before a middleware would see them.
    app.on_response_prepare.append(_secured)
