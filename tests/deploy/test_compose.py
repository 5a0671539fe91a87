"""docker/compose.yaml is valid and refuses to run without its secrets (no engine runs here: config only)."""

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
    assert services["orthanc"]["ports"] == ["${DICOM_PORT:-4242}:4242"]
    for name in ("worker-inference", "worker-training"):
        devices = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["capabilities"] == ["gpu"]
    assert "inference" in services["worker-inference"]["command"]
    assert "training" in services["worker-training"]["command"]
