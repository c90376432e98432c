"""A DAG file that fails to import: the loader must name this file."""

from airflow.sdk import DAG

from retraining import NoSuchOperator  # noqa: F401  (deliberate ImportError)

with DAG(dag_id="never_loaded", schedule=None) as dag:
    pass
