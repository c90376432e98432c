"""Run-time settings of the operators, read from the environment (no import of the local emulator).

- ``RETRAINING_BACKEND``: ``aws``, ``local`` or ``auto`` (AWS when the stage's AWS connection
  exists, else the local backend).
- ``RETRAINING_LOCAL_CONN_ID``: the Airflow connection that points at a local AWS stand-in
  (default ``retraining_local``; its extra ``endpoint_url`` says where it listens).
"""

from __future__ import annotations

import os

BACKEND_SETTING = "RETRAINING_BACKEND"
LOCAL_CONN_SETTING = "RETRAINING_LOCAL_CONN_ID"
DEFAULT_LOCAL_CONN_ID = "retraining_local"
# Where the local backend listens when its connection does not say (`make run`'s default port).
DEFAULT_LOCAL_URL = "http://127.0.0.1:4599"


def local_conn_id() -> str:
    return os.environ.get(LOCAL_CONN_SETTING, "").strip() or DEFAULT_LOCAL_CONN_ID


def backend_choice() -> str:
    return os.environ.get(BACKEND_SETTING, "auto").strip().lower()
