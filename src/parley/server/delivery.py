"""Getting a published frame to the members of its conversation on this node.

The bus calls :meth:`Delivery.deliver` for every frame, from any node. A room's frame goes to
each local member's write function; a private one to the (one or two) principals online here,
or into the hold of one that is logging in. Nothing here awaits, and nothing encodes per
member: every member gets the same bytes.

One member cannot stop a delivery: a write that raises cuts that member alone. Delivery is not
re-entrant: a frame published while one is being delivered (a member cut off mid-loop
publishes its ``left``) waits until every member has the one before.
"""

from __future__ import annotations

import collections
import contextlib
import logging
from collections.abc import Callable, Iterator

from parley.server.conversations import conversation_principals, is_private
from parley.server.metrics import ServerMetrics
from parley.server.rooms import Peer, Write

# Logged under the hub's name, as before it was split: log lines and filters stay the same.
log = logging.getLogger("parley.server.hub")

# A frame of a private conversation held for a principal logging in: (conversation, frame).
Held = list[tuple[str, bytes]]


class Delivery:
    """Fan-out on one node.

    ``members`` gives a live room's members and their writes (None when the conversation is
    no live room here), ``user_of`` who is online under a principal id, and ``logout`` takes
    offline a member that could not even be disconnected. Writes are counted in ``metrics``.
    """

    def __init__(
        self,
        members: Callable[[str], dict[Peer, Write] | None],
        user_of: Callable[[str], Peer | None],
        logout: Callable[[Peer], None],
        metrics: ServerMetrics,
    ) -> None:
        self._members = members
        self._user_of = user_of
        self._logout = logout
        self._metrics = metrics
        # Principal -> private frames held for a user logging in, while it reads what it missed.
        self._arriving: dict[str, Held] = {}
        # Frames published while a delivery is under way wait here.
        self._deferred: collections.deque[tuple[str, bytes]] = collections.deque()
        self._delivering = False

    def deliver(self, conversation: str, frame: bytes) -> None:
        if self._delivering:
            self._deferred.append((conversation, frame))
            return
        self._delivering = True
        try:
            self._deliver_now(conversation, frame)
            while self._deferred:
                self._deliver_now(*self._deferred.popleft())
        finally:
            self._delivering = False

    @contextlib.contextmanager
    def hold(self, principal: str) -> Iterator[Held]:
        """Keep the private frames for ``principal`` (not online yet) in the list yielded,
        until the block ends.
        """
        held: Held = []
        self._arriving[principal] = held
        try:
            yield held
        finally:
            del self._arriving[principal]

    def arriving(self, principal: str) -> bool:
        """``principal`` is logging in here: its private frames are held for it."""
        return principal in self._arriving

    def _deliver_now(self, conversation: str, frame: bytes) -> None:
        members = self._members(conversation)
        if members is not None:
            # A copy: a write can push a slow member over its limit, and cutting it off
            # removes it from the room while this loop runs. O(members), far below the writes.
            self._metrics.deliveries.inc(len(members))
            for peer, write in list(members.items()):
                try:
                    write(frame)
                except Exception as exc:
                    self._write_failed(peer, exc)
            return
        if is_private(conversation):
            for principal in conversation_principals(conversation):
                user = self._user_of(principal)
                if user is not None:
                    self._metrics.deliveries.inc()
                    try:
                        user.write(frame)
                    except Exception as exc:
                        self._write_failed(user, exc)
                elif principal in self._arriving:
                    self._arriving[principal].append((conversation, frame))

    def _write_failed(self, peer: Peer, exc: Exception) -> None:
        """One member's write raised: log it once and cut that member, not the delivery."""
        log.error("Bug: writing to %s failed; disconnecting it", peer.nick, exc_info=exc)
        try:
            peer.abort()
        except Exception:
            log.exception("Bug: disconnecting %s failed", peer.nick)
            self._logout(peer)
