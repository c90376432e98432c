"""The Step Functions view in the Airflow UI, and the console links on our operators' task instances.

Kept import-light: DAG files import ``retraining.links`` (through the operators), so nothing
here imports FastAPI, boto3 or the exporter at module level. The FastAPI app lives in
``stepfunctions_ui.app`` and is built on the API server's first request to it
(``plugins/stepfunctions_view.py`` registers it).
"""
