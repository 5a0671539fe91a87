"""The e2e tests reuse the backend suite's real-service fixtures (Orthanc, users, Celery workers, uploads)."""

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("_backend_fixtures", Path(__file__).parents[1] / "backend" / "conftest.py")
_backend = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_backend)

services = _backend.services
orthanc = _backend.orthanc
users = _backend.users
client_for = _backend.client_for
upload = _backend.upload
phantom_files = _backend.phantom_files
active_model = _backend.active_model
start_worker = _backend.start_worker
wait_until = _backend.wait_until


@pytest.fixture
def password() -> str:
    """The password of every user the ``users`` fixture makes."""
    return _backend.PASSWORD
