"""The local endpoint server over real HTTP: hot swaps under concurrent load, bad requests get 4xx."""

from __future__ import annotations

import threading
import time

import pytest

from tests.local_backend import LocalBackend, model_archive

FEATURES = 6


def _model_archive(seed: int) -> bytes:
    import numpy as np
    import xgboost as xgb

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(300, FEATURES)).astype("float32")
    y = (x[:, 0] + rng.normal(scale=0.3, size=300) > 0).astype("float32")
    return model_archive(
        xgb.train(
            {"objective": "binary:logistic", "max_depth": 3, "nthread": 1},
            xgb.DMatrix(x, label=y),
            num_boost_round=5 + seed,
        )
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from tests import aws_doubles

    backend = LocalBackend(tmp_path_factory.mktemp("endpoint-server"), aws_doubles.free_port()).start()
    yield backend
    backend.stop()


def _register(server: LocalBackend, name: str, archive: bytes) -> str:
    return server.register_model(name, archive)


def _wait_in_service(server: LocalBackend, endpoint: str, config: str | None = None, timeout: float = 60) -> dict:
    sagemaker = server.client("sagemaker")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = sagemaker.describe_endpoint(EndpointName=endpoint)
        if answer["EndpointStatus"] not in ("Creating", "Updating") and (
            config is None or answer.get("EndpointConfigName") == config or answer.get("FailureReason")
        ):
            return answer
        time.sleep(0.05)
    raise AssertionError(f"endpoint {endpoint} did not settle")


@pytest.fixture(scope="module")
def endpoint(server):
    first = _register(server, "model-a", _model_archive(1))
    server.client("sagemaker").create_endpoint(EndpointName="swap-test", EndpointConfigName=first)
    assert _wait_in_service(server, "swap-test", first)["EndpointStatus"] == "InService"
    return "swap-test"


ROW = ",".join(["0.5"] * FEATURES).encode()


def test_hot_swap_under_concurrent_load_fails_no_request(server, endpoint):
    configs = [_register(server, f"model-swap-{i}", _model_archive(10 + i)) for i in range(4)]
    known = {"model-a", *configs}
    failures: list[str] = []
    served: set[str] = set()
    stop = threading.Event()
    counts = [0] * 8

    def client(slot: int) -> None:
        deadline = time.monotonic() + 60  # bounded even if the swaps hang
        while not stop.is_set() and time.monotonic() < deadline:
            status, body, headers = server.invoke(endpoint, ROW)
            counts[slot] += 1
            if status != 200:
                failures.append(f"{status}: {body[:200]!r}")
                continue
            prediction = float(body.decode().strip())
            if not 0.0 <= prediction <= 1.0:
                failures.append(f"bad prediction {prediction}")
            served.add(headers["x-model-name"])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    try:
        sagemaker = server.client("sagemaker")
        for config in configs:
            sagemaker.update_endpoint(EndpointName=endpoint, EndpointConfigName=config)
            assert _wait_in_service(server, endpoint, config)["EndpointConfigName"] == config
            time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert sum(counts) > 50
    assert served <= known and configs[-1] in served


def test_a_model_that_cannot_load_leaves_the_old_one_serving(server, endpoint):
    current = server.client("sagemaker").describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
    broken = _register(server, "model-broken", b"this is not a tar archive")
    server.client("sagemaker").update_endpoint(EndpointName=endpoint, EndpointConfigName=broken)
    answer = _wait_in_service(server, endpoint, broken)
    assert answer["EndpointStatus"] == "InService"
    assert answer["EndpointConfigName"] == current
    assert "model-broken" in answer["FailureReason"]
    status, _, headers = server.invoke(endpoint, ROW)
    assert status == 200 and headers["x-model-name"] == current


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        (b"1,2,3", "text/csv", 400, "row 1: 3 columns, the model expects 6"),
        (b"1,2,3,4,5,abc", "text/csv", 400, "row 1, column 6: 'abc' is not a number"),
        (b"1,2,3,4,5,6\n1,2,3,4,5", "text/csv", 400, "row 2: 5 columns"),
        (b"1,2,3,4,5,nan", "text/csv", 400, "not a finite number"),
        (b"", "text/csv", 400, "empty body"),
        (b"   \n", "text/csv", 400, "empty body"),
        (b"\xff\xfe", "text/csv", 400, "not UTF-8"),
        (b'{"rows": [1]}', "application/json", 415, "send text/csv"),
        (b"1," * (7 * 1024 * 1024 // 2), "text/csv", 413, "exceeds"),
    ],
)
def test_malformed_requests_get_a_4xx_with_a_message(server, endpoint, body, content_type, status, message):
    got, answer, _ = server.invoke(endpoint, body, content_type)
    assert got == status
    assert message in answer.decode()
    assert server.invoke(endpoint, ROW)[0] == 200, "the server keeps serving after a bad request"


def test_unknown_endpoint_is_404(server):
    status, answer, _ = server.invoke("no-such-endpoint", ROW)
    assert status == 404 and b"no-such-endpoint" in answer


def test_state_survives_a_server_restart(server, endpoint, tmp_path_factory):
    config = server.client("sagemaker").describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
    server.stop()
    server.start()
    answer = _wait_in_service(server, endpoint)
    assert answer["EndpointConfigName"] == config
    status, _, headers = server.invoke(endpoint, ROW)
    assert status == 200 and headers["x-model-name"] == config


def test_a_large_batch_is_parsed_off_the_server_process_with_the_same_answers_and_errors(server, endpoint):
    """Bodies from 64 KB on go to the parser processes: the same predictions, the same row/column errors."""
    import numpy as np

    rows = np.random.default_rng(7).normal(size=(3000, FEATURES))
    lines = [",".join(f"{v:.6f}" for v in row) for row in rows]
    body = "\n".join(lines).encode()
    assert len(body) > 64 * 1024
    status, answer, headers = server.invoke(endpoint, body)
    assert status == 200, answer
    predictions = answer.decode().split()
    assert len(predictions) == len(lines)
    model = headers["x-model-name"]
    for index in (0, 1234, 2999):
        single_status, single, single_headers = server.invoke(endpoint, lines[index].encode())
        assert single_status == 200 and single_headers["x-model-name"] == model
        assert single.decode().strip() == predictions[index]
    broken = lines[:]
    broken[1499] = broken[1499].replace(",", ",1_0,", 1).rsplit(",", 1)[0]
    status, answer, _ = server.invoke(endpoint, "\n".join(broken).encode())
    assert status == 400 and "row 1500, column 2: '1_0' is not a number" in answer.decode()
    too_many = "\n".join(lines * 4).encode()
    status, answer, _ = server.invoke(endpoint, too_many)
    assert status == 413 and "more than 10000 rows" in answer.decode()
