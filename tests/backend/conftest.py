"""Real services for backend tests: Orthanc (own process, own port and storage), PostgreSQL, Redis,
and Celery workers as subprocesses. Nothing here is faked."""

from __future__ import annotations

import contextlib
import functools
import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis
import requests
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test.utils import override_settings

from backend.accounts.roles import ROLES, sync_role_groups
from backend.devstack.services import (OrthancProcess, OrthancSettings, ensure_postgres, ensure_redis, free_port,
                                       orthanc_plugins_available, wait_for)

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "test-password-123"


@pytest.fixture(scope="session")
def services():
    ensure_postgres()
    ensure_redis()
    redis.Redis.from_url(os.environ["CELERY_BROKER_URL"]).flushdb()


def _start_orthanc(data_dir: Path, **kw) -> OrthancProcess:
    if not orthanc_plugins_available():
        pytest.fail("Orthanc with its DICOMweb and Python plugins is required: run scripts/setup.sh")
    return OrthancProcess(OrthancSettings(data_dir=data_dir, http_port=free_port(), dicom_port=free_port(),
                                          password="test-orthanc-secret", gateway_password="test-gateway-secret",
                                          **kw)).start()


@contextlib.contextmanager
def _backend_uses(proc: OrthancProcess):
    with override_settings(ORTHANC_URL=proc.settings.url, ORTHANC_USERNAME=proc.settings.username,
                           ORTHANC_PASSWORD=proc.settings.password,
                           ORTHANC_GATEWAY_USERNAME=proc.settings.gateway_username,
                           ORTHANC_GATEWAY_PASSWORD=proc.settings.gateway_password):
        yield proc


@pytest.fixture(scope="session")
def orthanc(services, tmp_path_factory):
    """The shared test Orthanc. It announces nothing, so no background event can touch a test's rows."""
    proc = _start_orthanc(tmp_path_factory.mktemp("orthanc"), announce=False)
    with _backend_uses(proc):
        yield proc
    proc.stop()


@pytest.fixture
def announcing_orthanc(services, tmp_path, live_server):
    """An Orthanc of its own whose Python plugin announces stable studies to the live test server."""
    proc = _start_orthanc(tmp_path / "orthanc", stable_age=1, webhook_secret=settings.ORTHANC_WEBHOOK_SECRET,
                          webhook_url=f"{live_server.url}/api/orthanc/stable-study")
    with _backend_uses(proc):
        yield proc
    proc.stop()


class OrthancAdmin:
    """Direct access to the test Orthanc, as a reference and for assertions."""

    def __init__(self, proc: OrthancProcess):
        self.url = proc.settings.url
        self.auth = (proc.settings.username, proc.settings.password)

    def get(self, path: str, **kw):
        return requests.get(self.url + path, auth=self.auth, timeout=30, **kw)

    def count_instances(self) -> int:
        return self.get("/statistics").json()["CountInstances"]

    def post_instance(self, data: bytes) -> dict:
        r = requests.post(self.url + "/instances", data=data, auth=self.auth, timeout=30)
        r.raise_for_status()
        return r.json()

    def has_study(self, study_uid: str) -> bool:
        r = requests.post(self.url + "/tools/lookup", data=study_uid, auth=self.auth, timeout=30)
        return any(m["Type"] == "Study" for m in r.json())


@pytest.fixture
def orthanc_admin(orthanc) -> OrthancAdmin:
    return OrthancAdmin(orthanc)


@pytest.fixture
def announcing_orthanc_admin(announcing_orthanc) -> OrthancAdmin:
    return OrthancAdmin(announcing_orthanc)


@pytest.fixture
def users(db):
    sync_role_groups()
    made = {}
    for role in ROLES:
        user = User.objects.create_user(role, password=PASSWORD)
        user.groups.add(Group.objects.get(name=role))
        made[role] = user
    made["nobody"] = User.objects.create_user("nobody", password=PASSWORD)
    return made


@pytest.fixture
def readers(users):
    """Two radiologists (r1 = the ``radiologist`` user, r2 a second one) for per-reader figures."""
    second = User.objects.create_user("radiologist2", password="x")
    second.groups.add(Group.objects.get(name="radiologist"))
    return {"r1": users["radiologist"], "r2": second}


@pytest.fixture
def client_for(users):
    """client_for("radiologist") -> a DRF APIClient logged in with a session."""
    from rest_framework.test import APIClient

    def make(role: str | None) -> APIClient:
        client = APIClient()
        if role:
            client.force_login(users[role])
        return client

    return make


@functools.lru_cache(maxsize=32)
def _phantom_study_files(seed: int, index: int = 0) -> tuple[tuple[str, bytes], ...]:
    return tuple(_phantom_files(seed, index))


def _phantom_files(seed: int, index: int = 0, **config) -> list[tuple[str, bytes]]:
    """A phantom study as (name, Part-10 bytes) pairs."""
    import pydicom
    import spine_phantom

    study = spine_phantom.generate_study(seed=seed, index=index,
                                         config=spine_phantom.PhantomConfig(**config) if config else None)
    files = []
    for s, series in enumerate(study.series):
        for n, ds in enumerate(series.datasets()):
            buffer = io.BytesIO()
            pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
            files.append((f"{s:02d}_{series.sequence}_{n:03d}.dcm", buffer.getvalue()))
    return files


def _upload(client, files: list[tuple[str, bytes]]):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post("/api/studies/upload",
                       {"files": [SimpleUploadedFile(name, data, "application/dicom") for name, data in files]},
                       format="multipart")


class Worker:
    """A real Celery worker subprocess on the test database and the test broker."""

    def __init__(self, env: dict, name: str, queues: str = "inference,default"):
        log = open(ROOT / "var" / f"test-{name}.log", "ab") if (ROOT / "var").is_dir() else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "backend", "worker", "-Q", queues, "-c", "1",
             "--pool", "solo", "-n", f"{name}@%h", "-l", "INFO", "--without-gossip", "--without-mingle",
             "--without-heartbeat"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def signal(self, sig) -> None:
        os.killpg(self.process.pid, sig)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.process.wait()


@pytest.fixture
def start_worker(orthanc, transactional_db):
    db = connection.settings_dict
    env = dict(os.environ,
               DATABASE_URL=f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
               ORTHANC_URL=orthanc.settings.url, ORTHANC_PASSWORD=orthanc.settings.password,
               ORTHANC_GATEWAY_PASSWORD=orthanc.settings.gateway_password,
               CELERY_VISIBILITY_TIMEOUT="4", DJANGO_SETTINGS_MODULE="backend.settings", PYTHONUNBUFFERED="1")
    redis.Redis.from_url(os.environ["CELERY_BROKER_URL"]).flushdb()  # no messages left by earlier tests
    started: list[Worker] = []

    def start(name: str = "w1", queues: str = "inference,default") -> Worker:
        worker = Worker(env, name, queues)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def _wait_until(predicate, timeout: float = 60, what: str = "condition"):
    wait_for(predicate, what, timeout=timeout, interval=0.25)


def default_model_path() -> str:
    """The shipped phantom-trained bundle: backend tests run the real model, never a placeholder."""
    bundle = Path(settings.SPINEAGENT_DEFAULT_BUNDLE)
    assert (bundle / "manifest.json").is_file(), f"default model bundle missing: {bundle}"
    return str(bundle)


@pytest.fixture
def data_dir(monkeypatch, settings, tmp_path):
    """SPINEAGENT_DATA_DIR (candidate bundles, ...) in this test's tmp dir, here and in workers started after."""
    path = tmp_path / "data"
    monkeypatch.setenv("SPINEAGENT_DATA_DIR", str(path))
    settings.DATA_DIR = path
    return path


@pytest.fixture
def active_model(db):
    from backend.inference.registry import register_bundle

    return register_bundle(default_model_path(), state="active")


def _testdata_file(name: str) -> bytes:
    from pydicom.data import get_testdata_file

    return Path(get_testdata_file(name)).read_bytes()


# The helpers above as fixtures (tests import nothing from conftest).
@pytest.fixture
def phantom_files():
    return lambda seed, index=0, **config: _phantom_files(seed, index, **config) if config else \
        list(_phantom_study_files(seed, index))


@pytest.fixture
def upload():
    return _upload


@pytest.fixture
def wait_until():
    return _wait_until


@pytest.fixture
def testdata_file():
    return _testdata_file
