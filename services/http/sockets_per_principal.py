"""How many websockets one principal holds open on this API process.

Websockets are left out of the in-flight bound (a subscription lasts for hours), and a socket's subscriptions are
bounded per principal (events/tail.py) but its mere being open was not: one key opened 1,000 sockets, each
acknowledged and kept, until the process's `--max-connections` were taken and every other caller got 503. Each
principal, installation admins too, holds at most `limit` acknowledged sockets; the next is closed at
connection_init with 4429 and a reason saying the limit and what to do.
"""

from __future__ import annotations

# As graphql-transport-ws closes a socket that sends connection_init twice: clients (graphql-ws) take it as final
# instead of reconnecting at once.
TOO_MANY_SOCKETS = 4429


class SocketsPerPrincipal:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._sockets: dict[str, set[object]] = {}

    def opened(self, principal: str, socket: object) -> str | None:
        """Counts `socket` as `principal`'s, or says why it may not be (a close reason: 123 bytes at most)."""
        held = self._sockets.setdefault(principal, set())
        if len(held) >= self.limit:
            return (
                f"this principal holds {len(held)} open sockets, the most allowed: close one "
                "(--max-sockets-per-principal)"
            )
        held.add(socket)
        return None

    def closed(self, principal: str, socket: object) -> None:
        held = self._sockets.get(principal, set())
        held.discard(socket)
        if not held:
            self._sockets.pop(principal, None)

    def held(self, principal: str) -> int:
        return len(self._sockets.get(principal, ()))
