"""Production mode refuses development defaults; services come from the environment."""

import os
import subprocess
import sys

PROBE = "import django; django.setup(); from django.conf import settings; print(settings.DATABASES['default']['HOST'])"


def run_settings(**env):
    full = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "ORTHANC_", "SPINEAGENT_"))}
    full.update(DJANGO_SETTINGS_MODULE="backend.settings", **env)
    return subprocess.run([sys.executable, "-c", PROBE], env=full, capture_output=True, text=True)


def test_production_refuses_defaults():
    result = run_settings(SPINEAGENT_ENV="production")
    assert result.returncode != 0
    for problem in ("DJANGO_SECRET_KEY", "ORTHANC_PASSWORD", "ORTHANC_WEBHOOK_SECRET"):
        assert problem in result.stderr


def test_production_refuses_debug():
    result = run_settings(SPINEAGENT_ENV="production", DJANGO_DEBUG="1", DJANGO_SECRET_KEY="x" * 50,
                          ORTHANC_PASSWORD="p", ORTHANC_WEBHOOK_SECRET="s")
    assert result.returncode != 0 and "DJANGO_DEBUG must be off" in result.stderr


def test_production_starts_with_real_settings():
    result = run_settings(SPINEAGENT_ENV="production", DJANGO_SECRET_KEY="x" * 50, ORTHANC_PASSWORD="p",
                          ORTHANC_WEBHOOK_SECRET="s", DATABASE_URL="postgres://u:p@db.internal:5432/spineagent")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "db.internal"
