"""Admission: how many of the view's requests the API server works on at once.

The API server answers every route on one event loop. A burst of view requests, each a few
milliseconds of routing, authentication, a DB look-up and rendering, would otherwise all be in
flight together, and every step of an Airflow request (``/api/v2/version``, the UI's own calls)
would queue behind a step of each of them. ``AdmissionMiddleware`` sits in front of Airflow's router
(a plugin root middleware) and lets ``ADMITTED`` view requests in at a time; the others wait
their turn, first come first served, without a thread, a DB session or a place in the loop's
ready queue.

A request that waits for something slow (a cold build, AWS) steps aside (``stepped_aside``):
its place goes to the next request and it queues again when its wait is over, so a slow build
never holds a place. At most ``QUEUE_LIMIT`` requests wait, each at most ``WAIT_SECONDS``;
past either bound the answer is 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import contextvars
import html
import json
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

ADMITTED = 2  # view requests worked on at once (the work is CPU on one loop and two threads)
QUEUE_LIMIT = 1000  # requests waiting for a place; more are turned away at once
WAIT_SECONDS = 15.0  # the longest a request waits for a place
RETRY_AFTER_SECONDS = 5


class Busy(Exception):
    """No place for the request within the bounds."""


class _Gate:
    """A FIFO semaphore per event loop (a loop's primitives cannot be shared with another loop)."""

    def __init__(self) -> None:
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        self.waiting = 0

    def semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        semaphore = self._per_loop.get(loop)
        if semaphore is None:
            semaphore = self._per_loop[loop] = asyncio.Semaphore(ADMITTED)
        return semaphore

    async def enter(self) -> asyncio.Semaphore:
        semaphore = self.semaphore()
        if semaphore.locked():
            if self.waiting >= QUEUE_LIMIT:
                raise Busy(f"{self.waiting} requests of the Step Functions view are already waiting")
            self.waiting += 1
            try:
                # asyncio.timeout cancels acquire() itself, which gives back a place it was handed meanwhile.
                async with asyncio.timeout(WAIT_SECONDS):
                    await semaphore.acquire()
            except TimeoutError:
                raise Busy(f"no place for this request within {WAIT_SECONDS:g} s") from None
            finally:
                self.waiting -= 1
        else:
            await semaphore.acquire()
        return semaphore


GATE = _Gate()


class _Place:
    """The place a request holds; ``None`` in ``semaphore`` while it has stepped aside."""

    def __init__(self, semaphore: asyncio.Semaphore) -> None:
        self.semaphore: asyncio.Semaphore | None = semaphore

    def release(self) -> None:
        if self.semaphore is not None:
            self.semaphore.release()
            self.semaphore = None


_place: contextvars.ContextVar[_Place | None] = contextvars.ContextVar("stepfunctions_view_place", default=None)


@asynccontextmanager
async def stepped_aside() -> AsyncIterator[None]:
    """Give the request's place to the next one while the block waits; queue again after it."""
    place = _place.get()
    if place is None or place.semaphore is None:  # not admitted through the gate (e.g. a test's own app)
        yield
        return
    place.release()
    client_gone = False
    try:
        yield
    except asyncio.CancelledError:
        client_gone = True  # nothing more to work on: no place to take again
        raise
    finally:
        if not client_gone:
            # Back in line (without the waiting bound: the request was admitted once and its answer is near).
            # The place is recorded only once acquired: a request cancelled in line gives back nothing.
            semaphore = GATE.semaphore()
            await semaphore.acquire()
            place.semaphore = semaphore


async def _busy(scope: Any, send: Any, reason: str) -> None:
    """503 with Retry-After: JSON, or for a browser asking for a page, a page that reloads itself."""
    message = f"The Step Functions view is busy ({reason}); try again shortly."
    accept = dict(scope.get("headers") or []).get(b"accept", b"")
    if b"text/html" in accept:
        content_type = b"text/html; charset=utf-8"
        body = (
            f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="refresh" content="{RETRY_AFTER_SECONDS}"><title>Busy</title></head>'
            f"<body><p>{html.escape(message)} This page reloads in {RETRY_AFTER_SECONDS} s.</p></body></html>"
        ).encode()
    else:
        content_type, body = b"application/json", json.dumps({"detail": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class AdmissionMiddleware:
    """A root ASGI middleware: requests under ``prefix`` pass one of ``ADMITTED`` places; others pass straight."""

    def __init__(self, app: Any, prefix: str) -> None:
        self.app = app
        self.prefix = prefix.rstrip("/")

    def _ours(self, scope: Any) -> bool:
        if scope["type"] != "http":
            return False
        path = scope.get("path", "")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        return path == self.prefix or path.startswith(self.prefix + "/")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if not self._ours(scope):
            await self.app(scope, receive, send)
            return
        try:
            semaphore = await GATE.enter()
        except Busy as err:
            await _busy(scope, send, str(err))
            return
        place = _Place(semaphore)
        token = _place.set(place)
        try:
            await self.app(scope, receive, send)
        finally:
            _place.reset(token)
            place.release()
