"""A stage whose request is far longer than Airflow's ``[core] max_templated_field_length`` (4096).

Airflow stores template fields longer than that truncated ("Truncated. You can change this
behaviour in ..."): the exporter reads our operators' requests from ``retraining_export``
instead, which Airflow keeps whole, so the export has every argument.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param

from retraining import Format, GlueJobRunOperator, ParamRef

# 120 arguments of ~60 characters: about 9 KB of request.
ARGUMENTS = {f"--feature_{i:03d}": f"feature-store/churn/v2/features/feature_{i:03d}.parquet" for i in range(120)}

with DAG(
    dag_id="long_request",
    schedule=None,
    params={"run_label": Param("nightly", type="string")},
) as long_request:
    GlueJobRunOperator(
        task_id="etl",
        job_name="churn-etl",
        script_arguments={
            **ARGUMENTS,
            "--RUN_LABEL": ParamRef("run_label"),
            "--TRAIN": Format("{}-train", ParamRef("run_label")),
        },
    )
