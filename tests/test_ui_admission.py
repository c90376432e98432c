"""The view's admission gate (``stepfunctions_ui.admission``) over real HTTP semantics (httpx's ASGI transport).

The gate sits in front of Airflow's router in the API server (a plugin root middleware, checked on
Airflow's own app in ``test_ui_plugin_api``); here it wraps a small ASGI app whose requests hold
their place until the test lets them go, so what is inside at once can be counted exactly.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from stepfunctions_ui import admission

PREFIX = "/stepfunctions"


class HeldApp:
    """Each request under the prefix waits for the test's release; ``?aside=1`` waits stepped aside."""

    def __init__(self) -> None:
        self.inside = 0
        self.most_inside = 0
        self.entered: list[str] = []
        self.release = asyncio.Event()

    async def __call__(self, scope, receive, send) -> None:
        self.entered.append(scope["path"])
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        try:
            if b"aside=1" in scope.get("query_string", b""):
                self.inside -= 1  # stepped aside: not worked on while it waits
                try:
                    async with admission.stepped_aside():
                        await self.release.wait()
                finally:
                    self.inside += 1  # counted out again by the outer finally
                self.most_inside = max(self.most_inside, self.inside)
            elif scope["path"].startswith(PREFIX + "/"):
                await self.release.wait()
        finally:
            self.inside -= 1
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": scope["path"].encode()})


def client(app: HeldApp) -> httpx.AsyncClient:
    gated = admission.AdmissionMiddleware(app, prefix=PREFIX)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=gated), base_url="http://127.0.0.1", timeout=30)


async def until(condition, seconds: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def run(coroutine) -> None:
    asyncio.run(coroutine)


def test_at_most_admitted_view_requests_are_worked_on_at_once_and_all_are_answered_in_order():
    async def scenario() -> None:
        app = HeldApp()
        async with client(app) as http:
            requests = [asyncio.create_task(http.get(f"{PREFIX}/dags/d{i}")) for i in range(20)]
            await until(lambda: app.inside == admission.ADMITTED)
            await asyncio.sleep(0.2)
            assert app.inside == admission.ADMITTED and len(app.entered) == admission.ADMITTED
            app.release.set()
            answers = await asyncio.gather(*requests)
        assert [a.status_code for a in answers] == [200] * 20
        assert app.most_inside == admission.ADMITTED
        assert app.entered == [f"{PREFIX}/dags/d{i}" for i in range(20)]  # first come, first served

    run(scenario())


def test_airflow_routes_and_other_paths_pass_straight_while_the_view_is_full():
    async def scenario() -> None:
        app = HeldApp()
        async with client(app) as http:
            held = [asyncio.create_task(http.get(f"{PREFIX}/dags/d{i}")) for i in range(10)]
            await until(lambda: app.inside == admission.ADMITTED)
            for path in ("/api/v2/version", "/stepfunctionsX/not-ours", "/ui/dags"):
                answer = await asyncio.wait_for(http.get(path), 5)
                assert answer.status_code == 200 and answer.text == path
            app.release.set()
            await asyncio.gather(*held)

    run(scenario())


def test_a_request_waiting_stepped_aside_gives_its_place_to_the_next_and_still_gets_its_answer():
    async def scenario() -> None:
        app = HeldApp()
        async with client(app) as http:
            # Every place taken by requests that wait stepped aside (as for a cold build): new ones still get in.
            building = [asyncio.create_task(http.get(f"{PREFIX}/dags/cold{i}?aside=1")) for i in range(5)]
            await until(lambda: len(app.entered) == 5)
            quick = asyncio.create_task(http.get(f"{PREFIX}/dags/warm"))
            await until(lambda: len(app.entered) == 6)
            assert app.inside == 1  # the warm one, being worked on while five wait aside
            app.release.set()
            answers = await asyncio.gather(quick, *building)
        assert [a.status_code for a in answers] == [200] * 6
        assert app.most_inside <= admission.ADMITTED  # back from the wait, they queued again

    run(scenario())


def test_past_the_queue_bound_or_the_wait_bound_the_answer_is_503_with_retry_after(monkeypatch):
    monkeypatch.setattr(admission, "QUEUE_LIMIT", 3)

    async def scenario() -> None:
        app = HeldApp()
        async with client(app) as http:
            held = [asyncio.create_task(http.get(f"{PREFIX}/dags/d{i}")) for i in range(admission.ADMITTED + 3)]
            await until(lambda: admission.GATE.waiting == 3)
            turned_away = await asyncio.wait_for(http.get(f"{PREFIX}/dags/one-too-many"), 5)
            assert turned_away.status_code == 503
            assert turned_away.headers["retry-after"] == str(admission.RETRY_AFTER_SECONDS)
            assert "3 requests of the Step Functions view are already waiting" in json.loads(turned_away.text)["detail"]
            monkeypatch.setattr(admission, "QUEUE_LIMIT", 1000)
            monkeypatch.setattr(admission, "WAIT_SECONDS", 0.3)
            waited_too_long = await asyncio.wait_for(http.get(f"{PREFIX}/dags/late"), 5)
            assert waited_too_long.status_code == 503 and "within 0.3 s" in waited_too_long.json()["detail"]
            # A browser asking for the page gets a page that says so and reloads itself.
            page = await asyncio.wait_for(http.get(f"{PREFIX}/dags/late", headers={"Accept": "text/html"}), 5)
            assert page.status_code == 503 and page.headers["content-type"].startswith("text/html")
            assert (
                "busy" in page.text and f'http-equiv="refresh" content="{admission.RETRY_AFTER_SECONDS}"' in page.text
            )
            app.release.set()
            assert [a.status_code for a in await asyncio.gather(*held)] == [200] * (admission.ADMITTED + 3)
        assert f"{PREFIX}/dags/one-too-many" not in app.entered and f"{PREFIX}/dags/late" not in app.entered

    run(scenario())


def test_requests_abandoned_while_waiting_or_stepped_aside_give_back_no_place_they_did_not_hold():
    async def scenario() -> None:
        app = HeldApp()
        async with client(app) as http:
            held = [asyncio.create_task(http.get(f"{PREFIX}/dags/held{i}")) for i in range(admission.ADMITTED)]
            await until(lambda: app.inside == admission.ADMITTED)
            queued = [asyncio.create_task(http.get(f"{PREFIX}/dags/queued{i}")) for i in range(5)]
            await until(lambda: admission.GATE.waiting == 5)
            for task in queued:  # clients that went away while in line
                task.cancel()
            await asyncio.gather(*queued, return_exceptions=True)
            assert admission.GATE.waiting == 0
            app.release.set()
            await asyncio.gather(*held)

            # A client that goes away while its request waits stepped aside (a cold build) takes no place again:
            # it ends at once, although every place is taken meanwhile.
            app.release = asyncio.Event()
            aside = asyncio.create_task(http.get(f"{PREFIX}/dags/cold?aside=1"))
            await until(lambda: f"{PREFIX}/dags/cold" in app.entered)
            held = [asyncio.create_task(http.get(f"{PREFIX}/dags/busy{i}")) for i in range(admission.ADMITTED)]
            await until(lambda: app.inside == admission.ADMITTED)
            aside.cancel()
            done, _ = await asyncio.wait([aside], timeout=2)
            assert done == {aside}
            app.release.set()
            await asyncio.gather(*held)

            # Still exactly ADMITTED places: no more, no fewer.
            app.release = asyncio.Event()
            app.most_inside = 0
            again = [asyncio.create_task(http.get(f"{PREFIX}/dags/again{i}")) for i in range(10)]
            await until(lambda: app.inside == admission.ADMITTED)
            await asyncio.sleep(0.2)
            assert app.inside == admission.ADMITTED
            app.release.set()
            assert [a.status_code for a in await asyncio.gather(*again)] == [200] * 10
            assert app.most_inside == admission.ADMITTED

    run(scenario())


@pytest.mark.parametrize("root_path", ["", "/airflow"])
def test_the_prefix_is_matched_below_the_api_servers_root_path(root_path):
    gate = admission.AdmissionMiddleware(lambda *a: None, prefix=PREFIX)
    for path, ours in (
        (f"{PREFIX}", True),
        (f"{PREFIX}/", True),
        (f"{PREFIX}/dags/x", True),
        (f"{PREFIX}x/dags", False),
        ("/api/v2/dags", False),
    ):
        assert gate._ours({"type": "http", "path": root_path + path, "root_path": root_path}) is ours, path
    assert gate._ours({"type": "websocket", "path": PREFIX, "root_path": ""}) is False
