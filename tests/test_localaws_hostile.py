"""Hostile requests against a real local backend process over HTTP.

A Hypothesis corpus (any JSON body, any field type, any name, any URI) and the issue's specific
attacks. Whatever arrives: never a 5xx, an AWS-shaped error naming the field, no file touched
outside the data directory (a sentinel tree beside it, reachable through a symlink inside it,
is compared before and after), no record left in a non-terminal state.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
import urllib.parse
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.local_backend import IMAGE, ROLE, LocalBackend, model_archive

FEATURES = 4
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
REPO = Path(__file__).resolve().parents[1]


def _snapshot(root: Path) -> dict[str, tuple]:
    """Every path under ``root`` with its type, size, mtime and content hash (symlinks not followed)."""
    seen = {}
    for path in sorted(root.rglob("*")):
        stat = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() and not path.is_symlink() else ""
        seen[str(path.relative_to(root))] = (path.is_symlink(), path.is_dir(), stat.st_size, stat.st_mtime_ns, digest)
    return seen


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """``<tmp>/data`` (the backend's) beside ``<tmp>/outside`` (the sentinel tree), and the running backend."""
    from tests import aws_doubles

    root = tmp_path_factory.mktemp("hostile")
    outside = root / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "secret.csv").write_text("4242,1,2,3,4\n")
    (outside / "deep" / "evil.py").write_text(f"open({str(outside / 'PWNED')!r}, 'w').write('ran')\n")
    (outside / "model.tar.gz").write_bytes(b"not a model")
    data = root / "data"
    (data / "s3").mkdir(parents=True)
    # A bucket folder that is a symlink out of the data directory: resolved paths must still be refused.
    (data / "s3" / "linked-bucket").symlink_to(outside, target_is_directory=True)
    (data / "s3" / "good-bucket").mkdir()
    (data / "s3" / "good-bucket" / "escape").symlink_to(outside / "secret.csv")
    repo_glue = _snapshot(REPO / "glue")
    before = _snapshot(outside)
    backend = LocalBackend(data, aws_doubles.free_port()).start()
    yield backend, root, outside, before
    backend.stop()
    assert _snapshot(outside) == before, "a file outside the data directory was touched"
    assert not (outside / "PWNED").exists()
    assert _snapshot(REPO / "glue") == repo_glue
    assert sorted(p.name for p in root.iterdir()) == ["data", "outside"]


@pytest.fixture(scope="module")
def server(world) -> LocalBackend:
    return world[0]


@pytest.fixture(scope="module")
def endpoint(server) -> str:
    import numpy as np
    import xgboost as xgb

    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, FEATURES)).astype("float32")
    booster = xgb.train({"objective": "binary:logistic", "nthread": 1}, xgb.DMatrix(x, label=x[:, 0] > 0), 3)
    server.register_model("hostile-model", model_archive(booster))
    server.client("sagemaker").create_endpoint(EndpointName="hostile", EndpointConfigName="hostile-model")
    _settle(server, "endpoint", "hostile")
    return "hostile"


def _records(server: LocalBackend, kind: str) -> list[dict]:
    with sqlite3.connect(f"file:{server.data_dir / 'backend.db'}?mode=ro", uri=True) as db:
        return [json.loads(r[0]) for r in db.execute("SELECT body FROM resources WHERE kind=?", (kind,))]


STATUS = {"glue_job_run": "JobRunState", "training_job": "TrainingJobStatus", "endpoint": "EndpointStatus"}
PENDING = {"RUNNING", "STARTING", "STOPPING", "InProgress", "Stopping", "Creating", "Updating"}


def _settle(server: LocalBackend, kind: str, name: str | None = None, timeout: float = 90) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        records = [r for r in _records(server, kind) if name is None or name in r.values()]
        pending = [r for r in records if r[STATUS[kind]] in PENDING]
        if not pending:
            return records
        if time.monotonic() > deadline:
            raise AssertionError(f"left non-terminal: {pending}")
        time.sleep(0.1)


def _assert_aws_error(status: int, answer: dict, allowed=(400, 403, 404, 413)) -> None:
    assert status in allowed, (status, answer)
    assert answer.get("__type") and answer.get("message"), answer


# -- strategies -------------------------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=8,
)
TRAVERSALS = [
    "s3://retraining-demo//etc/passwd",
    "s3://../etc/passwd",
    "s3://../../outside/secret.csv",
    "s3://linked-bucket/secret.csv",
    "s3://linked-bucket/",
    "s3://good-bucket/escape",
    "s3://good-bucket/a/../../../outside/",
    "s3://good-bucket/./x",
    "s3://good-bucket/a//b",
    "s3://Good-Bucket/x",
    "s3://ab/x",
    "s3://a" + "b" * 70 + "/x",
    "s3://192.168.1.1/x",
    "s3://good..bucket/x",
    "s3://good-bucket\n/x",
    "s3://good-bucket/x\x00y",
    "s3://good-bucket/" + "k/" * 600,
    "s3://good-bucket\\..\\x",
    "/etc/passwd",
    "file:///etc/passwd",
    "s3://",
    "",
]
hostile_uris = (
    st.sampled_from(TRAVERSALS)
    | st.builds(
        "s3://{}/{}".format,
        st.text(alphabet="abc.-/\\ 0", min_size=0, max_size=8),
        st.text(alphabet="ab./\\%\x00 ", max_size=12),
    )
    | json_values
)
NAMES = [
    "fine-name",
    "..",
    "/abs/path/evil",
    "../../outside/deep/evil",
    "a" * 64,
    "a" * 300,
    "-a",
    "a--",
    "a_b",
    "é",
    "",
    " ",
]
hostile_names = (st.sampled_from(NAMES) | st.text(max_size=70) | json_values).filter(
    lambda n: not (isinstance(n, str) and n.replace("-", "_") in ("churn_etl", "query_training_status"))
)


def _base_requests(unique: str) -> dict[str, dict]:
    channel = {
        "ChannelName": "train",
        "ContentType": "text/csv",
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://good-bucket/none/"}},
    }
    return {
        "AWSGlue.StartJobRun": {"JobName": "no-such-job", "Arguments": {"--S3_DEST": "s3://good-bucket/out/"}},
        "AWSGlue.GetJobRun": {"JobName": "churn-etl", "RunId": "jr_0"},
        "AWSGlue.BatchStopJobRun": {"JobName": "churn-etl", "JobRunIds": ["jr_0"]},
        "SageMaker.CreateTrainingJob": {
            "TrainingJobName": f"t-{unique}",
            "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
            "RoleArn": ROLE,
            "HyperParameters": {"num_round": "2"},
            "InputDataConfig": [channel],
            "OutputDataConfig": {"S3OutputPath": "s3://good-bucket/output/"},
            "ResourceConfig": {"InstanceType": "ml.m4.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 1},
            "StoppingCondition": {"MaxRuntimeInSeconds": 60},
        },
        "SageMaker.DescribeTrainingJob": {"TrainingJobName": "t-x"},
        "SageMaker.StopTrainingJob": {"TrainingJobName": "t-x"},
        "SageMaker.CreateModel": {
            "ModelName": f"m-{unique}",
            "ExecutionRoleArn": ROLE,
            "PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": "s3://good-bucket/none/model.tar.gz"},
        },
        "SageMaker.DescribeModel": {"ModelName": "hostile-model"},
        "SageMaker.CreateEndpointConfig": {
            "EndpointConfigName": f"c-{unique}",
            "ProductionVariants": [
                {"VariantName": "AllTraffic", "ModelName": "no-model", "InitialInstanceCount": 1, "InstanceType": "x"}
            ],
        },
        "SageMaker.DescribeEndpointConfig": {"EndpointConfigName": "hostile-model"},
        "SageMaker.CreateEndpoint": {"EndpointName": f"e-{unique}", "EndpointConfigName": "no-config"},
        "SageMaker.UpdateEndpoint": {"EndpointName": "no-endpoint", "EndpointConfigName": "hostile-model"},
        "SageMaker.DescribeEndpoint": {"EndpointName": "hostile"},
        "SageMaker.DeleteEndpoint": {"EndpointName": "no-endpoint"},
    }


# Where each request's hostile values go: (path of keys, the strategy for that place).
URI_PATHS = {
    ("InputDataConfig", 0, "DataSource", "S3DataSource", "S3Uri"),
    ("OutputDataConfig", "S3OutputPath"),
    ("PrimaryContainer", "ModelDataUrl"),
    ("Arguments", "--S3_DEST"),
}


def _places(request, prefix=()):
    """Every key path in a request, leaves and containers alike."""
    if isinstance(request, dict):
        for key, value in request.items():
            yield (*prefix, key)
            yield from _places(value, (*prefix, key))
    elif isinstance(request, list):
        for index, value in enumerate(request):
            yield (*prefix, index)
            yield from _places(value, (*prefix, index))


def _replace(request, path, value):
    target = request
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


counter = iter(range(10**9))


@SETTINGS
@given(data=st.data())
def test_any_field_of_any_action_with_any_value_gets_a_4xx_or_a_success_never_a_5xx(server, endpoint, data):
    unique = str(next(counter))
    requests = _base_requests(unique)
    target = data.draw(st.sampled_from(sorted(requests)), label="action")
    request = requests[target]
    places = sorted(_places(request), key=repr)
    for path in data.draw(st.lists(st.sampled_from(places), min_size=1, max_size=3, unique=True), label="fields"):
        strategy = hostile_uris if path in URI_PATHS else (hostile_names | json_values)
        try:
            _replace(request, path, data.draw(strategy, label=repr(path)))
        except (KeyError, IndexError, TypeError):  # an earlier replacement removed this place
            pass
    if data.draw(st.booleans(), label="drop a field"):
        request.pop(data.draw(st.sampled_from(sorted(request)), label="dropped"), None)
    status, answer = server.aws(target, request)
    assert status < 500, (target, request, answer)
    if status != 200:
        _assert_aws_error(status, answer)


@SETTINGS
@given(body=json_values, target=st.sampled_from(sorted(_base_requests("x"))))
def test_any_json_body_gets_an_aws_error_not_a_5xx(server, body, target):
    status, answer = server.aws(target, body)
    assert status < 500, (target, body, answer)
    if status != 200:
        _assert_aws_error(status, answer)
    if not isinstance(body, dict):
        assert status == 400 and answer["__type"] == "SerializationException"


@SETTINGS
@given(
    hostile=st.dictionaries(
        st.sampled_from(
            ["--S3_SOURCE", "--S3_DEST", "--TRAIN_KEY", "--VAL_KEY", "--JOB_NAME", "--x", "S3_DEST", "--a=b"]
        ),
        hostile_uris | st.sampled_from(["../x", "/tmp/x", "a/../../b", "--S3_DEST=/tmp", "~/x", "./x", "\\x"]),
        min_size=1,
        max_size=4,
    )
)
def test_glue_arguments_that_could_escape_are_refused_before_any_run_is_recorded(server, hostile):
    """The real churn-etl job, with at least one argument that could reach outside: refused, nothing recorded."""
    # The last argument is always hostile, so no mix of the others can start a real Spark run.
    arguments = {"--S3_SOURCE": "s3://good-bucket/raw.csv", **hostile, "--ZZZ_KEY": "../escape/"}
    status, answer = server.aws("AWSGlue.StartJobRun", {"JobName": "churn-etl", "Arguments": arguments})
    _assert_aws_error(status, answer)
    assert _records(server, "glue_job_run") == []


@SETTINGS
@given(
    name=st.sampled_from(["../../outside/deep/evil", "%2e%2e%2f%2e%2e%2foutside%2fdeep%2fevil", "a" * 65, "%00"])
    | st.text(max_size=70),
    payload=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()),
)
def test_lambda_invocations_of_any_name_and_payload_never_5xx(server, name, payload):
    path = "/2015-03-31/functions/" + urllib.parse.quote(name, safe="") + "/invocations"
    status, answer, headers = server.raw("POST", path, payload, {"Content-Type": "application/json"})
    assert status < 500, (name, payload, answer)
    if status >= 400:
        assert headers.get("x-amzn-errortype") or json.loads(answer).get("__type"), answer


@SETTINGS
@given(
    body=st.binary(max_size=300) | st.lists(st.text(max_size=8), max_size=8).map(lambda c: ",".join(c).encode()),
    content_type=st.sampled_from(["text/csv", "TEXT/CSV; charset=utf-8", "text/plain", "application/json", ""])
    | st.text(max_size=20),
)
def test_invocations_with_any_body_and_content_type_never_5xx(server, endpoint, body, content_type):
    sendable = content_type.encode("latin-1", "replace").decode("latin-1")
    headers = {"Content-Type": sendable.replace("\n", "").replace("\r", "")}
    status, answer, _ = server.raw("POST", f"/endpoints/{endpoint}/invocations", body, headers)
    assert status < 500, (body, content_type, answer)
    assert status in (200, 400, 413, 415), (status, answer)


LOOKALIKES = [
    "127.0.0.1:PORT",
    "LOCALHOST:PORT",
    "127.0.0.1",
    "localhost",
    "127.0.0.1:PORT.evil.example",
    "evil.example:PORT",
    "0.0.0.0:PORT",
    "[::1]:PORT",
    "127.1:PORT",
    "localhost.:PORT",
]


@SETTINGS
@given(host=st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=30) | st.sampled_from(LOOKALIKES))
def test_only_the_loopback_names_with_our_port_are_answered(server, host):
    host = host.replace("PORT", str(server.port))
    status, answer, _ = server.raw("GET", "/ping", headers={"Host": host})
    allowed = {f"127.0.0.1:{server.port}", f"localhost:{server.port}"}
    if host.lower() in allowed:
        assert status == 200
    else:
        assert status in (400, 403), (host, answer)  # 400: the HTTP parser refused the header itself


# -- the specific cases -----------------------------------------------------------------------------------
def test_all_records_reach_a_terminal_state(server):
    for kind in STATUS:
        for record in _settle(server, kind):
            assert record[STATUS[kind]] not in PENDING


@pytest.mark.parametrize("uri", TRAVERSALS)
def test_a_training_job_on_a_traversal_uri_is_refused_and_not_recorded(server, uri):
    request = _base_requests(f"trav-{TRAVERSALS.index(uri)}")["SageMaker.CreateTrainingJob"]
    request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] = uri
    status, answer = server.aws("SageMaker.CreateTrainingJob", request)
    _assert_aws_error(status, answer)
    assert "InputDataConfig[0].DataSource.S3DataSource.S3Uri" in answer["message"]
    assert request["TrainingJobName"] not in {j["TrainingJobName"] for j in _records(server, "training_job")}


@pytest.mark.parametrize(
    ("uri", "code", "status"),
    [
        ("s3://retraining-demo//etc/passwd", "ValidationException", 400),
        ("s3://../etc", "ValidationException", 400),
        ("s3://linked-bucket/", "AccessDeniedException", 403),
        ("s3://good-bucket/escape", "AccessDeniedException", 403),
    ],
)
def test_training_output_outside_the_data_directory_is_refused(server, uri, code, status):
    request = _base_requests(f"out-{abs(hash(uri))}")["SageMaker.CreateTrainingJob"]
    request["OutputDataConfig"]["S3OutputPath"] = uri
    got, answer = server.aws("SageMaker.CreateTrainingJob", request)
    assert (got, answer["__type"]) == (status, code), answer
    assert "OutputDataConfig.S3OutputPath" in answer["message"]


@pytest.mark.parametrize(
    "job", ["/abs/path/evil", "../../x/evil", "../../outside/deep/evil", "churn_etl.py", "", "churn-etl\n"]
)
def test_start_job_run_runs_only_scripts_directly_inside_glue(server, job):
    status, answer = server.aws("AWSGlue.StartJobRun", {"JobName": job})
    _assert_aws_error(status, answer)
    assert "JobName" in answer["message"] or "not found" in answer["message"]


def test_start_job_run_with_an_invalid_uri_is_a_4xx_and_records_no_run(server):
    arguments = {"--S3_SOURCE": "s3://good-bucket/raw.csv", "--S3_DEST": "s3://retraining-demo//tmp/x/"}
    status, answer = server.aws("AWSGlue.StartJobRun", {"JobName": "churn-etl", "Arguments": arguments})
    assert (status, answer["__type"]) == (400, "ValidationException")
    assert "Arguments.--S3_DEST" in answer["message"]
    assert _records(server, "glue_job_run") == []


def test_a_glue_output_key_that_resolves_outside_through_a_symlink_is_refused(server):
    (server.data_dir / "s3" / "good-bucket" / "out").mkdir(exist_ok=True)
    link = server.data_dir / "s3" / "good-bucket" / "out" / "train"
    link.symlink_to(server.data_dir.parent / "outside", target_is_directory=True)
    try:
        arguments = {
            "--S3_SOURCE": "s3://good-bucket/raw.csv",
            "--S3_DEST": "s3://good-bucket/out/",
            "--TRAIN_KEY": "train/",
        }
        status, answer = server.aws("AWSGlue.StartJobRun", {"JobName": "churn-etl", "Arguments": arguments})
        assert (status, answer["__type"]) == (403, "AccessDeniedException")
        assert "Arguments.--TRAIN_KEY" in answer["message"]
        assert _records(server, "glue_job_run") == []
    finally:
        link.unlink()


@pytest.mark.parametrize(
    ("container", "field"),
    [
        ({"Image": 7, "ModelDataUrl": "s3://good-bucket/m.tar.gz"}, "PrimaryContainer.Image"),
        ({"Image": IMAGE, "ModelDataUrl": ["s3://good-bucket/m.tar.gz"]}, "PrimaryContainer.ModelDataUrl"),
        ({"Image": IMAGE, "ModelDataUrl": "s3://linked-bucket/model.tar.gz"}, "PrimaryContainer.ModelDataUrl"),
        ({"Image": IMAGE}, "PrimaryContainer.ModelDataUrl"),
        ("not an object", "PrimaryContainer"),
    ],
)
def test_create_model_checks_every_field_before_recording(server, container, field):
    status, answer = server.aws(
        "SageMaker.CreateModel", {"ModelName": "typed", "ExecutionRoleArn": ROLE, "PrimaryContainer": container}
    )
    _assert_aws_error(status, answer)
    assert field in answer["message"]
    assert "typed" not in {m["ModelName"] for m in _records(server, "model")}


@pytest.mark.parametrize("name", ["a" * 64, "bad_name", "-lead", "x" * 1000, "", "trailing-newline\n"])
def test_over_long_or_ill_formed_names_are_a_validation_error(server, name):
    status, answer = server.aws("SageMaker.CreateEndpoint", {"EndpointName": name, "EndpointConfigName": "c"})
    assert (status, answer["__type"]) == (400, "ValidationException")
    assert "EndpointName" in answer["message"]


def test_rebound_host_names_and_cross_origin_posts_are_refused(server, endpoint):
    row = b"1,2,3,4"
    evil_host = server.raw("POST", f"/endpoints/{endpoint}/invocations", row, {"Host": "evil.example:80"})
    assert evil_host[0] == 403 and b"Host must be" in evil_host[1]
    wrong_port = server.raw("GET", "/ping", headers={"Host": "127.0.0.1:1"})
    assert wrong_port[0] == 403
    simple_post = server.raw(
        "POST",
        f"/endpoints/{endpoint}/invocations",
        row,
        {"Content-Type": "text/plain", "Origin": "http://evil.example"},
    )
    assert simple_post[0] == 403 and b"cross-origin" in simple_post[1]
    fetch_site = server.raw(
        "POST", "/", b"{}", {"X-Amz-Target": "SageMaker.DescribeEndpoint", "Sec-Fetch-Site": "cross-site"}
    )
    assert fetch_site[0] == 403
    preflight = server.raw(
        "OPTIONS",
        "/",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight[0] == 403 and "access-control-allow-origin" not in preflight[2]
    same_origin = server.raw(
        "POST", f"/endpoints/{endpoint}/invocations", row, {"Origin": f"http://localhost:{server.port}"}
    )
    assert same_origin[0] == 200
    assert server.raw("GET", "/ping", headers={"Host": f"localhost:{server.port}"})[0] == 200


@pytest.mark.parametrize(
    ("path", "headers", "limit"),
    [
        ("/", {"X-Amz-Target": "SageMaker.DescribeEndpoint"}, 1024 * 1024),
        ("/2015-03-31/functions/query-training-status/invocations", {}, 6 * 1024 * 1024),
        ("/endpoints/hostile/invocations", {"Content-Type": "text/csv"}, 6 * 1024 * 1024),
    ],
)
def test_every_route_caps_its_body(server, endpoint, path, headers, limit):
    status, answer, _ = server.raw("POST", path, b" " * (limit + 1), headers)
    assert status == 413, answer
    assert str(limit).encode() in answer


def test_a_deeply_nested_body_is_a_serialization_error(server):
    status, answer = server.aws("SageMaker.DescribeEndpoint", json.loads("[" * 50 + "]" * 50))
    assert status == 400
    deep = b"[" * 100_000 + b"]" * 100_000
    status, raw, _ = server.raw("POST", "/", deep, {"X-Amz-Target": "SageMaker.DescribeEndpoint"})
    assert status == 400 and json.loads(raw)["__type"] == "SerializationException"


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("1_000", "'1_000' is not a number"),
        ("\u0661", "is not a number"),  # ARABIC-INDIC DIGIT ONE: float() would take it
        ("\uff11", "is not a number"),  # FULLWIDTH DIGIT ONE
        ("0x10", "is not a number"),
        ("inf", "is not a finite number"),
        ("1e400", "is not a finite number"),
    ],
)
def test_feature_parsing_takes_ascii_decimal_numbers_only(server, endpoint, cell, message):
    status, answer, _ = server.raw(
        "POST", f"/endpoints/{endpoint}/invocations", f"1,2,3,{cell}".encode(), {"Content-Type": "text/csv"}
    )
    assert status == 400 and message in answer.decode(), answer


@pytest.mark.parametrize("content_type", ["TEXT/CSV", "Text/Csv; charset=UTF-8", "text/plain"])
def test_content_type_is_case_insensitive(server, endpoint, content_type):
    status, answer, _ = server.raw(
        "POST", f"/endpoints/{endpoint}/invocations", b"1,2,3,4\n-1,0,0,0", {"Content-Type": content_type}
    )
    assert status == 200 and len(answer.decode().split()) == 2


def test_the_sentinel_tree_is_reachable_only_through_refused_names(world):
    server, _root, outside, _before = world
    assert (server.data_dir / "s3" / "linked-bucket" / "secret.csv").read_text() == (outside / "secret.csv").read_text()
    assert os.path.realpath(server.data_dir / "s3" / "good-bucket" / "escape") == str(outside / "secret.csv")
