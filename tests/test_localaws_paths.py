"""``localaws.paths``: for any string, a local path inside its folder or a refusal with AWS's error; never outside.

Property-based over hostile URIs and names, on a real data directory holding symlinks that
point out of it (a bucket and a key), so confinement is checked after symlinks are resolved.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localaws import paths

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SEGMENTS = st.sampled_from(["", ".", "..", "...", "a", "b.c", "%2e%2e", "linked", "escape", "~", "\\", "x\x00", "é"])
hostile_uri = st.one_of(
    st.builds(
        lambda scheme, bucket, parts, slash: f"{scheme}{bucket}/{'/'.join(parts)}{slash}",
        st.sampled_from(["s3://", "s3a://", "s3n://", "S3://", "file://", "", "/"]),
        st.sampled_from(["good-bucket", "linked-bucket", "..", ".", "a..b", "ab", "Good", "1.2.3.4", ""])
        | st.text(alphabet="abc.-/", max_size=10),
        st.lists(SEGMENTS, max_size=6),
        st.sampled_from(["", "/", "//"]),
    ),
    st.text(max_size=60),
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("paths")
    outside = root / "outside"
    outside.mkdir()
    (outside / "secret").write_text("x")
    data = root / "data"
    (data / "s3" / "good-bucket" / "a").mkdir(parents=True)
    (data / "s3" / "linked-bucket").symlink_to(outside, target_is_directory=True)
    (data / "s3" / "good-bucket" / "escape").symlink_to(outside / "secret")
    (data / "s3" / "good-bucket" / "a" / "linked").symlink_to(outside, target_is_directory=True)
    return data


@pytest.fixture
def confined(data_dir, monkeypatch):
    monkeypatch.setenv("RETRAINING_LOCAL_DATA", str(data_dir))
    return (data_dir / "s3").resolve()


@SETTINGS
@given(uri=hostile_uri)
def test_any_uri_maps_inside_the_object_store_or_is_refused_with_an_aws_error(confined, uri):
    try:
        path = paths.s3_to_local(uri)
    except paths.PathRefused as err:
        assert (err.code, err.status) in {("ValidationException", 400), ("AccessDeniedException", 403)}
        assert str(err)
        return
    assert path == path.resolve()
    assert path.is_relative_to(confined) and path != confined
    bucket, key = paths.parse_s3_uri(uri)
    assert path.relative_to(confined).parts[0] == bucket
    assert ".." not in key.split("/") and not key.startswith("/")


@pytest.mark.parametrize(
    ("uri", "code"),
    [
        ("s3://linked-bucket/secret", "AccessDeniedException"),
        ("s3://good-bucket/escape", "AccessDeniedException"),
        ("s3://good-bucket/a/linked/secret", "AccessDeniedException"),
        ("s3://retraining-demo//etc/passwd", "ValidationException"),
        ("s3://../etc/passwd", "ValidationException"),
        ("s3://good-bucket/a/../../x", "ValidationException"),
    ],
)
def test_traversal_and_symlink_escapes_are_refused(confined, uri, code):
    with pytest.raises(paths.PathRefused) as refused:
        paths.s3_to_local(uri)
    assert refused.value.code == code and uri in str(refused.value)


def test_ordinary_uris_map_where_they_always_did(confined):
    assert paths.s3_to_local("s3://good-bucket/a/b.csv") == confined / "good-bucket" / "a" / "b.csv"
    assert paths.local_uri("s3a://good-bucket/prefix/") == str(confined / "good-bucket" / "prefix") + "/"


@SETTINGS
@given(name=st.text(max_size=40) | st.sampled_from(["churn-etl", "churn_etl", "../glue/churn_etl", "CHURN-ETL"]))
def test_a_glue_job_name_is_a_file_directly_inside_glue_or_refused(name):
    try:
        script = paths.glue_script(name)
    except paths.PathRefused as err:
        assert err.code in {"ValidationException", "EntityNotFoundException"}
        return
    assert script.parent == paths.GLUE_DIR.resolve() and script.suffix == ".py" and script.is_file()
    assert script.stem == name.replace("-", "_")


@SETTINGS
@given(name=st.text(max_size=70) | st.sampled_from(["query-training-status", "../lambda/x", "a" * 65]))
def test_a_lambda_function_name_is_a_file_directly_inside_lambda_or_refused(name):
    try:
        module = paths.lambda_module(name)
    except paths.PathRefused as err:
        assert err.code in {"ValidationException", "ResourceNotFoundException"}
        return
    assert module.parent == paths.LAMBDA_DIR.resolve() and module.is_file()
    assert Path(module).stem == name.replace("-", "_")
