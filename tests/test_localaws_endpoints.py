"""Endpoint lifecycle on a real local backend: races, broken artifacts, vanished artifacts, extraction limits.

Concurrent Create/Update/Delete on one endpoint name: exactly one wins, and afterwards
DescribeEndpoint names the model that actually answers. Any artifact that cannot load ends in
InService on the old config with a FailureReason (update) or Failed (create), never stuck.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import threading
import time

import pytest

from tests.local_backend import IMAGE, ROLE, LocalBackend, model_archive

FEATURES = 5
ROW = b"0.1,0.2,0.3,0.4,0.5"
PROVISION_SECONDS = 0.3


def _archive(seed: int) -> bytes:
    import numpy as np
    import xgboost as xgb

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, FEATURES)).astype("float32")
    booster = xgb.train({"objective": "binary:logistic", "nthread": 1}, xgb.DMatrix(x, label=x[:, 0] > 0), 2 + seed)
    return model_archive(booster)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from tests import aws_doubles

    env = {
        # A small extraction cap, so the decompression-bomb case stays small.
        "RETRAINING_LOCAL_MAX_MODEL_BYTES": str(8 * 1024 * 1024),
        # Deployments take this long, as SageMaker's do (minutes there): races get a window to happen in.
        "RETRAINING_LOCAL_ENDPOINT_PROVISION_SECONDS": str(PROVISION_SECONDS),
    }
    backend = LocalBackend(tmp_path_factory.mktemp("endpoints"), aws_doubles.free_port(), env).start()
    yield backend
    backend.stop()


@pytest.fixture(scope="module")
def configs(server) -> list[str]:
    return [server.register_model(f"cfg-{i}", _archive(i)) for i in range(4)]


def _describe(server: LocalBackend, name: str) -> dict | None:
    status, answer = server.aws("SageMaker.DescribeEndpoint", {"EndpointName": name})
    return answer if status == 200 else None


def _settled(server: LocalBackend, name: str, timeout: float = 60) -> dict | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = _describe(server, name)
        if answer is None or answer["EndpointStatus"] not in ("Creating", "Updating"):
            return answer
        time.sleep(0.05)
    raise AssertionError(f"endpoint {name} stuck in {answer['EndpointStatus']}")


def _serving(server: LocalBackend, name: str) -> str | None:
    status, _, headers = server.invoke(name, ROW)
    return headers.get("x-model-name") if status == 200 else None


def _race(calls) -> list:
    """Run the calls at the same moment from threads; their results in order."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _create(server: LocalBackend, name: str, config: str) -> None:
    server.aws("SageMaker.CreateEndpoint", {"EndpointName": name, "EndpointConfigName": config})
    settled = _settled(server, name)
    assert (settled["EndpointStatus"], settled["EndpointConfigName"]) == ("InService", config), settled


def test_concurrent_updates_exactly_one_is_accepted_and_describe_matches_the_serving_model(server, configs):
    _create(server, "race-update", configs[0])
    for round_ in range(3):
        targets = [configs[1 + (i + round_) % 3] for i in range(8)]
        results = _race(
            [
                lambda c=c: server.aws(
                    "SageMaker.UpdateEndpoint", {"EndpointName": "race-update", "EndpointConfigName": c}
                )
                for c in targets
            ]
        )
        accepted = [targets[i] for i, (status, _) in enumerate(results) if status == 200]
        refused = [answer for status, answer in results if status != 200]
        assert len(accepted) == 1, results
        assert all(a["__type"] == "ValidationException" and "in-progress" in a["message"] for a in refused)
        final = _settled(server, "race-update")
        assert final["EndpointStatus"] == "InService" and final["EndpointConfigName"] == accepted[0]
        assert _serving(server, "race-update") == accepted[0]


def test_concurrent_creates_of_one_name_exactly_one_wins(server, configs):
    results = _race(
        [
            lambda c=c: server.aws("SageMaker.CreateEndpoint", {"EndpointName": "race-create", "EndpointConfigName": c})
            for c in configs * 2
        ]
    )
    winners = [(configs * 2)[i] for i, (status, _) in enumerate(results) if status == 200]
    assert len(winners) == 1
    assert all("already existing endpoint" in a["message"] for s, a in results if s != 200)
    final = _settled(server, "race-create")
    assert final["EndpointConfigName"] == winners[0] == _serving(server, "race-create")


def test_concurrent_deletes_exactly_one_succeeds(server, configs):
    _create(server, "race-delete", configs[0])
    results = _race([lambda: server.aws("SageMaker.DeleteEndpoint", {"EndpointName": "race-delete"})] * 8)
    assert sorted(status for status, _ in results) == [200] + [400] * 7
    assert _describe(server, "race-delete") is None
    assert server.invoke("race-delete", ROW)[0] == 404


def test_delete_during_creating_wins_and_nothing_serves_afterwards(server, configs):
    for attempt in range(3):
        name = f"delete-early-{attempt}"
        assert (
            server.aws("SageMaker.CreateEndpoint", {"EndpointName": name, "EndpointConfigName": configs[1]})[0] == 200
        )
        assert _describe(server, name)["EndpointStatus"] == "Creating"
        assert server.aws("SageMaker.DeleteEndpoint", {"EndpointName": name})[0] == 200
        time.sleep(PROVISION_SECONDS + 0.7)  # past the deployment's load: it must not bring the endpoint back
        assert _describe(server, name) is None
        assert server.invoke(name, ROW)[0] == 404
        assert name not in server.raw("GET", "/ping")[1].decode()
    # The name is free again, for a deployment that completes.
    _create(server, "delete-early-0", configs[2])
    assert _serving(server, "delete-early-0") == configs[2]


def test_mixed_concurrent_creates_updates_and_deletes_leave_describe_and_serving_in_agreement(server, configs):
    for round_ in range(4):
        name = f"mixed-{round_}"
        if round_ % 2:
            _create(server, name, configs[0])
        calls = []
        for i in range(9):
            config = configs[1 + i % 3]
            if i % 3 == 0:
                calls.append(
                    lambda c=config, name=name: server.aws(
                        "SageMaker.CreateEndpoint", {"EndpointName": name, "EndpointConfigName": c}
                    )
                )
            elif i % 3 == 1:
                calls.append(
                    lambda c=config, name=name: server.aws(
                        "SageMaker.UpdateEndpoint", {"EndpointName": name, "EndpointConfigName": c}
                    )
                )
            else:
                calls.append(lambda name=name: server.aws("SageMaker.DeleteEndpoint", {"EndpointName": name}))
        results = _race(calls)
        assert all(status in (200, 400) for status, _ in results), results
        time.sleep(PROVISION_SECONDS + 0.5)
        final = _settled(server, name)
        if final is None:
            assert server.invoke(name, ROW)[0] == 404
        elif final["EndpointStatus"] == "InService":
            assert _serving(server, name) == final["EndpointConfigName"]
        else:
            assert final["EndpointStatus"] == "Failed" and server.invoke(name, ROW)[0] == 503
        _assert_stable_for(server, name, final)


def _assert_stable_for(server: LocalBackend, name: str, expected: dict | None, seconds: float = 1.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert _describe(server, name) == expected
        time.sleep(0.1)


def test_many_endpoints_created_at_once_on_one_config_all_serve(server, configs):
    names = [f"crowd-{i}" for i in range(16)]
    results = _race(
        [
            lambda n=n: server.aws("SageMaker.CreateEndpoint", {"EndpointName": n, "EndpointConfigName": configs[2]})
            for n in names
        ]
    )
    assert [status for status, _ in results] == [200] * len(names)
    for name in names:
        final = _settled(server, name)
        assert (final["EndpointStatus"], final.get("FailureReason")) == ("InService", None), final
        assert _serving(server, name) == configs[2]
    assert not list((server.data_dir / "models").glob("*")), "extraction folders are removed after each load"


def _truncated_gzip() -> bytes:
    return _archive(1)[:-40]


def _random_bytes() -> bytes:
    return bytes(range(256)) * 40


def _gzip_of(raw: bytes) -> bytes:
    return gzip.compress(raw)


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def _member(name: str, data: bytes = b"x", kind: bytes = tarfile.REGTYPE, link: str = "") -> tuple:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data if kind == tarfile.REGTYPE else None


BROKEN = {
    "truncated-gzip": (_truncated_gzip, "cannot extract"),
    "random-bytes": (_random_bytes, "cannot extract"),
    "gzip-of-garbage": (lambda: _gzip_of(b"\xff\xfe" * 5000), "cannot extract"),
    "no-model-file": (lambda: _tar([_member("other")]), "holds no xgboost-model"),
    "garbage-model": (lambda: _tar([_member("xgboost-model", b"\x00garbage" * 100)]), "cannot load the model"),
    "absolute-member": (lambda: _tar([_member("/etc/xgboost-model")]), "absolute or '..'"),
    "dotdot-member": (lambda: _tar([_member("../xgboost-model")]), "absolute or '..'"),
    "symlink-member": (lambda: _tar([_member("xgboost-model", kind=tarfile.SYMTYPE, link="/etc/passwd")]), "link"),
    "hardlink-member": (lambda: _tar([_member("xgboost-model", kind=tarfile.LNKTYPE, link="/etc/passwd")]), "link"),
    "too-many-members": (lambda: _tar([_member(f"f{i}") for i in range(101)]), "more than 100 members"),
    "bomb": (lambda: _tar([_member("xgboost-model", b"\0" * (9 * 1024 * 1024))]), "expands to more than"),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_an_update_to_an_artifact_that_cannot_load_keeps_the_old_model_with_a_reason(server, configs, kind):
    make, reason = BROKEN[kind]
    name = f"broken-{kind}"
    _create(server, name, configs[0])
    server.register_model(f"bad-{kind}", make())
    assert server.aws("SageMaker.UpdateEndpoint", {"EndpointName": name, "EndpointConfigName": f"bad-{kind}"})[0] == 200
    final = _settled(server, name)
    assert final["EndpointStatus"] == "InService" and final["EndpointConfigName"] == configs[0]
    assert reason in final["FailureReason"] and f"bad-{kind}" in final["FailureReason"]
    assert _serving(server, name) == configs[0]
    # Not stuck: the next update is accepted and succeeds.
    assert server.aws("SageMaker.UpdateEndpoint", {"EndpointName": name, "EndpointConfigName": configs[1]})[0] == 200
    after = _settled(server, name)
    assert after["EndpointConfigName"] == configs[1] and "FailureReason" not in after
    # And a create on it fails cleanly.
    assert (
        server.aws("SageMaker.CreateEndpoint", {"EndpointName": f"{name}-new", "EndpointConfigName": f"bad-{kind}"})[0]
        == 200
    )
    created = _settled(server, f"{name}-new")
    assert created["EndpointStatus"] == "Failed" and reason in created["FailureReason"]
    assert server.invoke(f"{name}-new", ROW)[0] == 503


def test_an_artifact_that_vanished_makes_the_endpoint_failed_after_a_restart_not_in_service(tmp_path):
    from tests import aws_doubles

    backend = LocalBackend(tmp_path, aws_doubles.free_port()).start()
    try:
        backend.register_model("vanishing", _archive(2))
        backend.aws("SageMaker.CreateEndpoint", {"EndpointName": "vanish", "EndpointConfigName": "vanishing"})
        assert _settled(backend, "vanish")["EndpointStatus"] == "InService"
        backend.s3_path("s3://models/vanishing/model.tar.gz").unlink()
        assert _serving(backend, "vanish") == "vanishing", "the loaded model keeps serving while the backend runs"
        backend.stop()
        backend.start()
        answer = _describe(backend, "vanish")
        assert answer["EndpointStatus"] == "Failed"
        assert "does not exist" in answer["FailureReason"]
        assert backend.invoke("vanish", ROW)[0] == 503
    finally:
        backend.stop()


def test_create_model_with_non_string_fields_is_refused(server):
    for container in ({"Image": 1, "ModelDataUrl": "s3://m/x"}, {"Image": IMAGE, "ModelDataUrl": {"x": 1}}):
        status, answer = server.aws(
            "SageMaker.CreateModel", {"ModelName": "typed-x", "ExecutionRoleArn": ROLE, "PrimaryContainer": container}
        )
        assert status == 400 and answer["__type"] == "ValidationException"


def test_swaps_under_load_fail_no_request_and_describe_always_names_a_served_model(server, configs):
    _create(server, "swap-load", configs[0])
    failures: list[str] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            status, body, headers = server.invoke("swap-load", ROW)
            if status != 200:
                failures.append(f"{status} {body[:100]!r}")

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for config in configs[1:] + configs[:1]:
            assert (
                server.aws("SageMaker.UpdateEndpoint", {"EndpointName": "swap-load", "EndpointConfigName": config})[0]
                == 200
            )
            final = _settled(server, "swap-load")
            assert final["EndpointConfigName"] == config == _serving(server, "swap-load")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
