"""The review loop's retraining on the running demo, through the API a site would use (issue 20, item 5).

Start the demo first (`bash scripts/demo.sh --studies 12`), then, from the checkout:

    .venv/bin/python scripts/demo_retrain.py --studies 12 --chain heads

It imports the demo phantoms' reports as label tasks, verifies each as the demo annotator (with the
phantom's own labels: SYNTHETIC), snapshots a dataset version split by patient, starts a training run with
the chosen chain (probes, heads, align+heads) on the demo worker's `training` queue, follows its stages and
prints the run's log, per-stage seconds, the comparison with the active model and the promotion gate. It
promotes nothing: that stays the admin's decision on /training/.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]


def token(user: str) -> str:
    out = subprocess.run([sys.executable, "manage.py", "drf_create_token", user], cwd=ROOT, check=True,
                         capture_output=True, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1")).stdout
    return out.split()[2]


def split_seed(groups: list[str], ratios: dict) -> int:
    """The first split seed that puts at least one patient in each of train, val and test."""
    from spinefm.dataset import split_of_group

    for seed in range(1000):
        if {split_of_group(g, seed, ratios) for g in groups} == {"train", "val", "test"}:
            return seed
    raise SystemExit("no split seed gives three non-empty splits: use more studies")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="http://127.0.0.1:8000")
    ap.add_argument("--studies", type=int, default=12, help="the demo's phantom studies (seed 1, index 0..n-1)")
    ap.add_argument("--chain", default="heads", choices=["probes", "heads", "align+heads"])
    ap.add_argument("--steps", type=int, default=100, help="diagnosis-head steps")
    ap.add_argument("--timeout", type=float, default=900)
    args = ap.parse_args(argv)
    sys.path[:0] = [str(ROOT), str(ROOT / "models")]
    import spine_phantom

    admin = requests.Session()
    admin.headers["Authorization"] = f"Token {token('admin')}"
    annotator = requests.Session()
    annotator.headers["Authorization"] = f"Token {token('annotator')}"

    phantoms = [spine_phantom.generate_study(seed=1, index=i) for i in range(args.studies)]
    truth = {p.study_instance_uid: p.truth["labels"] for p in phantoms}
    r = admin.post(f"{args.url}/api/annotations/import", json={"reports": [
        {"study_instance_uid": p.study_instance_uid, "patient_id": p.patient_id, "report": p.truth["report"]["text"]}
        for p in phantoms]}, timeout=120)
    r.raise_for_status()
    print("import:", {k: v for k, v in r.json().items() if k in ("created", "existing", "errors")})

    verified = 0
    queue = annotator.get(f"{args.url}/api/annotations/tasks/", params={"page_size": 200}, timeout=60).json()
    for task in queue.get("results", queue if isinstance(queue, list) else []):
        uid = task.get("study_instance_uid")
        if uid in truth:
            r = annotator.post(f"{args.url}/api/annotations/tasks/{task['id']}/annotations",
                               json={"labels": truth[uid], "comment": "demo: the phantom's own labels"}, timeout=60)
            verified += r.status_code == 201
    print(f"verified {verified} tasks as the demo annotator (SYNTHETIC phantom labels)")

    ratios = {"train": 0.5, "val": 0.25, "test": 0.25}
    seed = split_seed([f"patient:{p.patient_id}" for p in phantoms], ratios)
    r = admin.post(f"{args.url}/api/training/datasets/", json={"name": "demo-retrain", "seed": seed, "ratios": ratios},
                   timeout=120)
    r.raise_for_status()
    ds = r.json()
    print(f"dataset {ds['name']} v{ds['version']}: {ds['counts']['items']} items, splits "
          f"{ {k: v['items'] for k, v in ds['counts']['splits'].items()} }")

    r = admin.post(f"{args.url}/api/training/runs/", json={
        "dataset": ds["id"], "options": {"chain": args.chain, "steps": args.steps, "seg_steps": 20, "align_steps": 10,
                                         "n_boot": 50}}, timeout=60)
    r.raise_for_status()
    run_id, started, seen = r.json()["id"], time.monotonic(), 0
    while True:
        run = admin.get(f"{args.url}/api/training/runs/{run_id}/", timeout=60).json()
        lines = (run.get("log") or "").splitlines()
        for line in lines[seen:]:
            print("  log:", line[:160])
        seen = len(lines)
        if run["status"] in ("succeeded", "failed"):
            break
        if time.monotonic() - started > args.timeout:
            raise SystemExit(f"run {run_id} still {run['status']} after {args.timeout:.0f} s")
        time.sleep(3)
    took = time.monotonic() - started
    print(f"run {run_id} ({args.chain}) {run['status']} in {took:.0f} s" + (f": {run['error']}" if run["error"] else ""))
    if run["status"] != "succeeded":
        return 1
    gate = admin.get(f"{args.url}/api/training/runs/{run_id}/gate", timeout=60).json()["gate"]
    metrics = run["metrics"]
    print("stage seconds:", metrics.get("stage_seconds"))
    lower = gate.get("mean_auroc_lower") or {}
    print("candidate:", run["candidate"]["name"], run["candidate"]["version"],
          "| mean AUROC lower bound, candidate vs active:", lower.get("candidate"), lower.get("active"))
    print("gate:", "passes" if gate["passed"] else "refuses: " + "; ".join(gate.get("reasons", [])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
