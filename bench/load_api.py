"""Load benchmark: the worklist, report and study-list APIs with 10,000 studies, against /health.

Fills a database of its own (default ``spineagent_bench``; never the demo's or a test's) with
synthetic index rows by bulk_create: studies, their latest inference jobs in mixed states, results for
the succeeded ones, reports in every status with their versions. Starts gunicorn on loopback
(2 workers) and drives N concurrent clients (threads, one keep-alive session each) through a bounded,
shuffled mix of requests, so every endpoint, the static reference included, is measured under the same
load in the same run. Prints p50/p95/p99 per endpoint and each p50/p95 as a ratio of the reference's.
Target: worklist p95 under 100 ms.

    .venv/bin/python bench/load_api.py [--studies 10000] [--clients 8] [--requests 4000] [--explain]

``--explain`` also prints, per endpoint, the SQL query count of one request and PostgreSQL's plan of
the worklist page (EXPLAIN ANALYZE), which is what to read when the target is missed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import queue
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")

BENCH_UID_ROOT = "1.2.826.0.1.3680043.10.999.77."  # synthetic UIDs: this root marks bench rows


def configure_database(name: str) -> str:
    """Create the bench database (project role) and point this process's Django at it."""
    from backend.devstack.__main__ import DB_PASSWORD, DB_USER, prepare
    from backend.devstack.services import ensure_database

    prepare()
    ensure_database(name, DB_USER, DB_PASSWORD)
    url = f"postgres://{DB_USER}:{DB_PASSWORD}@127.0.0.1:5432/{name}"
    os.environ["DATABASE_URL"] = url
    return url


def fill(n_studies: int, seed: int = 0) -> None:
    """Synthetic rows for n studies (idempotent: rows from an earlier run with the same n are kept)."""
    import django

    django.setup()
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.db import transaction
    from django.utils import timezone

    from backend.inference.models import InferenceJob, InferenceResult, ModelVersion
    from backend.reports.models import Report, ReportVersion
    from backend.studies.models import Study

    call_command("migrate", verbosity=0)
    if Study.objects.filter(study_instance_uid__startswith=BENCH_UID_ROOT).count() == n_studies:
        print(f"database already holds {n_studies} bench studies")
        if not Report.objects.exclude(ai_priority=None).exclude(ai_priority=0).exists():  # filled before priorities
            for level in (1, 2):
                ids = list(Report.objects.order_by("?").values_list("pk", flat=True)[: Report.objects.count() // (4 * level)])
                Report.objects.filter(pk__in=ids).update(ai_priority=level)
        analyze()
        return
    if Study.objects.exists():
        raise SystemExit("the bench database holds other rows; drop it first (dropdb) or pick --database")
    rng = random.Random(seed)
    started = time.perf_counter()
    with transaction.atomic():
        for name in ("bench-radiologist", "bench-reader-2"):
            user, _ = User.objects.get_or_create(username=name)
            user.groups.set([Group.objects.get(name="radiologist")])
        model, _ = ModelVersion.objects.get_or_create(
            name="bench-synthetic", version="1", defaults={"path": "builtin:bench", "state": ModelVersion.ACTIVE,
                                                           "synthetic_training": True})
        readers = list(User.objects.filter(username__startswith="bench-"))
        now = timezone.now()
        studies = Study.objects.bulk_create([
            Study(study_instance_uid=f"{BENCH_UID_ROOT}{i}", patient_id=f"SYN{i:06d}",
                  patient_name=f"Synthetic^{i}", modalities="MR", body_part="LSPINE",
                  study_date=dt.date(2024, 1, 1) + dt.timedelta(days=i % 700),
                  study_description="synthetic bench study", num_series=4, num_instances=60, source="upload")
            for i in range(n_studies)], batch_size=2000)
        # received_at is auto_now_add: spread it out so "newest first" is a real ordering.
        for s in studies:
            s.received_at = now - dt.timedelta(minutes=rng.randrange(0, 60 * 24 * 365))
        Study.objects.bulk_update(studies, ["received_at"], batch_size=2000)

        states = ([InferenceJob.SUCCEEDED] * 80 + [InferenceJob.QUEUED] * 6 + [InferenceJob.RUNNING] * 2
                  + [InferenceJob.FAILED] * 6 + [InferenceJob.UNSUPPORTED] * 2 + [None] * 4)
        jobs = []
        for s in studies:
            state = rng.choice(states)
            if state is not None:
                jobs.append(InferenceJob(study=s, model_version=model, status=state, attempts=1,
                                         dispatched_at=now, error="" if state == "succeeded" else "synthetic"))
            if rng.random() < 0.05:  # a manual re-run: the worklist must pick the latest job
                jobs.append(InferenceJob(study=s, model_version=model, status=InferenceJob.SUCCEEDED,
                                         trigger=InferenceJob.MANUAL, attempts=1, dispatched_at=now))
        jobs = InferenceJob.objects.bulk_create(jobs, batch_size=2000)
        done = [j for j in jobs if j.status == InferenceJob.SUCCEEDED]
        results = InferenceResult.objects.bulk_create([
            InferenceResult(job=j, study_id=j.study_id, model_version=model,
                            data={"draft_text": "Synthetic draft.", "conditions": [], "synthetic": True})
            for j in done], batch_size=2000)
        result_by_study = {r.study_id: r for r in results}

        reports, versions = [], []
        for s in studies:
            result = result_by_study.get(s.pk)
            if result is None:
                continue
            status = rng.choice([Report.DRAFT_READY] * 5 + [Report.IN_REVIEW] * 3 + [Report.SIGNED] * 2)
            reader = rng.choice(readers)
            opened = status != Report.DRAFT_READY
            reports.append(Report(study=s, status=status, current_number=1 if opened else 0,
                                  ai_priority=rng.choice([0] * 8 + [1] * 3 + [2]),
                                  reader=reader if opened else None, first_opened_at=now if opened else None,
                                  signed_by=reader if status == Report.SIGNED else None,
                                  signed_at=now if status == Report.SIGNED else None,
                                  signed_number=1 if status == Report.SIGNED else None,
                                  radpeer_score="1" if status == Report.SIGNED else ""))
        reports = Report.objects.bulk_create(reports, batch_size=2000)
        for r in reports:
            versions.append(ReportVersion(report=r, number=0, text="Synthetic draft.", source=ReportVersion.AI,
                                          model_version=model, inference_result=result_by_study[r.study_id]))
            if r.current_number == 1:
                versions.append(ReportVersion(report=r, number=1, text="Synthetic draft, edited.",
                                              source=ReportVersion.RADIOLOGIST, author=r.reader, base_number=0))
        ReportVersion.objects.bulk_create(versions, batch_size=2000)
    analyze()
    print(f"filled {n_studies} studies, {len(jobs)} jobs, {len(results)} results, {len(reports)} reports, "
          f"{len(versions)} versions in {time.perf_counter() - started:.1f} s")


def analyze() -> None:
    """Fresh planner statistics: right after a bulk fill autovacuum has not run yet, and the plans
    PostgreSQL picks from stale counts are not the ones a live database would get."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def endpoints() -> dict[str, list[str]]:
    """name -> the URLs it cycles through (reports: studies whose GET only reads)."""
    from backend.reports.models import Report

    readonly = list(Report.objects.filter(status__in=[Report.IN_REVIEW, Report.SIGNED])
                    .values_list("study__study_instance_uid", flat=True)[:500])
    return {
        "health (reference)": ["/health"],
        "worklist default page": ["/api/worklist"],
        "worklist filtered": ["/api/worklist?status=draft_ready,in_review&date_from=2024-03-01&date_to=2025-06-30",
                              "/api/worklist?reader=bench-radiologist&offset=200",
                              "/api/worklist?status=failed&limit=100"],
        # What the radiologist's page sends by default (unsupported studies hidden), its quick filters, sorts.
        "worklist radiologist page": ["/api/worklist?hide=unsupported&limit=50",
                                      "/api/worklist?hide=unsupported&limit=50&offset=5000"],
        "worklist quick filters": ["/api/worklist?mine=1&hide=unsupported&limit=50",
                                   "/api/worklist?unread=1&hide=unsupported&limit=50",
                                   "/api/worklist?status=draft%20ready&hide=unsupported&limit=50"],
        "worklist sorted": ["/api/worklist?ordering=status&hide=unsupported&limit=50",
                            "/api/worklist?ordering=-priority&hide=unsupported&limit=50",
                            "/api/worklist?ordering=reader&limit=50&offset=200",
                            "/api/worklist?ordering=-date&hide=unsupported&limit=50"],
        "report state (poll)": [f"/api/studies/{uid}/report/state" for uid in readonly],
        "report GET": [f"/api/studies/{uid}/report" for uid in readonly],
        "study list": ["/api/studies/", "/api/studies/?offset=5000"],
    }


def token() -> str:
    from django.contrib.auth.models import User
    from rest_framework.authtoken.models import Token

    return Token.objects.get_or_create(user=User.objects.get(username="bench-radiologist"))[0].key


def explain(urls: dict[str, list[str]], key: str) -> None:
    """Query count of one request per endpoint, and the plan of the worklist page."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_AUTHORIZATION=f"Token {key}")
    for name, paths in urls.items():
        with CaptureQueriesContext(connection) as ctx:
            status = client.get(paths[0]).status_code
        print(f"  {name:24s} HTTP {status}, {len(ctx.captured_queries)} SQL queries")
    for name in ("worklist default page", "worklist filtered"):
        with CaptureQueriesContext(connection) as ctx:
            client.get(urls[name][0])
        with connection.cursor() as cursor:
            for query in ctx.captured_queries:
                if "studies_study" not in query["sql"]:
                    continue  # authentication and permission lookups
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + query["sql"])
                plan = [row[0] for row in cursor.fetchall()]
                print(f"  {name}: {query['sql'][:60]}...\n    " + "\n    ".join(plan))


def start_web(db_url: str, workers: int, threads: int) -> tuple[subprocess.Popen, str]:
    from backend.devstack.services import free_port, wait_for

    port = free_port()
    env = dict(os.environ, DATABASE_URL=db_url, LOG_LEVEL="WARNING", DJANGO_DEBUG="0")
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "backend.wsgi", "-b", f"127.0.0.1:{port}", "-k", "gthread",
         "--workers", str(workers), "--threads", str(threads), "--log-level", "warning"],
        cwd=ROOT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return requests.get(url + "/health", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    wait_for(up, "gunicorn", timeout=90, interval=0.3)
    return web, url


def drive(url: str, key: str, urls: dict[str, list[str]], clients: int, total: int, warmup: int,
          seed: int) -> dict[str, list[float]]:
    """Send ``total`` requests (after ``warmup`` untimed ones), shuffled across endpoints, from N threads."""
    rng = random.Random(seed)
    names = list(urls)
    plan = [(names[i % len(names)], i) for i in range(warmup + total)]
    warm, timed = plan[:warmup], plan[warmup:]
    rng.shuffle(timed)
    work: queue.Queue = queue.Queue()
    for item in warm + timed:
        work.put(item)
    timings: dict[str, list[float]] = {n: [] for n in names}
    errors: list[str] = []
    lock = threading.Lock()

    def client():
        session = requests.Session()
        session.headers["Authorization"] = f"Token {key}"
        while True:
            try:
                name, i = work.get_nowait()
            except queue.Empty:
                return
            path = urls[name][i % len(urls[name])]
            started = time.perf_counter()
            r = session.get(url + path, timeout=60)
            elapsed = time.perf_counter() - started
            with lock:
                if r.status_code != 200:
                    errors.append(f"{path}: HTTP {r.status_code}")
                elif i >= warmup:
                    timings[name].append(elapsed)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"{len(errors)} requests failed, e.g. {errors[:3]}")
    return timings


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--studies", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=8, help="concurrent client threads")
    parser.add_argument("--requests", type=int, default=4000, help="timed requests in all (bounded run)")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--database", default="spineagent_bench")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--explain", action="store_true", help="print query counts and the worklist plan")
    args = parser.parse_args()

    db_url = configure_database(args.database)
    fill(args.studies, args.seed)
    key = token()
    urls = endpoints()
    if args.explain:
        explain(urls, key)
    from django.db import connections

    connections.close_all()  # this process only drives load from now on
    web, url = start_web(db_url, args.web_workers, args.threads)
    try:
        started = time.perf_counter()
        timings = drive(url, key, urls, args.clients, args.requests, args.warmup, args.seed)
        wall = time.perf_counter() - started
    finally:
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(timeout=30)

    print(f"\n{args.studies} studies (synthetic rows), {args.clients} clients, {args.requests} timed requests "
          f"in {wall:.1f} s, gunicorn {args.web_workers} workers x {args.threads} threads, loopback")
    ref = timings["health (reference)"]
    ref50, ref95 = percentile(ref, 50), percentile(ref, 95)
    print(f"{'endpoint':24s} {'n':>5s} {'p50 ms':>8s} {'p95 ms':>8s} {'p99 ms':>8s} {'p50/ref':>8s} {'p95/ref':>8s}")
    for name, values in timings.items():
        p50, p95, p99 = (percentile(values, q) * 1000 for q in (50, 95, 99))
        print(f"{name:24s} {len(values):5d} {p50:8.1f} {p95:8.1f} {p99:8.1f} "
              f"{p50 / (ref50 * 1000):8.1f} {p95 / (ref95 * 1000):8.1f}")
    worst = max(percentile(timings[n], 95) for n in timings if n.startswith("worklist")) * 1000
    print(f"worklist p95 (worst of the worklist endpoints): {worst:.1f} ms -> "
          f"{'meets' if worst < 100 else 'MISSES'} the 100 ms target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
