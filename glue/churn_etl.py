"""Glue ETL for the telecom churn retraining pipeline.

Reads the raw churn CSV (with header), drops malformed rows, encodes every
feature numerically with a fixed vocabulary and writes train/validation CSVs
in the SageMaker built-in XGBoost convention: no header, label first.

Output layout (68 columns, identical for every batch so the served model's
input width never changes across retrains):

    column 0       churn label, 1 = churned, 0 = stayed
    columns 1..67  FEATURE_COLUMNS, in order:
                     11 numeric columns (account length, voicemail messages,
                        day/eve/night/intl minutes and calls, customer-service
                        calls; Phone and the four ``* Charge`` columns are
                        dropped: Phone is an identifier, charges are exact
                        linear functions of the minutes),
                      2 plan flags (Int'l Plan, VMail Plan as 1/0),
                      3 Area Code one-hots (408, 415, 510),
                     51 State one-hots (50 states + DC, alphabetical).

Runs unchanged on AWS Glue 5 (Spark 3.5, Python 3.11) and locally with plain
PySpark; awsglue is only imported in parse_options() and _start_spark().

    python glue/churn_etl.py --S3_SOURCE <csv file or prefix> --S3_DEST <prefix> \
        [--TRAIN_KEY train/] [--VAL_KEY validation/] \
        [--VALIDATION_FRACTION 0.2] [--SEED 42] [--JOB_NAME name]
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import logging
import operator
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

try:
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import AnalysisException
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql import functions as F
    from pyspark.sql import types as T
except ImportError:  # Lets serving code import FEATURE_COLUMNS without Spark.
    pass

LOG = logging.getLogger("churn_etl")

# What this job does with each S3 location it is given: the exporter scopes the Glue role's S3 access
# to exactly these prefixes (read: list and get under it; write: also put and delete under it).
S3_ARGUMENTS = {"--S3_SOURCE": "read", "--S3_DEST": "write"}

# --- Input schema -----------------------------------------------------------

# Raw CSV header, in file order, mapped to the internal column name.
RAW_COLUMNS: dict[str, str] = {
    "State": "state",
    "Account Length": "account_length",
    "Area Code": "area_code",
    "Phone": "phone",
    "Int'l Plan": "intl_plan",
    "VMail Plan": "vmail_plan",
    "VMail Message": "vmail_message",
    "Day Mins": "day_mins",
    "Day Calls": "day_calls",
    "Day Charge": "day_charge",
    "Eve Mins": "eve_mins",
    "Eve Calls": "eve_calls",
    "Eve Charge": "eve_charge",
    "Night Mins": "night_mins",
    "Night Calls": "night_calls",
    "Night Charge": "night_charge",
    "Intl Mins": "intl_mins",
    "Intl Calls": "intl_calls",
    "Intl Charge": "intl_charge",
    "CustServ Calls": "custserv_calls",
    "Churn?": "churn_raw",
}
CORRUPT_RECORD_COLUMN = "_corrupt_record"
DROPPED_RAW_COLUMNS = ("Phone", "Day Charge", "Eve Charge", "Night Charge", "Intl Charge")

# --- Fixed vocabularies: changing any of these changes the model's input width.

STATES = (
    "AK",
    "AL",
    "AR",
    "AZ",
    "CA",
    "CO",
    "CT",
    "DC",
    "DE",
    "FL",
    "GA",
    "HI",
    "IA",
    "ID",
    "IL",
    "IN",
    "KS",
    "KY",
    "LA",
    "MA",
    "MD",
    "ME",
    "MI",
    "MN",
    "MO",
    "MS",
    "MT",
    "NC",
    "ND",
    "NE",
    "NH",
    "NJ",
    "NM",
    "NV",
    "NY",
    "OH",
    "OK",
    "OR",
    "PA",
    "RI",
    "SC",
    "SD",
    "TN",
    "TX",
    "UT",
    "VA",
    "VT",
    "WA",
    "WI",
    "WV",
    "WY",
)
AREA_CODES = ("408", "415", "510")
YES_NO_COLUMNS = ("intl_plan", "vmail_plan")
TRUE_LABELS = ("true", "1", "yes")  # compared after lower-casing and dropping a trailing "."
FALSE_LABELS = ("false", "0", "no")

# Numeric features in output order; True marks count columns that must be whole numbers.
NUMERIC_FEATURES: dict[str, bool] = {
    "account_length": True,
    "vmail_message": True,
    "day_mins": False,
    "day_calls": True,
    "eve_mins": False,
    "eve_calls": True,
    "night_mins": False,
    "night_calls": True,
    "intl_mins": False,
    "intl_calls": True,
    "custserv_calls": True,
}

LABEL_COLUMN = "churn"
FEATURE_COLUMNS: tuple[str, ...] = (
    *NUMERIC_FEATURES,
    *YES_NO_COLUMNS,
    *(f"area_code_{code}" for code in AREA_CODES),
    *(f"state_{state}" for state in STATES),
)
"""Ordered model input columns (67); the output CSV is LABEL_COLUMN followed by these."""
FEATURE_COUNT = len(FEATURE_COLUMNS)
OUTPUT_COLUMNS: tuple[str, ...] = (LABEL_COLUMN, *FEATURE_COLUMNS)

# --- Arguments ----------------------------------------------------------------

REQUIRED_ARGS = ("S3_SOURCE", "S3_DEST")
OPTIONAL_ARGS = ("TRAIN_KEY", "VAL_KEY", "VALIDATION_FRACTION", "SEED", "JOB_NAME")
DEFAULT_TRAIN_KEY = "train/"
DEFAULT_VAL_KEY = "validation/"
DEFAULT_VALIDATION_FRACTION = 0.2
DEFAULT_SEED = 42

# Rows are assigned to validation by hashing them into this many buckets.
_SPLIT_BUCKETS = 1_000_000


class EtlError(Exception):
    """A failure the job should report as-is (bad input, bad arguments, I/O)."""


@dataclass(frozen=True)
class EtlArgs:
    source: str
    dest: str
    train_key: str = DEFAULT_TRAIN_KEY
    val_key: str = DEFAULT_VAL_KEY
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION
    seed: int = DEFAULT_SEED
    job_name: str | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> EtlArgs:
        """Build from Glue-style options ({"S3_SOURCE": ..., "SEED": "42", ...})."""
        for name in REQUIRED_ARGS:
            if _option(options, name) is None:
                raise EtlError(f"missing required argument --{name}")
        fraction_text = _option(options, "VALIDATION_FRACTION", DEFAULT_VALIDATION_FRACTION)
        seed_text = _option(options, "SEED", DEFAULT_SEED)
        try:
            fraction = float(fraction_text)
        except ValueError:
            raise EtlError(f"--VALIDATION_FRACTION must be a number, got {fraction_text!r}") from None
        try:
            seed = int(seed_text)
        except ValueError:
            raise EtlError(f"--SEED must be an integer, got {seed_text!r}") from None
        _check_fraction(fraction)
        train_key = str(_option(options, "TRAIN_KEY", DEFAULT_TRAIN_KEY))
        val_key = str(_option(options, "VAL_KEY", DEFAULT_VAL_KEY))
        _check_keys(train_key, val_key)
        return cls(
            source=str(options["S3_SOURCE"]),
            dest=str(options["S3_DEST"]),
            train_key=train_key,
            val_key=val_key,
            validation_fraction=fraction,
            seed=seed,
            job_name=_option(options, "JOB_NAME"),
        )

    @property
    def train_path(self) -> str:
        return join_uri(self.dest, self.train_key)

    @property
    def validation_path(self) -> str:
        return join_uri(self.dest, self.val_key)


def join_uri(prefix: str, key: str) -> str:
    """Join an output prefix and key with exactly one slash ("s3://b/out" + "train/")."""
    return prefix.rstrip("/") + "/" + key.lstrip("/")


def normalize_uri(uri: str, on_glue: bool) -> str:
    """Pick the S3 scheme the current runtime can open.

    Glue's native connector is s3://; stock Hadoop (local PySpark + hadoop-aws)
    only knows s3a://. Local paths and file:// URIs are returned unchanged.
    """
    if on_glue and uri.startswith("s3a://"):
        return "s3://" + uri[len("s3a://") :]
    if not on_glue and uri.startswith("s3://"):
        return "s3a://" + uri[len("s3://") :]
    return uri


def glue_available() -> bool:
    return importlib.util.find_spec("awsglue") is not None


def parse_options(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse ``--NAME value`` job arguments; unknown arguments are ignored.

    Uses awsglue's getResolvedOptions on Glue, argparse elsewhere. ``argv``
    excludes the program name (defaults to sys.argv[1:]).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if glue_available():
        from awsglue.utils import getResolvedOptions

        # getResolvedOptions treats every listed name as required, so only
        # list the optional ones that were actually passed.
        passed = [name for name in OPTIONAL_ARGS if _arg_passed(argv, name)]
        return dict(getResolvedOptions(["churn_etl.py", *argv], [*REQUIRED_ARGS, *passed]))

    parser = argparse.ArgumentParser(prog="churn_etl.py", allow_abbrev=False)
    for name in REQUIRED_ARGS:
        parser.add_argument(f"--{name}", required=True)
    for name in OPTIONAL_ARGS:
        parser.add_argument(f"--{name}")
    known, _unknown = parser.parse_known_args(argv)
    return {name: value for name, value in vars(known).items() if value is not None}


def parse_args(argv: Sequence[str] | None = None) -> EtlArgs:
    return EtlArgs.from_options(parse_options(argv))


def _arg_passed(argv: Sequence[str], name: str) -> bool:
    flag = f"--{name}"
    return any(token == flag or token.startswith(flag + "=") for token in argv)


def _option(options: Mapping[str, Any], name: str, default: Any = None) -> Any:
    # Explicit None/"" test so that e.g. SEED=0 is kept rather than replaced by the default.
    value = options.get(name)
    return default if value is None or value == "" else value


def _check_keys(train_key: str, val_key: str) -> None:
    # Overwriting one channel must never delete or nest inside the other.
    train, val = train_key.strip("/"), val_key.strip("/")
    if not train or not val or (train + "/").startswith(val + "/") or (val + "/").startswith(train + "/"):
        raise EtlError(
            f"--TRAIN_KEY and --VAL_KEY must be distinct, non-empty and not nested, got {train_key!r} and {val_key!r}"
        )


def _check_fraction(fraction: float) -> None:
    # Both channels must be non-empty for SageMaker training.
    if not 0.0 < fraction < 1.0:
        raise EtlError(f"validation fraction must be strictly between 0 and 1, got {fraction}")


# --- Read / transform / write ------------------------------------------------


@dataclass
class EtlResult:
    train_df: DataFrame
    validation_df: DataFrame
    rows_in: int
    rows_dropped: int
    rows_train: int
    rows_validation: int
    dropped_by_reason: dict[str, int]
    _checked_df: DataFrame = field(repr=False)

    def unpersist(self) -> None:
        """Release the cached intermediate frame behind train_df/validation_df."""
        self._checked_df.unpersist()


def raw_schema() -> T.StructType:
    fields = [T.StructField(name, T.StringType()) for name in RAW_COLUMNS]
    return T.StructType([*fields, T.StructField(CORRUPT_RECORD_COLUMN, T.StringType())])


def read_raw(spark: SparkSession, source: str) -> DataFrame:
    """Read the raw CSV with every column as a string.

    PERMISSIVE mode keeps short/long rows and flags them in _corrupt_record so
    they can be counted; enforceSchema=False makes Spark reject a file whose
    header names or order differ from RAW_COLUMNS instead of silently
    misaligning columns.
    """
    try:
        return (
            spark.read.schema(raw_schema())
            .option("header", True)
            .option("enforceSchema", False)
            .option("mode", "PERMISSIVE")
            .option("columnNameOfCorruptRecord", CORRUPT_RECORD_COLUMN)
            .csv(source)
        )
    except AnalysisException as err:
        if err.getErrorClass() == "PATH_NOT_FOUND":
            raise EtlError(f"source does not exist: {source}") from err
        raise EtlError(f"cannot read source {source}: {err}") from err
    except Py4JJavaError as err:
        raise EtlError(f"cannot read source {source}: {_java_error_summary(err)}") from err


def transform(
    raw_df: DataFrame,
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
    seed: int = DEFAULT_SEED,
    *,
    source_name: str = "input",
) -> EtlResult:
    """Validate, encode and split raw churn rows (as returned by read_raw).

    Malformed rows (wrong column count, bad label, non-numeric or non-finite
    numbers, fractional counts, unknown State/Area Code/plan values) are
    dropped and counted. The split hashes each raw row with ``seed``, so it is
    deterministic for a given input and seed regardless of partitioning, and
    a row keeps its side when later batches add rows.

    Raises EtlError (naming ``source_name``) when there are no rows at all or
    no valid rows.
    """
    _check_fraction(validation_fraction)
    cleaned = raw_df.select(
        *(_strip(raw_df[raw]).alias(name) for raw, name in RAW_COLUMNS.items()),
        _wrong_column_count(raw_df).alias("_wrong_column_count"),
        # Hashing every raw column also stops Spark from pruning unused CSV
        # columns, which would hide short rows from _corrupt_record.
        (_split_bucket(raw_df, seed) < validation_fraction * _SPLIT_BUCKETS).alias("_is_validation"),
    )

    numbers = {name: F.expr(f"try_cast({name} AS DOUBLE)") for name in NUMERIC_FEATURES}
    label_token = F.regexp_replace(F.lower(F.col("churn_raw")), r"\.$", "")
    state = F.upper(F.col("state"))
    drop_reason = (
        F.when(F.col("_wrong_column_count"), "wrong_column_count")
        .when(~label_token.isin(*TRUE_LABELS, *FALSE_LABELS) | label_token.isNull(), "bad_label")
        .when(~_all(_valid_number(numbers[n], whole) for n, whole in NUMERIC_FEATURES.items()), "bad_numeric")
        .when(
            ~_all(
                [
                    state.isin(*STATES),
                    F.col("area_code").isin(*AREA_CODES),
                    *(F.lower(F.col(name)).isin("yes", "no") for name in YES_NO_COLUMNS),
                ]
            ),
            "unknown_category",
        )
    )
    encoded = [
        label_token.isin(*TRUE_LABELS).cast("int").alias(LABEL_COLUMN),
        *(numbers[n].cast("long" if whole else "double").alias(n) for n, whole in NUMERIC_FEATURES.items()),
        *((F.lower(F.col(name)) == "yes").cast("int").alias(name) for name in YES_NO_COLUMNS),
        *((F.col("area_code") == code).cast("int").alias(f"area_code_{code}") for code in AREA_CODES),
        *((state == code).cast("int").alias(f"state_{code}") for code in STATES),
    ]
    # Cached: the counts below and both writes reuse one parse of the input.
    checked = cleaned.select(*encoded, drop_reason.alias("_drop_reason"), "_is_validation").cache()

    try:
        counts = checked.groupBy("_drop_reason", "_is_validation").count().collect()
    except Exception:
        checked.unpersist()
        raise
    rows_in = sum(row["count"] for row in counts)
    dropped_by_reason: dict[str, int] = {}
    rows_split = {True: 0, False: 0}
    for row in counts:
        if row["_drop_reason"] is None:
            rows_split[row["_is_validation"]] += row["count"]
        else:
            reason = row["_drop_reason"]
            dropped_by_reason[reason] = dropped_by_reason.get(reason, 0) + row["count"]
    rows_dropped = sum(dropped_by_reason.values())

    if rows_in == 0:
        checked.unpersist()
        raise EtlError(f"source {source_name} has no data rows (empty or header-only CSV)")
    if rows_dropped:
        LOG.warning(
            "dropped %d of %d rows from %s as malformed: %s",
            rows_dropped,
            rows_in,
            source_name,
            _format_reasons(dropped_by_reason),
        )
    if rows_dropped == rows_in:
        checked.unpersist()
        raise EtlError(
            f"source {source_name} has no valid rows: all {rows_in} rows are malformed "
            f"({_format_reasons(dropped_by_reason)})"
        )

    valid = checked.where(F.col("_drop_reason").isNull())
    return EtlResult(
        train_df=valid.where(~F.col("_is_validation")).select(*OUTPUT_COLUMNS),
        validation_df=valid.where(F.col("_is_validation")).select(*OUTPUT_COLUMNS),
        rows_in=rows_in,
        rows_dropped=rows_dropped,
        rows_train=rows_split[False],
        rows_validation=rows_split[True],
        dropped_by_reason=dropped_by_reason,
        _checked_df=checked,
    )


def write_csv(df: DataFrame, path: str) -> None:
    """Write one header-less CSV file under ``path`` (replacing what is there)."""
    try:
        (
            df.coalesce(1)  # datasets here are small; one file per channel is simplest
            .write.mode("overwrite")
            .option("header", False)
            # No zero-byte _SUCCESS object inside the training channel prefix.
            .option("mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")
            .csv(path)
        )
    except Py4JJavaError as err:
        raise EtlError(f"cannot write output {path}: {_java_error_summary(err)}") from err


def run(spark: SparkSession, args: EtlArgs | Mapping[str, Any]) -> dict[str, Any]:
    """Read S3_SOURCE, transform, write train/validation; return run statistics."""
    if not isinstance(args, EtlArgs):
        args = EtlArgs.from_options(args)
    LOG.info("reading %s", args.source)
    raw_df = read_raw(spark, args.source)
    try:
        result = transform(raw_df, args.validation_fraction, args.seed, source_name=args.source)
    except Py4JJavaError as err:  # e.g. header mismatch or I/O errors, raised when rows are read
        raise EtlError(f"cannot read source {args.source}: {_java_error_summary(err)}") from err

    for name, count in (("train", result.rows_train), ("validation", result.rows_validation)):
        if count == 0:
            LOG.warning("%s split is empty (%d valid rows in total)", name, result.rows_in - result.rows_dropped)
    try:
        write_csv(result.train_df, args.train_path)
        write_csv(result.validation_df, args.validation_path)
    finally:
        result.unpersist()

    stats = {
        "source": args.source,
        "train_path": args.train_path,
        "validation_path": args.validation_path,
        "rows_in": result.rows_in,
        "rows_dropped": result.rows_dropped,
        "dropped_by_reason": result.dropped_by_reason,
        "rows_train": result.rows_train,
        "rows_validation": result.rows_validation,
        "feature_count": FEATURE_COUNT,
    }
    LOG.info("churn ETL finished: %s", json.dumps(stats, sort_keys=True))
    return stats


# --- Column helpers -------------------------------------------------------------


def _strip(column: Column) -> Column:
    # F.trim only removes spaces; also drop tabs and stray \r.
    return F.regexp_replace(column, r"^\s+|\s+$", "")


def _wrong_column_count(raw_df: DataFrame) -> Column:
    if CORRUPT_RECORD_COLUMN in raw_df.columns:
        return raw_df[CORRUPT_RECORD_COLUMN].isNotNull()
    return F.lit(False)  # frames not read by read_raw have no corrupt-record column


def _split_bucket(raw_df: DataFrame, seed: int) -> Column:
    row_hash = F.xxhash64(*(raw_df[raw] for raw in RAW_COLUMNS), F.lit(seed).cast("long"))
    return F.pmod(row_hash, F.lit(_SPLIT_BUCKETS))


def _valid_number(value: Column, whole: bool) -> Column:
    # try_cast yields null for text and accepts "NaN"/"Infinity", so reject those too.
    finite = value.isNotNull() & ~F.isnan(value) & (F.abs(value) != float("inf"))
    return finite & (value == F.floor(value)) if whole else finite


def _all(conditions) -> Column:
    # A null (missing) value must count as invalid, not propagate as unknown.
    return functools.reduce(operator.and_, (F.coalesce(c, F.lit(False)) for c in conditions))


def _format_reasons(dropped_by_reason: Mapping[str, int]) -> str:
    return ", ".join(f"{reason}={count}" for reason, count in sorted(dropped_by_reason.items()))


def _java_error_summary(err: Py4JJavaError) -> str:
    """The innermost Java cause on one line, instead of a full JVM stack trace."""
    try:
        cause = err.java_exception
        while cause.getCause() is not None:
            cause = cause.getCause()
        message = cause.getMessage() or cause.toString()
    except Exception:  # noqa: BLE001 - JVM gone or odd exception object: fall back to the first line
        message = str(err).splitlines()[0]
    return " ".join(line.strip() for line in str(message).splitlines() if line.strip())


# --- Entry point ------------------------------------------------------------------


def _configure_logging() -> None:
    if not LOG.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        LOG.addHandler(handler)
        LOG.setLevel(logging.INFO)
        LOG.propagate = False


def _start_spark(options: Mapping[str, Any], on_glue: bool):
    """Return (spark, glue_job); glue_job is None outside Glue."""
    job_name = options.get("JOB_NAME") or "churn-etl"
    if on_glue:
        from awsglue.context import GlueContext
        from awsglue.job import Job
        from pyspark.context import SparkContext

        glue_context = GlueContext(SparkContext.getOrCreate())
        job = Job(glue_context)
        job.init(job_name, dict(options))
        return glue_context.spark_session, job
    # Off Glue (the local backend, tests): one machine, small data; no web UI to bind ports.
    spark = (
        SparkSession.builder.appName(job_name)
        .master(os.environ.get("SPARK_MASTER", "local[*]"))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .getOrCreate()
    )
    return spark, None


def main(argv: Sequence[str] | None = None) -> int:
    """Glue entry point. Returns a non-zero exit code locally on EtlError; on
    Glue the error is re-raised so the job run fails with its message."""
    _configure_logging()
    on_glue = glue_available()
    try:
        options = parse_options(argv)
        args = EtlArgs.from_options(options)
    except EtlError as err:
        LOG.error("churn ETL failed: %s", err)
        if on_glue:
            raise
        return 2
    args = replace(args, source=normalize_uri(args.source, on_glue), dest=normalize_uri(args.dest, on_glue))

    spark, job = _start_spark(options, on_glue)
    try:
        run(spark, args)
    except EtlError as err:
        LOG.error("churn ETL failed: %s", err)
        if job is not None:
            raise
        return 1
    finally:
        if job is None:
            spark.stop()
    if job is not None:
        job.commit()
    return 0


if __name__ == "__main__":
    exit_code = main()
    if exit_code:  # success falls through like any Glue script; only failures exit explicitly
        sys.exit(exit_code)
