"""The one-command demo: Orthanc, web server, Celery worker, phantom studies, demo accounts.

Everything it starts is a child process; Ctrl-C (or SIGTERM) stops them all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from .services import OrthancProcess, OrthancSettings, port_open, wait_for

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def add_arguments(parser) -> None:
    parser.add_argument("--port", type=int, default=int(os.environ.get("SPINEAGENT_PORT", "8000")))
    parser.add_argument("--orthanc-port", type=int, default=int(os.environ.get("ORTHANC_HTTP_PORT", "8042")))
    parser.add_argument("--dicom-port", type=int, default=int(os.environ.get("ORTHANC_DICOM_PORT", "4242")))
    parser.add_argument("--studies", type=int, default=4, help="phantom studies to ingest")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "var" / "demo")
    parser.add_argument("--no-wait", action="store_true", help="ingest, wait for the jobs, then stop (smoke test)")


def _manage(*args: str, env: dict) -> str:
    result = subprocess.run([PYTHON, str(ROOT / "manage.py"), *args], env=env, cwd=ROOT,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def _ingest_phantoms(base_url: str, token: str, count: int, out_dir: Path) -> list[str]:
    """Generate phantom studies (deterministic, seed 1) and upload them through the API."""
    import spine_phantom

    uids = []
    for index in range(count):
        study = spine_phantom.generate_study(seed=1, index=index)
        study_dir = spine_phantom.write_study(study, out_dir)
        files = [("files", (p.name, p.read_bytes(), "application/dicom")) for p in sorted(study_dir.rglob("*.dcm"))]
        response = requests.post(f"{base_url}/api/studies/upload", files=files,
                                 headers={"Authorization": f"Token {token}"}, timeout=300)
        response.raise_for_status()
        uids.extend(s["study_instance_uid"] for s in response.json()["studies"])
        print(f"demo: ingested phantom study {index + 1}/{count} ({len(files)} instances)")
    return uids


def run(args) -> int:
    data_dir: Path = args.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    for port in (args.port, args.orthanc_port):
        if port_open("127.0.0.1", port):
            raise SystemExit(f"port {port} is already in use; pass --port/--orthanc-port")
    base_url = f"http://127.0.0.1:{args.port}"
    orthanc = OrthancProcess(OrthancSettings(
        data_dir=data_dir / "orthanc", http_port=args.orthanc_port, dicom_port=args.dicom_port,
        webhook_url=f"{base_url}/api/orthanc/stable-study",
        dicom_modalities=os.environ.get("SPINEAGENT_DICOM_MODALITIES", "")))
    env = dict(os.environ, ORTHANC_URL=orthanc.settings.url, DJANGO_SETTINGS_MODULE="backend.settings",
               PYTHONUNBUFFERED="1")
    children: list[subprocess.Popen] = []

    def stop(*_):
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
        orthanc.stop()

    signal.signal(signal.SIGTERM, lambda *_: (stop(), sys.exit(0)))
    try:
        print("demo: migrating the database, creating demo accounts, registering the model")
        _manage("migrate", "--noinput", env=env)
        _manage("collectstatic", "--noinput", env=env)  # the Django admin's and the browsable API's files
        accounts = _manage("seed_demo", env=env)
        print(_manage("register_model", "--activate", env=env).strip())
        token = _manage("drf_create_token", "admin", env=env).split()[2]
        orthanc.start()
        print(f"demo: Orthanc up on {orthanc.settings.url} (DICOM port {args.dicom_port}, C-STORE allowed from: "
              f"{orthanc.settings.dicom_modalities or 'nobody; set SPINEAGENT_DICOM_MODALITIES=AET@host:port'})")
        log_dir = data_dir / "logs"
        log_dir.mkdir(exist_ok=True)
        children.append(subprocess.Popen(
            [PYTHON, "-m", "gunicorn", "backend.wsgi", "-b", f"127.0.0.1:{args.port}", "-k", "gthread",
             "--threads", "16", "--workers", "2", "--timeout", "300"],
            env=env, cwd=ROOT, stdout=open(log_dir / "web.log", "ab"), stderr=subprocess.STDOUT))
        children.append(subprocess.Popen(
            [PYTHON, "-m", "celery", "-A", "backend", "worker", "-B", "-Q", "inference,default,training", "-c", "1",
             "--pool", "solo", "-l", "INFO", "-s", str(data_dir / "celerybeat-schedule")],
            env=env, cwd=ROOT, stdout=open(log_dir / "worker.log", "ab"), stderr=subprocess.STDOUT))
        wait_for(lambda: port_open("127.0.0.1", args.port), "web server", timeout=60)
        uids = _ingest_phantoms(base_url, token, args.studies, data_dir / "phantoms")
        print()
        print(f"SpineAgent is running at {base_url}/  (API {base_url}/api/, DICOMweb {base_url}/dicom-web/)")
        print(f"Annotator queue {base_url}/annotate/, QA peer review {base_url}/qa/, admin analytics "
              f"{base_url}/analytics/, training {base_url}/training/, Django admin {base_url}/admin/")
        print("Demo accounts (all SYNTHETIC phantom data):")
        print(accounts.rstrip())
        print(f"Logs: {log_dir}. Press Ctrl-C to stop everything.")
        if args.no_wait:
            _wait_for_jobs(base_url, token, uids)
            return 0
        while all(child.poll() is None for child in children):
            time.sleep(1)
        print("demo: a service stopped unexpectedly; see the logs", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndemo: stopping")
        return 0
    finally:
        stop()


def _wait_for_jobs(base_url: str, token: str, uids: list[str], timeout: float = 600) -> None:
    headers = {"Authorization": f"Token {token}"}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = requests.get(f"{base_url}/api/jobs/", headers=headers, timeout=30).json()["results"]
        states = {j["study_instance_uid"]: j["status"] for j in jobs}
        if all(states.get(uid) in ("succeeded", "failed", "unsupported") for uid in uids):
            for uid in uids:
                print(f"demo: job for {uid}: {states[uid]}")
            return
        time.sleep(2)
    raise SystemExit("demo: jobs did not finish in time")
