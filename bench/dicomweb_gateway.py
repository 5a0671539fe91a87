"""Benchmark: retrieve a 300-instance study through our authenticated paths vs Orthanc directly.

Measured in the same run, against the same Orthanc, alternating rounds so none gets a warmer cache:
  direct   Orthanc's own DICOMweb (the reference)
  gateway  Django's /dicom-web/ gateway streaming the bytes itself (the demo, scripts/demo.sh)
  nginx    the compose deployment's front (docker/nginx/nginx.conf, run by backend/devstack/nginx.py): nginx asks
           Django for a decision (auth_request), then takes the bytes straight from Orthanc
Three access patterns:
  study    one WADO-RS request for the whole study (multipart stream), repeated
  series   one WADO-RS request per series, repeated
  frames   one request per instance's pixel frame, 6 at a time (what a viewer does)
Prints throughput of each and each path's ratio to direct (targets: nginx >= 0.9, gateway >= 0.8).

    .venv/bin/python bench/dicomweb_gateway.py [--instances 300] [--rounds 5] [--no-nginx]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")

from backend.devstack.__main__ import prepare  # noqa: E402
from backend.devstack.services import OrthancProcess, OrthancSettings, free_port, port_open, wait_for  # noqa: E402

STUDY_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'
FRAME_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'


def build_study(n_instances: int) -> tuple[str, list[tuple[str, str]], list[bytes]]:
    """A phantom study grown to n instances (copies of its slices with their own UIDs)."""
    import pydicom
    from pydicom.uid import generate_uid

    import spine_phantom

    study = spine_phantom.generate_study(seed=1, index=0)
    template = [ds for series in study.series for ds in series.datasets()]
    study_uid = str(template[0].StudyInstanceUID)
    refs, payloads = [], []
    for i in range(n_instances):
        ds = template[i % len(template)].copy()
        ds.SOPInstanceUID = generate_uid(entropy_srcs=["bench", str(i)])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = i + 1
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
        payloads.append(buffer.getvalue())
        refs.append((str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)))
    return study_uid, refs, payloads


def bench_user_token() -> str:
    import django

    django.setup()
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    call_command("migrate", verbosity=0)
    user, _ = User.objects.get_or_create(username="bench-reader")
    user.groups.set([Group.objects.get(name="radiologist")])
    return Token.objects.get_or_create(user=user)[0].key


def timed(fn) -> tuple[float, int]:
    start = time.perf_counter()
    nbytes = fn()
    return time.perf_counter() - start, nbytes


def fetch(session: requests.Session, url: str, accept: str) -> int:
    with session.get(url, headers={"Accept": accept}, stream=True, timeout=300) as r:
        r.raise_for_status()
        return sum(len(chunk) for chunk in r.iter_content(1 << 20))


def whole_study(session, base, study_uid) -> int:
    return fetch(session, f"{base}/studies/{study_uid}", STUDY_ACCEPT)


def per_series(session, base, study_uid, refs) -> int:
    return sum(fetch(session, f"{base}/studies/{study_uid}/series/{series}", STUDY_ACCEPT)
               for series in dict.fromkeys(series for series, _ in refs))


def frames(session_factory, base, study_uid, refs, workers=6) -> int:
    sessions = [session_factory() for _ in range(workers)]

    def one(i):
        series_uid, sop_uid = refs[i]
        return fetch(sessions[i % workers], f"{base}/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}"
                     "/frames/1", FRAME_ACCEPT)

    with ThreadPoolExecutor(workers) as pool:
        return sum(pool.map(one, range(len(refs))))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=5, help="whole-study retrievals per timed round")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--no-nginx", action="store_true", help="leave out the compose front (nginx)")
    args = parser.parse_args()

    prepare()
    token = bench_user_token()
    tmp = Path(tempfile.mkdtemp(prefix="spineagent-bench-"))
    orthanc = OrthancProcess(OrthancSettings(data_dir=tmp / "orthanc", http_port=free_port(),
                                             dicom_port=free_port(), announce=False)).start()
    web_port = free_port()
    env = dict(os.environ, ORTHANC_URL=orthanc.settings.url, ORTHANC_PASSWORD=orthanc.settings.password,
               ORTHANC_GATEWAY_PASSWORD=orthanc.settings.gateway_password, LOG_LEVEL="WARNING")
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "backend.wsgi", "-b", f"127.0.0.1:{web_port}", "-k", "gthread",
         "--workers", str(args.web_workers), "--threads", "8", "--log-level", "warning"],
        cwd=ROOT, env=env)
    front = None
    try:
        wait_for(lambda: port_open("127.0.0.1", web_port), "gunicorn", timeout=60)
        if not args.no_nginx:
            from backend.devstack.nginx import NginxFront

            front = NginxFront(tmp / "nginx", f"http://127.0.0.1:{web_port}", orthanc.settings.http_port,
                               orthanc.settings.gateway_username, orthanc.settings.gateway_password).start()
        study_uid, refs, payloads = build_study(args.instances)
        auth = (orthanc.settings.username, orthanc.settings.password)
        with requests.Session() as s:
            for data in payloads:
                s.post(f"{orthanc.settings.url}/instances", data=data, auth=auth, timeout=60).raise_for_status()
        total_mb = sum(len(p) for p in payloads) / 1e6
        print(f"study: {args.instances} instances, {total_mb:.1f} MB of DICOM")

        def direct_session():
            s = requests.Session()
            s.auth = auth
            return s

        def gateway_session():
            s = requests.Session()
            s.headers["Authorization"] = f"Token {token}"
            return s

        paths = {
            "direct": (f"{orthanc.settings.url}/dicom-web", direct_session),
            "gateway": (f"http://127.0.0.1:{web_port}/dicom-web", gateway_session),
        }
        if front is not None:
            paths["nginx"] = (f"{front.url}/dicom-web", gateway_session)
        results: dict[tuple[str, str], list[float]] = {}
        sizes: dict[str, int] = {}
        for name, (base, make) in paths.items():  # warm-up (every web worker checks the credential in full
            sizes[name] = whole_study(make(), base, study_uid)  # once), also checks the paths agree on sizes
            frames(make, base, study_uid, refs)
        for _ in range(args.rounds):
            for name, (base, make) in paths.items():
                session = make()
                seconds, nbytes = timed(lambda: sum(whole_study(session, base, study_uid) for _ in range(args.repeat)))
                results.setdefault(("study", name), []).append(nbytes / seconds / 1e6)
                seconds, nbytes = timed(lambda: sum(per_series(session, base, study_uid, refs)
                                                    for _ in range(args.repeat)))
                results.setdefault(("series", name), []).append(nbytes / seconds / 1e6)
                seconds, nbytes = timed(lambda: frames(make, base, study_uid, refs))
                results.setdefault(("frames", name), []).append(len(refs) / seconds)
        names = list(paths)
        print(f"{'pattern':8s} " + " ".join(f"{n:>16s}" for n in names) + " "
              + " ".join(f"{n + '/direct':>15s}" for n in names[1:]))
        for pattern, unit in (("study", "MB/s"), ("series", "MB/s"), ("frames", "inst/s")):
            values = {n: statistics.median(results[(pattern, n)]) for n in names}
            print(f"{pattern:8s} " + " ".join(f"{values[n]:9.1f} {unit:>6s}" for n in names) + " "
                  + " ".join(f"{values[n] / values['direct']:15.2f}" for n in names[1:]))
        targets = {"gateway": 0.8, "nginx": 0.9}
        for n in names[1:]:
            worst = min(statistics.median(results[(p, n)]) / statistics.median(results[(p, "direct")])
                        for p in ("study", "series", "frames"))
            print(f"ratio {n}/direct, worst pattern: {worst:.2f} (target >= {targets[n]}: "
                  f"{'met' if worst >= targets[n] else 'MISSED'})")
        return 0
    finally:
        if front is not None:
            front.stop()
        web.terminate()
        web.wait(timeout=20)
        orthanc.stop()


if __name__ == "__main__":
    sys.exit(main())
