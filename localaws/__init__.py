"""The local backend: AWS's Glue, SageMaker and Lambda APIs answered on 127.0.0.1, doing the real work.

The operators, the Lambda handler and the DAG are the same code against AWS
and against this backend: they reach it through an Airflow connection whose
``endpoint_url`` points here (SageMaker local mode's idea, without Docker).

- object store: ``s3://bucket/key`` ↔ ``<data dir>/s3/bucket/key``
- Glue ``StartJobRun`` runs ``glue/<job_name>.py`` with local PySpark
- SageMaker training with the built-in XGBoost image trains with ``xgboost``
- Lambda ``Invoke`` runs ``lambda/<function_name>.py``'s ``lambda_handler``
- models, endpoint configs and endpoints live in SQLite; endpoints serve on
  ``POST /endpoints/{name}/invocations``

Heavy libraries (xgboost, pyspark) are imported only where the work happens.
"""
