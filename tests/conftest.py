"""Session-wide test setup: a fixed live-server port (Orthanc's plugin calls it) and an isolated broker DB."""

import os

from backend.devstack.services import free_port

# Tests publish to and consume from their own Redis database, never the demo's.
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_configure(config):
    from django.conf import settings

    # Password hashing strength is not under test; PBKDF2 would cost seconds per test on 2 cores.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    if hasattr(config.option, "liveserver") and not config.option.liveserver:
        config.option.liveserver = f"127.0.0.1:{free_port()}"
