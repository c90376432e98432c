"""docker-compose.yml and Dockerfile: the multi-process Airflow setup is wired as documented.

No Docker engine is needed: the files are parsed (PyYAML resolves the
``x-airflow-common`` anchors and ``<<`` merges the way Compose does) and their
behaviour-relevant values are checked.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

AIRFLOW_SERVICES = {
    "airflow-init": None,
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
}
LONG_RUNNING = [name for name, command in AIRFLOW_SERVICES.items() if command]

_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<default>[^}]*))?\}")


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Compose's ``${VAR}`` / ``${VAR:-default}`` substitution (``$$`` is a literal ``$``)."""
    env = {} if env is None else env

    def substitute(match: re.Match) -> str:
        name, op, default = match["name"], match["op"], match["default"]
        if name in env and (env[name] or op not in (":-", ":?")):
            return env[name]
        if op in (":-", "-"):
            return default
        if op in (":?", "?"):
            raise KeyError(f"{name} is required: {default}")
        return ""

    return _INTERPOLATION.sub(substitute, value.replace("$$", "\0")).replace("\0", "$")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return DOCKERFILE.read_text()


def _env(service: dict) -> dict:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "environment must be a mapping (it is merged from x-airflow-common)"
    return env


def _pin(requirements: Path, package: str) -> str:
    for line in requirements.read_text().splitlines():
        match = re.match(rf"^{re.escape(package)}==([^\s;#]+)", line.strip(), re.IGNORECASE)
        if match:
            return match.group(1)
    raise AssertionError(f"no {package}== pin in {requirements.name}")


def _command(service: dict) -> list[str]:
    command = service.get("command")
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def test_every_service_is_defined(services):
    assert {"postgres", *AIRFLOW_SERVICES} <= set(services)


@pytest.mark.parametrize("name,subcommand", [(n, c) for n, c in AIRFLOW_SERVICES.items() if c])
def test_each_component_runs_its_airflow_command(services, name, subcommand):
    assert _command(services[name]) == [subcommand]


def test_all_airflow_services_run_one_image_built_from_the_dockerfile(services):
    images = {services[name].get("image") for name in AIRFLOW_SERVICES}
    builds = {yaml.safe_dump(services[name].get("build"), sort_keys=True) for name in AIRFLOW_SERVICES}
    assert len(images) == 1 and None not in images, f"airflow services use different images: {images}"
    assert len(builds) == 1, "airflow services are built differently"
    build = services["airflow-init"]["build"]
    context = ROOT / build.get("context", ".")
    assert (context / build.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE


def test_project_code_is_mounted_into_every_airflow_service(services):
    wanted = {"./dags": "/opt/airflow/dags", "./plugins": "/opt/airflow/plugins"}
    for name in AIRFLOW_SERVICES:
        mounts = {}
        for volume in services[name].get("volumes", []):
            source, target = volume.split(":")[:2]
            mounts[source] = target
        for source, target in wanted.items():
            assert mounts.get(source) == target, f"{name}: {source} not mounted at {target}"
            assert (ROOT / source).is_dir()


def test_local_executor_and_examples_off(services):
    for name in AIRFLOW_SERVICES:
        env = _env(services[name])
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor", name
        assert str(env["AIRFLOW__CORE__LOAD_EXAMPLES"]).lower() == "false", name


def test_metadata_db_is_the_postgres_service(services):
    postgres_env = {k: interpolate(str(v)) for k, v in _env(services["postgres"]).items()}
    for name in AIRFLOW_SERVICES:
        url = urlsplit(interpolate(_env(services[name])["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]))
        assert url.scheme.startswith("postgresql"), url.scheme
        assert url.hostname == "postgres" and "postgres" in services
        assert (url.port or 5432) == 5432
        assert url.username == postgres_env["POSTGRES_USER"]
        assert url.password == postgres_env["POSTGRES_PASSWORD"]
        assert url.path.lstrip("/") == postgres_env["POSTGRES_DB"]


def test_db_credentials_follow_the_env_overrides(services):
    # One variable changes both ends: the Postgres server and Airflow's URL.
    env = {"POSTGRES_USER": "u1", "POSTGRES_PASSWORD": "p@ss", "POSTGRES_DB": "meta"}
    url = interpolate(_env(services["airflow-scheduler"])["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], env)
    assert url.endswith("u1:p@ss@postgres:5432/meta")
    assert interpolate(_env(services["postgres"])["POSTGRES_PASSWORD"], env) == "p@ss"


def test_components_share_the_api_server_and_its_secrets(services):
    apiserver_port = services["airflow-apiserver"]["ports"]
    container_port = int(interpolate(str(apiserver_port[0])).rsplit(":", 1)[-1])
    for name in AIRFLOW_SERVICES:
        env = _env(services[name])
        url = urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
        assert url.hostname == "airflow-apiserver" and url.port == container_port and url.path == "/execution/"
        assert (
            env["AIRFLOW__API_AUTH__JWT_SECRET"] == _env(services["airflow-apiserver"])["AIRFLOW__API_AUTH__JWT_SECRET"]
        )
        assert "simple_auth_manager" in env["AIRFLOW__CORE__AUTH_MANAGER"].lower()


def test_auth_manager_is_importable_here():
    from airflow.configuration import conf

    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    configured = _env(compose["services"]["airflow-apiserver"])["AIRFLOW__CORE__AUTH_MANAGER"]
    module, _, cls = configured.rpartition(".")
    assert getattr(__import__(module, fromlist=[cls]), cls)
    # Airflow's own default, so the image needs no extra provider for it.
    assert conf.get_default_value("core", "auth_manager") == configured


def test_apiserver_port_is_published_on_loopback_only(services):
    ports = [interpolate(str(p)) for p in services["airflow-apiserver"].get("ports", [])]
    assert ports == ["127.0.0.1:8080:8080"]
    published = interpolate(str(services["airflow-apiserver"]["ports"][0]), {"AIRFLOW_API_PORT": "9090"})
    assert published == "127.0.0.1:9090:8080"


def test_no_service_publishes_a_port_beyond_loopback(services):
    for name, service in services.items():
        for port in service.get("ports") or []:
            if isinstance(port, dict):  # long syntax
                assert port.get("host_ip") == "127.0.0.1", (name, port)
                continue
            host_ip = interpolate(str(port)).rsplit(":", 2)
            assert len(host_ip) == 3 and host_ip[0] == "127.0.0.1", (name, port)
    assert "ports" not in services["postgres"]


@pytest.mark.parametrize(
    ("service", "key", "variable"),
    [
        ("airflow-init", "_AIRFLOW_WWW_USER_PASSWORD", "_AIRFLOW_WWW_USER_PASSWORD"),
        ("airflow-apiserver", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW_JWT_SECRET"),
        ("airflow-scheduler", "AIRFLOW__API__SECRET_KEY", "AIRFLOW_API_SECRET_KEY"),
    ],
)
def test_login_and_signing_secrets_have_no_default(services, service, key, variable):
    """Compose refuses to start (``${VAR:?message}``) until the operator sets them; the message names the fix."""
    value = _env(services[service])[key]
    for unset in ({}, {variable: ""}):
        with pytest.raises(KeyError, match=rf"{variable} is required: .*\.env\.example"):
            interpolate(value, unset)
    assert interpolate(value, {variable: "chosen-by-the-operator"}) == "chosen-by-the-operator"


def test_env_example_leaves_every_required_secret_for_the_operator_to_set():
    """Copied unchanged, .env.example sets no login or secret: compose then refuses to start."""
    example = dict(
        line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines() if re.match(r"^[A-Z_]+=", line)
    )
    required = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):\?", COMPOSE_FILE.read_text()))
    assert required == {"_AIRFLOW_WWW_USER_PASSWORD", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY"}
    for variable in required:
        assert example.get(variable, "") == "", variable


def test_startup_order_waits_for_db_and_init(services):
    init_deps = services["airflow-init"]["depends_on"]
    assert init_deps == {"postgres": {"condition": "service_healthy"}}
    for name in LONG_RUNNING:
        deps = services[name]["depends_on"]
        assert deps["postgres"] == {"condition": "service_healthy"}, name
        assert deps["airflow-init"] == {"condition": "service_completed_successfully"}, name
    for name in ("airflow-scheduler", "airflow-triggerer"):
        assert services[name]["depends_on"]["airflow-apiserver"] == {"condition": "service_healthy"}
    assert "healthcheck" in services["postgres"]
    for name in LONG_RUNNING:
        test = services[name]["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name


def test_init_migrates_and_seeds_the_admin_user(services):
    script = "\n".join(_command(services["airflow-init"]))
    assert re.search(r"^airflow db migrate$", script, re.MULTILINE)
    assert "set -e" in script
    env = _env(services["airflow-init"])
    assert interpolate(env["_AIRFLOW_WWW_USER_PASSWORD"], {"_AIRFLOW_WWW_USER_PASSWORD": "s3cret"}) == "s3cret"
    users = interpolate(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"])
    assert users == f"{interpolate(env['_AIRFLOW_WWW_USER_USERNAME'])}:admin"
    # The passwords file lives on a volume the API server also mounts.
    passwords = env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
    for name in ("airflow-init", "airflow-apiserver"):
        targets = [v.split(":")[1] for v in services[name]["volumes"]]
        assert any(passwords.startswith(t.rstrip("/") + "/") for t in targets), name


def test_seeding_script_writes_the_password_file(services, tmp_path):
    script = "\n".join(_command(services["airflow-init"])[2:])
    python = script.split("<<'PY'\n", 1)[1].split("\nPY", 1)[0]
    path = tmp_path / "passwords.json"
    path.write_text('{"other": "x"}\n')
    env = {
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(path),
        "_AIRFLOW_WWW_USER_USERNAME": "airflow",
        "_AIRFLOW_WWW_USER_PASSWORD": "pw",
    }
    old = dict(os.environ)
    os.environ.update(env)
    try:
        exec(compile(python, "airflow-init", "exec"), {})
    finally:
        os.environ.clear()
        os.environ.update(old)
    import json

    assert json.loads(path.read_text()) == {"other": "x", "airflow": "pw"}
    assert path.stat().st_mode & 0o077 == 0


def test_no_aws_secrets_in_the_files(compose, services):
    text = COMPOSE_FILE.read_text() + DOCKERFILE.read_text()
    assert not re.search(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b", text), "an AWS access key id is in the file"
    assert not re.search(r"(?i)aws_secret_access_key|aws_session_token|aws_access_key_id", text)
    for name, service in services.items():
        env = _env(service)
        # The connection is passed through from the user's shell, never given a value here.
        if "AIRFLOW_CONN_AWS_DEFAULT" in env:
            assert env["AIRFLOW_CONN_AWS_DEFAULT"] is None, name
        for key, value in env.items():
            secret = re.search(r"SECRET|PASSWORD|FERNET|_CONN$|SQL_ALCHEMY_CONN", key) and not key.endswith("_FILE")
            if secret and value is not None:
                assert "${" in str(value), f"{name}: {key} is hard-coded; take it from ${{VAR:-default}}"
    assert "AIRFLOW_CONN_AWS_DEFAULT" in _env(services["airflow-scheduler"])  # where tasks run


def test_dockerfile_installs_requirements_with_constraints(dockerfile):
    run = " ".join(re.findall(r"^RUN (.*?)(?<!\\)$", dockerfile.replace("\\\n", " "), re.MULTILINE | re.DOTALL))
    assert re.search(r"pip install\b", run)
    assert re.search(r"-r\s+\S*requirements\.txt\b", run)
    assert re.search(r"-c\s+\S*constraints\.txt\b", run)
    copies = " ".join(re.findall(r"^COPY (.*)$", dockerfile, re.MULTILINE))
    assert "requirements.txt" in copies and "constraints.txt" in copies


def test_dockerfile_base_image_matches_the_airflow_pin_and_python(dockerfile):
    bases = re.findall(r"^FROM\s+(\S+)", dockerfile, re.MULTILINE)
    assert len(bases) == 1, bases
    match = re.fullmatch(r"apache/airflow:(?P<airflow>\d+\.\d+\.\d+)-python(?P<python>\d+\.\d+)", bases[0])
    assert match, f"base image {bases[0]} is not apache/airflow:<version>-python<x.y>"
    assert match["airflow"] == _pin(ROOT / "requirements.txt", "apache-airflow")
    assert match["airflow"] == _pin(ROOT / "constraints.txt", "apache-airflow")
    assert match["python"] == "3.11"
