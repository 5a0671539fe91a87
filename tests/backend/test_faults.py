"""Fault tests with real processes: Orthanc, Redis and PostgreSQL go away while the system is in use.

Each service that a test stops is a private instance of its own (own port, own data directory): the
shared PostgreSQL and Redis that other test runs use are never touched. What each scenario guarantees,
and which test shows it, is written up in docs/reliability.md. The worker killed mid-job is
tests/backend/test_jobs.py::test_worker_killed_mid_job_is_redelivered_and_finishes_once.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pydicom
import pytest
import requests
from django.test.utils import override_settings

from backend.devstack.services import (OrthancProcess, OrthancSettings, free_port, orthanc_plugins_available,
                                       port_open, wait_for)

pytestmark = [pytest.mark.services, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
UID = "1.2.826.0.1.3680043.10.999.950"


# -- processes --------------------------------------------------------------------------------------
@contextlib.contextmanager
def gunicorn(env: dict, threads: int = 4):
    """The web app under gunicorn on loopback (one worker, ``threads`` threads), as in production."""
    port = free_port()
    log = open(ROOT / "var" / f"test-faults-gunicorn-{port}.log", "ab") if (ROOT / "var").is_dir() \
        else subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "backend.wsgi", "-b", f"127.0.0.1:{port}", "-k", "gthread",
         "--workers", "1", "--threads", str(threads), "--timeout", "120"],
        cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE": "backend.settings", "PYTHONUNBUFFERED": "1"},
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert proc.poll() is None, f"gunicorn exited with {proc.returncode}"
        try:
            return requests.get(url + "/health", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for(healthy, "gunicorn", timeout=90, interval=0.3)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class PrivateRedis:
    """A redis-server of our own, append-only with fsync on every write (as docker/compose.yaml runs it)."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> "PrivateRedis":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.data_dir),
             "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for(lambda: port_open("127.0.0.1", self.port), "private Redis")
        return self

    def kill(self) -> None:
        """A crash, not a clean shutdown: whatever is not on disk is gone."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        wait_for(lambda: not port_open("127.0.0.1", self.port), "private Redis to stop")


class PrivateCluster:
    """A PostgreSQL cluster of our own (initdb in a temporary directory, own port), restartable at will."""

    BIN = Path("/usr/lib/postgresql")

    def __init__(self):
        versions = sorted(p.name for p in self.BIN.iterdir()) if self.BIN.is_dir() else []
        if not versions:
            pytest.fail("PostgreSQL server binaries are required (scripts/setup.sh installs them)")
        self.bin = self.BIN / versions[-1] / "bin"
        # Not under pytest's tmp_path: PostgreSQL refuses to run as root, and the postgres user cannot
        # enter pytest's 0700 directories.
        self.root = Path(tempfile.mkdtemp(prefix="spineagent-faults-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgres://spineagent:spineagent@127.0.0.1:{self.port}/spineagent"

    def _as_owner(self, *cmd: str) -> subprocess.CompletedProcess:
        if os.geteuid() == 0:
            cmd = ("runuser", "-u", "postgres", "--") + cmd
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"{' '.join(cmd)}: {result.stdout}{result.stderr}"
        return result

    def init(self) -> "PrivateCluster":
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._as_owner(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                       "--no-sync")
        self.start()
        for sql in ("CREATE ROLE spineagent LOGIN PASSWORD 'spineagent'",
                    "CREATE DATABASE spineagent OWNER spineagent"):
            self._as_owner(str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                           "-v", "ON_ERROR_STOP=1", "-c", sql)
        return self

    def _ctl(self, action: str, *extra: str) -> None:
        self._as_owner(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-w",
                       "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off",
                       action, *extra)

    def start(self) -> None:
        self._ctl("start")

    def stop(self) -> None:
        """Fast shutdown: every session is terminated, as when the database host restarts."""
        self._ctl("stop", "-m", "fast")

    def destroy(self) -> None:
        with contextlib.suppress(AssertionError):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _manage(env: dict, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, input=stdin,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _test_db_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def _tokens(users) -> dict[str, dict]:
    from rest_framework.authtoken.models import Token

    return {role: {"Authorization": f"Token {Token.objects.get_or_create(user=users[role])[0].key}"}
            for role in ("admin", "radiologist")}


def _study_with_report(uid: str = UID):
    from backend.reports.models import Report, ReportVersion
    from backend.studies.models import Study

    study = Study.objects.create(study_instance_uid=uid, patient_id="FAULT", modalities="MR")
    report = Report.objects.create(study=study, status=Report.DRAFT_READY, current_number=0)
    ReportVersion.objects.create(report=report, number=0, text="AI draft", source=ReportVersion.AI)
    return study


# -- (a) Orthanc stops during an upload ------------------------------------------------------------
@pytest.fixture
def private_orthanc(services, tmp_path):
    if not orthanc_plugins_available():
        pytest.fail("Orthanc with its DICOMweb and Python plugins is required: run scripts/setup.sh")
    proc = OrthancProcess(OrthancSettings(data_dir=tmp_path / "orthanc", http_port=free_port(),
                                          dicom_port=free_port(), password="faults-orthanc-secret",
                                          announce=False)).start()
    with override_settings(ORTHANC_URL=proc.settings.url, ORTHANC_USERNAME=proc.settings.username,
                           ORTHANC_PASSWORD=proc.settings.password):
        yield proc
    proc.stop()


def _orthanc_instances(proc: OrthancProcess) -> int:
    r = requests.get(proc.settings.url + "/statistics", auth=(proc.settings.username, proc.settings.password),
                     timeout=10)
    return r.json()["CountInstances"]


def _study_uid(files) -> str:
    return str(pydicom.dcmread(io.BytesIO(files[0][1]), stop_before_pixels=True).StudyInstanceUID)


def _assert_orthanc_503(response):
    assert response.status_code == 503, response.content
    body = response.json()
    assert body["error"] == "service_unavailable" and body["service"] == "Orthanc", body
    assert response.headers["Retry-After"]


def _api_sees_no_study(client, uid: str) -> None:
    assert client.get(f"/api/studies/{uid}/").status_code == 404
    assert all(row["study_instance_uid"] != uid for row in client.get("/api/studies/").json()["results"])
    assert all(row["study_instance_uid"] != uid for row in client.get("/api/worklist").json()["results"])


@pytest.mark.django_db
def test_orthanc_killed_while_upload_is_in_flight(private_orthanc, users, client_for, phantom_files, upload):
    """Orthanc freezes with the STOW-RS request on the wire and is then killed: 503 naming Orthanc, no
    Study row, nothing half-visible after Orthanc is back, and the same upload then stores the whole study."""
    from backend.inference.models import InferenceJob
    from backend.studies.models import Study

    files = phantom_files(seed=951)
    admin = client_for("admin")
    pid = private_orthanc.process.pid
    os.kill(pid, signal.SIGSTOP)  # the request connects and sends, nobody answers...
    killer = threading.Timer(2.0, os.kill, args=(pid, signal.SIGKILL))  # ...until Orthanc dies
    killer.start()
    started = time.monotonic()
    response = upload(admin, files)
    killer.join()
    _assert_orthanc_503(response)
    assert time.monotonic() - started < 30, "the upload hung instead of failing"
    assert Study.objects.count() == 0 and InferenceJob.objects.count() == 0

    private_orthanc.process.wait()
    private_orthanc.start()  # same storage and index directory
    uid = _study_uid(files)
    _api_sees_no_study(admin, uid)

    response = upload(admin, files)
    assert response.status_code == 201, response.content
    study = Study.objects.get(study_instance_uid=uid)
    assert study.num_instances == len(files) == _orthanc_instances(private_orthanc)
    assert InferenceJob.objects.filter(study=study).count() == 1


@pytest.mark.django_db
def test_orthanc_stops_after_storing_before_indexing(private_orthanc, users, client_for, phantom_files, upload,
                                                     monkeypatch):
    """Orthanc stores the whole STOW-RS and stops before we index: the upload is a 503 and the API shows
    no study (Orthanc holds it, unindexed); a re-sync once Orthanc is back indexes it whole."""
    from backend.inference.models import InferenceJob
    from backend.studies.models import Study
    from backend.studies.orthanc.client import OrthancClient

    files = phantom_files(seed=952)
    original = OrthancClient.orthanc_study_id

    def stop_then_lookup(self, study_instance_uid):
        private_orthanc.stop()  # a real stop, between the store and the index write
        return original(self, study_instance_uid)

    monkeypatch.setattr(OrthancClient, "orthanc_study_id", stop_then_lookup)
    admin = client_for("admin")
    _assert_orthanc_503(upload(admin, files))
    assert Study.objects.count() == 0 and InferenceJob.objects.count() == 0
    monkeypatch.undo()

    private_orthanc.start()
    assert _orthanc_instances(private_orthanc) == len(files)  # Orthanc kept what it had accepted
    uid = _study_uid(files)
    _api_sees_no_study(admin, uid)

    response = admin.post("/api/studies/resync")
    assert response.status_code == 200, response.content
    assert response.json()["created"] == 1
    assert Study.objects.get(study_instance_uid=uid).num_instances == len(files)


# -- (b) Redis stops ----------------------------------------------------------------------------------
@pytest.fixture
def private_redis(services, tmp_path, monkeypatch):
    """Set CELERY_BROKER_URL before ``start_worker`` reads the environment (request this fixture first)."""
    server = PrivateRedis(tmp_path / "redis").start()
    monkeypatch.setenv("CELERY_BROKER_URL", server.url)
    yield server
    server.kill()


@pytest.mark.django_db(transaction=True)
def test_redis_down_reads_served_jobs_queue_again_when_back(private_redis, start_worker, orthanc, active_model,
                                                            users, phantom_files, wait_until):
    from backend.inference.models import InferenceJob, InferenceResult

    _study_with_report()
    tokens = _tokens(users)
    env = dict(os.environ, DATABASE_URL=_test_db_url(), CELERY_BROKER_URL=private_redis.url,
               ORTHANC_URL=orthanc.settings.url, ORTHANC_PASSWORD=orthanc.settings.password)
    with gunicorn(env) as url:
        assert requests.get(url + "/api/worklist", headers=tokens["radiologist"], timeout=10).status_code == 200
        private_redis.kill()

        # Reads do not need Redis.
        for path in ("/api/studies/", "/api/worklist", f"/api/studies/{UID}/report", f"/api/studies/{UID}/",
                     "/api/jobs/"):
            started = time.monotonic()
            r = requests.get(url + path, headers=tokens["radiologist"], timeout=30)
            assert r.status_code == 200, (path, r.status_code, r.text[:500])
            assert time.monotonic() - started < 10, f"{path} waited on the dead broker"

        # Asking for a job now is refused clearly, and nothing is half-created.
        r = requests.post(f"{url}/api/studies/{UID}/jobs", headers=tokens["admin"], timeout=30)
        assert r.status_code == 503 and r.json()["service"] == "Redis", r.text
        assert not InferenceJob.objects.filter(study__study_instance_uid=UID).exists()

        # A study arriving now is stored and indexed; its automatic job waits, undispatched.
        files = phantom_files(seed=953)
        r = requests.post(url + "/api/studies/upload", headers=tokens["admin"], timeout=120,
                          files=[("files", (name, data, "application/dicom")) for name, data in files])
        assert r.status_code == 201, r.text
        job = InferenceJob.objects.get(study__study_instance_uid=r.json()["studies"][0]["study_instance_uid"])
        assert job.status == InferenceJob.QUEUED and job.dispatched_at is None

    private_redis.start()  # same port, same append-only file
    start_worker("after-redis")  # sends pending jobs at start-up (beat does so every 30 s as well)
    wait_until(lambda: InferenceJob.objects.get(pk=job.pk).status in InferenceJob.TERMINAL, timeout=180,
               what="the job queued during the outage to finish")
    job.refresh_from_db()
    assert job.status == InferenceJob.SUCCEEDED, job.error
    assert job.attempts == 1 and job.dispatched_at is not None
    assert InferenceResult.objects.filter(job=job).count() == 1


@pytest.mark.django_db(transaction=True)
def test_message_in_redis_survives_a_redis_crash(private_redis, start_worker, orthanc, active_model, users,
                                                 phantom_files, wait_until):
    """A job published before Redis crashed is still there after the restart (append-only file) and runs once."""
    from backend.inference.models import InferenceJob, InferenceResult

    tokens = _tokens(users)
    env = dict(os.environ, DATABASE_URL=_test_db_url(), CELERY_BROKER_URL=private_redis.url,
               ORTHANC_URL=orthanc.settings.url, ORTHANC_PASSWORD=orthanc.settings.password)
    with gunicorn(env) as url:
        r = requests.post(url + "/api/studies/upload", headers=tokens["admin"], timeout=120,
                          files=[("files", (n, d, "application/dicom")) for n, d in phantom_files(seed=954)])
    assert r.status_code == 201, r.text
    job = InferenceJob.objects.get(study__study_instance_uid=r.json()["studies"][0]["study_instance_uid"])
    assert job.dispatched_at is not None, "the job should have reached the broker before the crash"

    private_redis.kill()
    private_redis.start()
    start_worker("after-crash")
    wait_until(lambda: InferenceJob.objects.get(pk=job.pk).status in InferenceJob.TERMINAL, timeout=180,
               what="the job published before the crash to finish")
    job.refresh_from_db()
    assert job.status == InferenceJob.SUCCEEDED and job.attempts == 1, job.error
    assert InferenceResult.objects.filter(job=job).count() == 1


# -- (c) the database restarts -------------------------------------------------------------------------
SEED_PRIVATE_DB = f"""
from django.contrib.auth.models import Group, User
from rest_framework.authtoken.models import Token
from backend.reports.models import Report, ReportVersion
from backend.studies.models import Study
user = User.objects.create_user("radiologist")
user.groups.add(Group.objects.get(name="radiologist"))
study = Study.objects.create(study_instance_uid="{UID}", modalities="MR")
report = Report.objects.create(study=study, status=Report.DRAFT_READY, current_number=0)
ReportVersion.objects.create(report=report, number=0, text="AI draft", source=ReportVersion.AI)
print(Token.objects.create(user=user).key, report.pk)
"""


@pytest.fixture
def private_cluster():
    cluster = PrivateCluster().init()
    yield cluster
    cluster.destroy()


def test_database_restart(private_cluster):
    """An in-flight request gets a clear 503 naming PostgreSQL, so does one while it is down, and the first
    request after the restart succeeds on the same gunicorn process (health-checked persistent connections)."""
    import psycopg

    env = dict(os.environ, DATABASE_URL=private_cluster.url)
    _manage(env, "migrate", "--noinput", "-v", "0")
    token, report_pk = _manage(env, "shell", "-c", SEED_PRIVATE_DB).strip().splitlines()[-1].split()
    headers = {"Authorization": f"Token {token}"}
    with gunicorn(env) as url:
        assert requests.get(url + "/api/worklist", headers=headers, timeout=10).status_code == 200

        # Hold the report's row lock elsewhere so a save is provably in flight when the database goes.
        blocker = psycopg.connect(f"host=127.0.0.1 port={private_cluster.port} dbname=spineagent "
                                  "user=spineagent password=spineagent", autocommit=False)
        blocker.execute("SELECT 1 FROM reports_report WHERE id = %s FOR UPDATE", (int(report_pk),))
        outcome = {}

        def save():
            outcome["response"] = requests.post(f"{url}/api/studies/{UID}/report/versions", headers=headers,
                                                json={"text": "edited", "base_number": 0}, timeout=60)

        saver = threading.Thread(target=save)
        saver.start()
        wait_for(lambda: _waiting_on_lock(private_cluster), "the save to wait on the row lock", timeout=30)
        private_cluster.stop()
        saver.join(timeout=60)
        with contextlib.suppress(Exception):
            blocker.close()
        in_flight = outcome["response"]
        assert in_flight.status_code == 503, in_flight.text
        assert in_flight.json()["service"] == "PostgreSQL" and in_flight.headers["Retry-After"]

        down = requests.get(url + "/api/worklist", headers=headers, timeout=30)
        assert down.status_code == 503 and down.json()["service"] == "PostgreSQL", down.text

        private_cluster.start()
        after = requests.get(f"{url}/api/studies/{UID}/report", headers=headers, timeout=30)
        assert after.status_code == 200, after.text
        # The in-flight save did not half-happen: still only the AI draft.
        assert [v["number"] for v in after.json()["versions"]] == [0], after.json()
        saved = requests.post(f"{url}/api/studies/{UID}/report/versions", headers=headers,
                              json={"text": "edited after restart", "base_number": 0}, timeout=30)
        assert saved.status_code == 201, saved.text


def _waiting_on_lock(cluster: PrivateCluster) -> bool:
    import psycopg

    with psycopg.connect(f"host=127.0.0.1 port={cluster.port} dbname=spineagent user=spineagent "
                         "password=spineagent", autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'").fetchone()
    return row[0] >= 1


# -- (d) many radiologists on one report ---------------------------------------------------------------
WRITERS, SAVES = 8, 5


@pytest.mark.django_db(transaction=True)
def test_many_concurrent_writers_lose_no_version(users, client_for):
    """8 writers x 5 accepted saves each on one report, all at once: every 201 is a stored version with
    the writer's text, the versions form one unbroken chain (each based on the one before), every refusal is
    a 409 'stale' carrying the newer current version, and nothing else happens."""
    from django.db import connection

    from backend.reports.models import ReportVersion

    _study_with_report()
    accepted: list[tuple[int, str]] = []  # (number, text) as answered
    refused: list[dict] = []
    other: list[tuple[int, str]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(WRITERS)

    def writer(w: int):
        client = client_for("radiologist")
        base = 0
        done = attempts = 0
        try:
            barrier.wait()
            while done < SAVES and attempts < 200:
                attempts += 1
                text = f"writer {w} save {done} attempt {attempts}"
                r = client.post(f"/api/studies/{UID}/report/versions", {"text": text, "base_number": base},
                                format="json")
                with lock:
                    if r.status_code == 201:
                        accepted.append((r.json()["version"]["number"], text))
                        base, done = r.json()["version"]["number"], done + 1
                    elif r.status_code == 409 and r.json().get("error") == "stale":
                        body = r.json()
                        refused.append(body)
                        base = body["current"]["number"]
                    else:
                        other.append((r.status_code, r.content[:300]))
                        return
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not other, other
    assert len(accepted) == WRITERS * SAVES, f"{len(accepted)} saves accepted"

    stored = list(ReportVersion.objects.filter(report__study__study_instance_uid=UID).order_by("number")
                  .values_list("number", "text", "base_number", "source"))
    assert len(stored) == 1 + WRITERS * SAVES
    assert [n for n, *_ in stored] == list(range(len(stored))), "gap or duplicate in version numbers"
    assert all(base == n - 1 for n, _, base, _ in stored[1:]), "a version was not based on its predecessor"
    assert sorted(accepted) == [(n, text) for n, text, _, source in stored if source == "radiologist"]
    for body in refused:  # every refusal said what had been saved since the writer's base
        assert body["current"]["number"] > body["base_number"], body
    print(f"{len(accepted)} saves accepted, {len(refused)} refused as stale")
