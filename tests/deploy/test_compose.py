"""docker/compose.yaml is valid and refuses to run without its secrets (no engine runs here: config only)."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker" / "compose.yaml"
EXAMPLE = ROOT / "docker" / "env.example"

needs_compose = pytest.mark.skipif(shutil.which("docker-compose") is None,
                                   reason="docker-compose not installed (scripts/test.sh installs it)")


def _docker_compose_v2() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0


needs_compose_v2 = pytest.mark.skipif(not _docker_compose_v2(), reason="the docker compose v2 plugin is not installed")
SECRETS = ("DJANGO_SECRET_KEY", "POSTGRES_PASSWORD", "ORTHANC_PASSWORD", "ORTHANC_GATEWAY_PASSWORD",
           "ORTHANC_DB_PASSWORD", "ORTHANC_WEBHOOK_SECRET")


def compose(*args, env_file=None):
    cmd = ["docker-compose", "-f", str(COMPOSE)] + (["--env-file", str(env_file)] if env_file else []) + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={"PATH": "/usr/bin:/bin"})


@needs_compose
def test_compose_config_is_valid_with_all_secrets():
    result = compose("config", "-q", env_file=EXAMPLE)
    assert result.returncode == 0, result.stderr


@needs_compose
def test_compose_refuses_missing_secrets(tmp_path):
    partial = tmp_path / "partial.env"
    partial.write_text("\n".join(l for l in EXAMPLE.read_text().splitlines() if not l.startswith("ORTHANC_PASSWORD")))
    result = compose("config", "-q", env_file=partial)
    assert result.returncode != 0 and "ORTHANC_PASSWORD" in result.stderr


def test_services_and_isolation():
    spec = yaml.safe_load(COMPOSE.read_text())
    services = spec["services"]
    assert {"postgres", "redis", "orthanc", "web", "worker-inference", "worker-training", "worker-default",
            "nginx"} <= set(services)
    # Orthanc's HTTP API is reachable only inside the deployment (through our gateway), DICOM port published.
    assert services["orthanc"]["ports"] == ["${DICOM_BIND:-0.0.0.0}:${DICOM_PORT:-4242}:4242"]
    for name in ("worker-inference", "worker-training"):
        devices = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["capabilities"] == ["gpu"]
    assert "inference" in services["worker-inference"]["command"]
    assert "training" in services["worker-training"]["command"]


@needs_compose_v2
def test_compose_v2_config_is_valid_with_all_secrets():
    result = subprocess.run(["docker", "compose", "-f", str(COMPOSE), "--env-file", str(EXAMPLE), "config", "-q"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_secrets_have_no_defaults():
    """Every secret is required (${VAR:?...}); none may fall back to a value written in the file."""
    text = COMPOSE.read_text()
    for name in SECRETS:
        uses = re.findall(r"\$\{" + name + r"([^}]*)\}", text)
        assert uses, f"{name} is not used"
        assert all(use.startswith(":?") for use in uses), f"{name} has a default or is optional: {uses}"
    assert set(SECRETS) <= {line.split("=")[0] for line in EXAMPLE.read_text().splitlines() if "=" in line}


def test_app_processes_share_one_configuration_in_production_mode():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    app = ("migrate", "web", "beat", "worker-default", "worker-inference", "worker-training")
    envs = [services[name]["environment"] for name in app]
    assert all(env == envs[0] for env in envs), "every app process must see the same database, broker and Orthanc"
    assert envs[0]["SPINEAGENT_ENV"] == "production"
    assert envs[0]["CELERY_BROKER_URL"].startswith("redis://redis:")
    assert services["worker-default"]["command"][services["worker-default"]["command"].index("-Q") + 1] == "default"
    for name in ("worker-inference", "worker-training"):
        device = services[name]["deploy"]["resources"]["reservations"]["devices"][0]
        assert device["driver"] == "nvidia" and device["count"] == 1
        assert "--pool" in services[name]["command"] and "solo" in services[name]["command"]  # one job per GPU
    assert services["redis"]["command"][-2:] == ["--appendonly", "yes"]  # queued jobs survive a Redis restart


def test_orthanc_has_dicomweb_and_postgres_index_and_no_public_http():
    config = json.loads((ROOT / "docker" / "orthanc" / "orthanc.json").read_text())
    plugins = " ".join(config["Plugins"])
    assert "libOrthancDicomWeb.so" in plugins and "libOrthancPostgreSQLIndex.so" in plugins
    assert config["PostgreSQL"]["EnableIndex"] is True and config["DicomWeb"]["Enable"] is True
    assert config["AuthenticationEnabled"] is True
    nginx = (ROOT / "docker" / "nginx" / "nginx.conf").read_text()
    assert re.search(r"location / \{[^}]*proxy_pass http://spineagent_web", nginx)
    # nginx reaches Orthanc in one place only: the fast image path, behind Django's decision (auth_request),
    # with the path the grammar rebuilt, the client's own headers dropped and the gateway's confined account.
    assert nginx.count("orthanc:8042") == 1 and "upstream spineagent_orthanc { server orthanc:8042;" in nginx
    to_orthanc = re.findall(r"location ([^{]+)\{((?:[^{}]|\{[^}]*\})*)\}", nginx)
    to_orthanc = [(where.strip(), body) for where, body in to_orthanc if "spineagent_orthanc" in body]
    assert [where for where, _ in to_orthanc] == ["/dicom-web/"]
    body = to_orthanc[0][1]
    assert "auth_request /_dicomweb_decision;" in body and "error_page 401 403 = @web;" in body
    assert "proxy_pass http://spineagent_orthanc/dicom-web/$dicomweb_upstream$is_args$args;" in body
    assert "proxy_pass_request_headers off;" in body and "orthanc-gateway-auth.conf" in body
    assert re.search(r"location = /_dicomweb_decision \{\s*internal;", nginx)
    assert "location /internal/ { return 404; }" in nginx
    script = (ROOT / "docker" / "nginx" / "orthanc-gateway-auth.sh").read_text()
    assert "ORTHANC_GATEWAY_PASSWORD:?" in script and "umask 077" in script
    assert "orthanc-gateway-auth.sh /docker-entrypoint.d/" in (ROOT / "docker" / "nginx" / "Dockerfile").read_text()
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert services["nginx"]["environment"]["ORTHANC_GATEWAY_USERNAME"] == \
        services["orthanc"]["environment"]["ORTHANC_GATEWAY_USERNAME"]


def test_orthanc_refuses_strangers_and_confines_the_gateway():
    """C-STORE only from registered modalities (issue 17); the plugin that registers them and confines the
    gateway's account is loaded; the gateway's account is a user of its own, not the backend's."""
    config = json.loads((ROOT / "docker" / "orthanc" / "orthanc.json").read_text())
    assert (config["DicomAlwaysAllowStore"], config["DicomAlwaysAllowEcho"]) == (False, False)
    assert config["DicomCheckCalledAet"] is True and config["DicomCheckModalityHost"] is True
    assert "DicomModalities" not in config  # the plugin registers them from SPINEAGENT_DICOM_MODALITIES
    assert config["PythonScript"] == "/etc/spineagent/orthanc_plugin.py"
    assert "/etc/spineagent/orthanc_plugin.py" in (ROOT / "docker" / "orthanc" / "Dockerfile").read_text()
    assert set(config["RegisteredUsers"]) == {"${ORTHANC_USERNAME}", "${ORTHANC_GATEWAY_USERNAME}"}
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    orthanc_env, web_env = services["orthanc"]["environment"], services["web"]["environment"]
    assert orthanc_env["SPINEAGENT_GATEWAY_USER"] == orthanc_env["ORTHANC_GATEWAY_USERNAME"] \
        == web_env["ORTHANC_GATEWAY_USERNAME"] != web_env["ORTHANC_USERNAME"]
    assert "SPINEAGENT_DICOM_MODALITIES" in orthanc_env


def test_nginx_serves_the_viewer_with_the_settings_csp():
    """nginx answers /viewer/ files itself: it must send the same Content-Security-Policy as Django does."""
    from django.conf import settings

    nginx = (ROOT / "docker" / "nginx" / "nginx.conf").read_text()
    policies = re.findall(r'add_header Content-Security-Policy "([^"]+)" always;', nginx)
    assert policies and set(policies) == {settings.SPINEAGENT_CSP_VIEWER}
