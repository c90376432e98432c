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

Safe to leave running (``paths``, ``server``, ``serving``, ``workers``):

- every local path comes from ``paths``: S3 URIs, Glue job and Lambda function names are
  checked against AWS's naming rules, resolved after symlinks and confined to the data
  directory (or ``glue/``, ``lambda/``); anything else is AWS's 400/403, never a file access
- only ``Host: 127.0.0.1:<port>``/``localhost:<port>`` is answered; cross-origin POSTs and
  CORS preflights are refused; every body is capped; every request is validated before a
  record is written
- endpoint status changes are compare-and-set transitions in SQLite; a model that fails to
  load in any way leaves the old one serving (update) or the endpoint Failed (create)
- workers run in their own process group and die with the backend; one backend per data
  directory (a lock taken before recovery); a recovered state is never overwritten by a late worker
- large invocation bodies are parsed in worker processes, so ``/ping`` and one-row requests stay fast

Heavy libraries (xgboost, pyspark) are imported only where the work happens.
"""
