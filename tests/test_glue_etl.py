"""Tests for glue/churn_etl.py against a real local Spark session (no mocks).

tests/data/churn_small.csv has 41 data rows: 36 valid rows (account lengths
below 900, some with label/whitespace/case variants the ETL must accept) and
5 malformed rows with account lengths 901-905.
"""

from __future__ import annotations

import csv
import importlib.util
import logging
import math
import os
import random
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from pyspark.sql import SparkSession

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "glue" / "churn_etl.py"
SMALL_CSV = REPO_ROOT / "tests" / "data" / "churn_small.csv"
# C1-only JIT: these JVMs live for seconds, and full JIT warm-up would double their run time.
FAST_JVM_OPTIONS = "-XX:TieredStopAtLevel=1"

SMALL_ROWS_IN = 41
SMALL_VALID_ROWS = 36
SMALL_DROPPED_BY_REASON = {
    "wrong_column_count": 1,  # 901: short row
    "bad_numeric": 1,  # 902: Day Mins "abc"
    "unknown_category": 2,  # 903: State "ZZ", 905: Area Code 999
    "bad_label": 1,  # 904: empty Churn?
}


def _load_etl_module():
    # glue/ is a folder of Glue scripts, not a package.
    spec = importlib.util.spec_from_file_location("churn_etl", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["churn_etl"] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


etl = _load_etl_module()
ACCOUNT_LENGTH_COL = 1 + etl.FEATURE_COLUMNS.index("account_length")


# --- helpers --------------------------------------------------------------------


def read_output_rows(folder: Path) -> list[list[str]]:
    files = sorted(folder.glob("part-*"))
    assert len(files) == 1, f"expected one CSV part file in {folder}, got {files}"
    with files[0].open(newline="") as handle:
        return list(csv.reader(handle))


def account_lengths(rows) -> list[int]:
    return [int(row[ACCOUNT_LENGTH_COL]) for row in rows]


def raw_small_rows() -> dict[int, dict[str, str]]:
    """Valid fixture rows keyed by account length."""
    with SMALL_CSV.open(newline="") as handle:
        return {int(r["Account Length"]): r for r in csv.DictReader(handle) if int(r["Account Length"]) < 900}


def synthetic_rows(count: int, seed: int) -> list[list[str]]:
    """Well-formed churn rows with unique account lengths (1..count)."""
    rng = random.Random(seed)
    rows = []
    for account_length in range(1, count + 1):
        vmail = rng.random() < 0.3
        minutes = [round(rng.uniform(lo, hi), 1) for lo, hi in ((0, 350), (0, 360), (20, 390), (0, 20))]
        rates = (0.17, 0.085, 0.045, 0.27)
        usage = []
        for mins, rate in zip(minutes, rates, strict=False):
            usage += [f"{mins:.1f}", str(rng.randint(0, 165)), f"{mins * rate:.2f}"]
        rows.append(
            [
                rng.choice(etl.STATES),
                str(account_length),
                rng.choice(etl.AREA_CODES),
                f"{rng.randint(327, 422)}-{rng.randint(1000, 9999)}",
                "yes" if rng.random() < 0.1 else "no",
                "yes" if vmail else "no",
                str(rng.randint(5, 50) if vmail else 0),
                *usage,
                str(rng.randint(0, 9)),
                "True." if rng.random() < 0.15 else "False.",
            ]
        )
    return rows


def write_csv(path: Path, rows, header=tuple(etl.RAW_COLUMNS)) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        if header is not None:
            writer.writerow(header)
        writer.writerows(rows)
    return path


# --- fixtures -------------------------------------------------------------------


@pytest.fixture(scope="module")
def spark():
    session = (
        SparkSession.builder.master("local[1]")
        .appName("test_glue_etl")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.extraJavaOptions", FAST_JVM_OPTIONS)
        .getOrCreate()
    )
    yield session
    session.stop()
    # py4j logs "Closing down clientserver connection" at interpreter exit, after pytest closed its streams.
    logging.getLogger("py4j").setLevel(logging.WARNING)


@pytest.fixture(scope="module")
def small_run(spark, tmp_path_factory):
    """One ETL run over the small fixture with default split settings."""
    dest = tmp_path_factory.mktemp("small_out")
    stats = etl.run(spark, {"S3_SOURCE": str(SMALL_CSV), "S3_DEST": str(dest)})  # no trailing slash
    return SimpleNamespace(
        dest=dest,
        stats=stats,
        train=read_output_rows(dest / "train"),
        validation=read_output_rows(dest / "validation"),
    )


@pytest.fixture(scope="module")
def large_csv(tmp_path_factory) -> Path:
    return write_csv(tmp_path_factory.mktemp("large") / "churn_1000.csv", synthetic_rows(1000, seed=3))


# --- feature layout -------------------------------------------------------------


def test_feature_layout_is_fixed():
    assert etl.FEATURE_COUNT == len(etl.FEATURE_COLUMNS) == 67
    assert len(set(etl.FEATURE_COLUMNS)) == 67
    assert len(etl.STATES) == len(set(etl.STATES)) == 51
    assert etl.OUTPUT_COLUMNS[0] == etl.LABEL_COLUMN
    assert etl.FEATURE_COLUMNS[:2] == ("account_length", "vmail_message")
    assert etl.FEATURE_COLUMNS[-51:] == tuple(f"state_{s}" for s in etl.STATES)
    assert not any("charge" in name or "phone" in name for name in etl.FEATURE_COLUMNS)


# --- small fixture run ----------------------------------------------------------


def test_valid_rows_are_written_and_malformed_rows_counted(small_run):
    stats = small_run.stats
    assert stats["rows_in"] == SMALL_ROWS_IN
    assert stats["rows_dropped"] == SMALL_ROWS_IN - SMALL_VALID_ROWS
    assert stats["dropped_by_reason"] == SMALL_DROPPED_BY_REASON
    assert len(small_run.train) + len(small_run.validation) == SMALL_VALID_ROWS
    assert (stats["rows_train"], stats["rows_validation"]) == (len(small_run.train), len(small_run.validation))
    assert small_run.train and small_run.validation
    assert all(length < 900 for length in account_lengths(small_run.train + small_run.validation))


def test_output_is_headerless_numeric_with_label_first(small_run):
    state_cols = slice(1 + etl.FEATURE_COLUMNS.index("state_AK"), None)
    area_start = 1 + etl.FEATURE_COLUMNS.index("area_code_408")
    for row in small_run.train + small_run.validation:
        assert len(row) == 1 + len(etl.FEATURE_COLUMNS)
        values = [float(value) for value in row]  # also proves there is no header line
        assert all(math.isfinite(v) for v in values)
        assert row[0] in ("0", "1")
        assert sum(values[state_cols]) == 1
        assert sum(values[area_start : area_start + 3]) == 1
    assert not (small_run.dest / "train" / "_SUCCESS").exists()


def test_encoding_matches_source_rows(small_run):
    raw = raw_small_rows()
    col = {name: 1 + i for i, name in enumerate(etl.FEATURE_COLUMNS)}
    for row in small_run.train + small_run.validation:
        source = raw[int(row[ACCOUNT_LENGTH_COL])]
        label = source["Churn?"].strip().lower().rstrip(".") in ("true", "1", "yes")
        assert row[0] == str(int(label))
        assert row[col[f"state_{source['State'].strip().upper()}"]] == "1"
        assert row[col[f"area_code_{source['Area Code'].strip()}"]] == "1"
        assert row[col["intl_plan"]] == str(int(source["Int'l Plan"].strip() == "yes"))
        assert row[col["vmail_plan"]] == str(int(source["VMail Plan"].strip() == "yes"))
        assert float(row[col["day_mins"]]) == float(source["Day Mins"])
        assert row[col["custserv_calls"]] == source["CustServ Calls"]  # counts stay integers
    labels = {row[0] for row in small_run.train + small_run.validation}
    assert labels == {"0", "1"}


def test_phone_and_charge_values_are_absent(small_run):
    raw = raw_small_rows()
    for row in small_run.train + small_run.validation:
        source = raw[int(row[ACCOUNT_LENGTH_COL])]
        assert source["Phone"] not in ",".join(row)
        values = {float(value) for value in row}
        for charge in ("Day Charge", "Eve Charge", "Night Charge", "Intl Charge"):
            assert float(source[charge]) not in values


def test_run_overwrites_previous_output(spark, tmp_path):
    stale = tmp_path / "out" / "train" / "part-stale.csv"
    stale.parent.mkdir(parents=True)
    stale.write_text("999\n")
    etl.run(spark, etl.EtlArgs(source=str(SMALL_CSV), dest=f"{tmp_path}/out/"))
    assert not stale.exists()
    rows = read_output_rows(tmp_path / "out" / "train") + read_output_rows(tmp_path / "out" / "validation")
    assert len(rows) == SMALL_VALID_ROWS


# --- split ----------------------------------------------------------------------


def test_split_is_deterministic_and_partitions_valid_rows(spark, small_run):
    raw_df = etl.read_raw(spark, str(SMALL_CSV))

    def split_ids(fraction, seed):
        result = etl.transform(raw_df, fraction, seed)
        ids = set(account_lengths(result.train_df.collect())), set(account_lengths(result.validation_df.collect()))
        result.unpersist()
        return ids

    train, validation = split_ids(0.3, 7)
    assert (train, validation) == split_ids(0.3, 7)
    assert not train & validation
    assert train | validation == set(raw_small_rows())
    # run() uses the same split as transform() with the default fraction and seed.
    assert split_ids(0.2, 42) == (set(account_lengths(small_run.train)), set(account_lengths(small_run.validation)))


@pytest.mark.parametrize("fraction", [0.2, 0.5])
def test_validation_fraction_is_roughly_honoured(spark, large_csv, fraction):
    raw_df = etl.read_raw(spark, str(large_csv))
    result = etl.transform(raw_df, fraction, seed=11)
    assert result.rows_in == 1000 and result.rows_dropped == 0
    assert result.validation_df.count() == result.rows_validation
    assert result.rows_train + result.rows_validation == 1000
    assert abs(result.rows_validation / 1000 - fraction) < 0.05
    validation_ids = set(account_lengths(result.validation_df.collect()))
    result.unpersist()

    other_seed = etl.transform(raw_df, fraction, seed=12)
    assert set(account_lengths(other_seed.validation_df.collect())) != validation_ids
    other_seed.unpersist()


def test_prefix_source_reads_every_file(spark, tmp_path):
    rows = synthetic_rows(30, seed=5)
    write_csv(tmp_path / "part-1.csv", rows[:10])
    write_csv(tmp_path / "part-2.csv", rows[10:])
    result = etl.transform(etl.read_raw(spark, f"{tmp_path}/"), 0.2, 42)
    assert result.rows_in == 30 and result.rows_dropped == 0
    result.unpersist()


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_transform_rejects_degenerate_fraction(spark, fraction):
    with pytest.raises(etl.EtlError, match="between 0 and 1"):
        etl.transform(etl.read_raw(spark, str(SMALL_CSV)), fraction, 42)


# --- failures -------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["header_only", "zero_bytes", "empty_folder"])
def test_empty_source_fails_naming_the_path(spark, tmp_path, layout):
    if layout == "header_only":
        source = write_csv(tmp_path / "empty.csv", [])
    elif layout == "zero_bytes":
        source = tmp_path / "empty.csv"
        source.write_text("")
    else:
        source = tmp_path / "empty_prefix"
        source.mkdir()
    with pytest.raises(etl.EtlError, match="no data rows") as error:
        etl.run(spark, {"S3_SOURCE": str(source), "S3_DEST": str(tmp_path / "out")})
    assert str(source) in str(error.value)
    assert not (tmp_path / "out").exists()


def test_missing_source_fails_naming_the_path(spark, tmp_path):
    source = tmp_path / "nope" / "churn.csv"
    with pytest.raises(etl.EtlError, match="does not exist") as error:
        etl.run(spark, {"S3_SOURCE": str(source), "S3_DEST": str(tmp_path / "out")})
    assert str(source) in str(error.value)


def test_all_rows_malformed_fails(spark, tmp_path):
    rows = synthetic_rows(3, seed=1)
    for row in rows:
        row[0] = "XX"
    source = write_csv(tmp_path / "bad.csv", rows)
    with pytest.raises(etl.EtlError, match="no valid rows.*unknown_category=3") as error:
        etl.run(spark, {"S3_SOURCE": str(source), "S3_DEST": str(tmp_path / "out")})
    assert str(source) in str(error.value)


def test_misordered_header_fails_instead_of_misaligning_columns(spark, tmp_path):
    header = list(etl.RAW_COLUMNS)
    day, eve = header.index("Day Calls"), header.index("Eve Calls")
    header[day], header[eve] = header[eve], header[day]
    source = write_csv(tmp_path / "swapped.csv", synthetic_rows(3, seed=1), header=header)
    with pytest.raises(etl.EtlError, match="header does not conform") as error:
        etl.run(spark, {"S3_SOURCE": str(source), "S3_DEST": str(tmp_path / "out")})
    assert str(source) in str(error.value)


# --- arguments and paths --------------------------------------------------------


def test_parse_args_defaults_and_ignores_glue_extras():
    args = etl.parse_args(
        [
            "--JOB_NAME",
            "churn-etl",
            "--S3_SOURCE",
            "s3://bucket/raw/",
            "--S3_DEST",
            "s3://bucket/processed",
            "--TempDir",
            "s3://bucket/tmp/",
            "--job-bookmark-option",
            "job-bookmark-disable",
            "--enable-metrics",
            "true",
        ]
    )
    assert args == etl.EtlArgs(source="s3://bucket/raw/", dest="s3://bucket/processed", job_name="churn-etl")
    assert (args.train_key, args.val_key, args.validation_fraction, args.seed) == ("train/", "validation/", 0.2, 42)
    assert args.train_path == "s3://bucket/processed/train/"
    assert args.validation_path == "s3://bucket/processed/validation/"


def test_parse_args_overrides():
    args = etl.parse_args(
        [
            "--S3_SOURCE=/data/raw.csv",
            "--S3_DEST",
            "/data/out/",
            "--TRAIN_KEY",
            "tr",
            "--VAL_KEY",
            "/va/",
            "--VALIDATION_FRACTION",
            "0.25",
            "--SEED",
            "7",
        ]
    )
    assert (args.train_path, args.validation_path) == ("/data/out/tr", "/data/out/va/")
    assert (args.validation_fraction, args.seed) == (0.25, 7)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--VALIDATION_FRACTION", "abc"], "must be a number"),
        (["--VALIDATION_FRACTION", "1.5"], "between 0 and 1"),
        (["--SEED", "x"], "must be an integer"),
    ],
)
def test_parse_args_rejects_bad_values(extra, message):
    with pytest.raises(etl.EtlError, match=message):
        etl.parse_args(["--S3_SOURCE", "a", "--S3_DEST", "b", *extra])


def test_parse_args_keeps_zero_seed():
    assert etl.parse_args(["--S3_SOURCE", "a", "--S3_DEST", "b", "--SEED", "0"]).seed == 0


@pytest.mark.parametrize("train_key, val_key", [("data/", "data"), ("/", "validation/"), ("out/", "out/validation/")])
def test_parse_args_rejects_clashing_output_keys(train_key, val_key):
    with pytest.raises(etl.EtlError, match="TRAIN_KEY and --VAL_KEY"):
        etl.EtlArgs.from_options({"S3_SOURCE": "a", "S3_DEST": "b", "TRAIN_KEY": train_key, "VAL_KEY": val_key})


def test_parse_args_requires_source_and_dest():
    with pytest.raises(SystemExit):
        etl.parse_args(["--S3_DEST", "b"])
    with pytest.raises(etl.EtlError, match="--S3_SOURCE"):
        etl.EtlArgs.from_options({"S3_DEST": "b"})


@pytest.mark.parametrize(
    "prefix, key, expected",
    [
        ("s3://b/out/", "train/", "s3://b/out/train/"),
        ("s3://b/out", "train/", "s3://b/out/train/"),
        ("s3://b/out//", "/validation/", "s3://b/out/validation/"),
        ("/tmp/out", "train", "/tmp/out/train"),
        ("file:///tmp/out/", "train/", "file:///tmp/out/train/"),
    ],
)
def test_join_uri(prefix, key, expected):
    assert etl.join_uri(prefix, key) == expected


def test_normalize_uri():
    assert etl.normalize_uri("s3a://b/k", on_glue=True) == "s3://b/k"
    assert etl.normalize_uri("s3://b/k", on_glue=True) == "s3://b/k"
    assert etl.normalize_uri("s3://b/k", on_glue=False) == "s3a://b/k"
    assert etl.normalize_uri("/tmp/x", on_glue=False) == "/tmp/x"
    assert etl.normalize_uri("file:///tmp/x", on_glue=True) == "file:///tmp/x"


# --- the script as Glue would call it ---------------------------------------------


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--JOB_NAME", "churn-etl-test", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYSPARK_SUBMIT_ARGS": f"--driver-java-options {FAST_JVM_OPTIONS} pyspark-shell"},
    )


def test_script_runs_end_to_end(tmp_path):
    proc = run_script(
        "--S3_SOURCE",
        SMALL_CSV.as_uri(),  # file:// URI
        "--S3_DEST",
        f"{tmp_path}/",
        "--TRAIN_KEY",
        "train/",
        "--VAL_KEY",
        "validation/",
    )
    assert proc.returncode == 0, proc.stderr
    rows = read_output_rows(tmp_path / "train") + read_output_rows(tmp_path / "validation")
    assert len(rows) == SMALL_VALID_ROWS
    assert "dropped 5 of 41 rows" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_script_fails_cleanly_on_missing_source(tmp_path):
    source = tmp_path / "missing" / "churn.csv"
    proc = run_script("--S3_SOURCE", str(source), "--S3_DEST", f"{tmp_path}/out/")
    assert proc.returncode != 0
    assert f"source does not exist: {source}" in proc.stderr
    assert "Traceback" not in proc.stderr
