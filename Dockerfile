# The project's Airflow image: the stock image plus requirements.txt, pinned by constraints.txt.
# Every service in docker-compose.yml runs this one image. See docs/docker-compose.md.
#
# The base image's Airflow version must equal the apache-airflow== pin in requirements.txt
# and constraints.txt (tests/test_docker_compose.py checks it); pip refuses to build otherwise,
# because apache-airflow==${AIRFLOW_VERSION} (set by the base image) is installed alongside them.
FROM apache/airflow:3.3.2-python3.11

COPY --chown=airflow:0 requirements.txt constraints.txt /opt/airflow/project/

RUN pip install --no-cache-dir \
        "apache-airflow==${AIRFLOW_VERSION}" \
        -r /opt/airflow/project/requirements.txt \
        -c /opt/airflow/project/constraints.txt \
    && python -c "import airflow, sys; sys.exit(airflow.__version__ != '${AIRFLOW_VERSION}')"

# Holds the Simple auth manager's passwords file on a named volume (seeded by airflow-init).
# Created here so the volume starts owned by the airflow user.
RUN mkdir -p /opt/airflow/auth
