"""Dataset versions: patient-level deterministic splits, immutability, JSON/CSV exports (audited), the API."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.db import connection, transaction

from backend.annotations.models import LabelTask, VerifiedLabels
from backend.audit.models import AuditEvent
from backend.studies.models import Study
from backend.training import datasets
from backend.training.models import DatasetVersion, ImmutableDataset
from spinefm.conditions import CONDITIONS

pytestmark = [pytest.mark.django_db]
KEYS = [c.key for c in CONDITIONS]


def labels_for(n: int) -> dict:
    """A deterministic full label set: condition j is present when bit j of n is set; one uncertain."""
    out = {k: (n >> j) & 1 for j, k in enumerate(KEYS)}
    out[KEYS[-1]] = -1 if n % 7 == 0 else out[KEYS[-1]]
    return out


def verified(uid: str, patient: str = "", source: str = LabelTask.IMPORTED, n: int = 0, study=None) -> VerifiedLabels:
    text = f"report {uid} {n}"
    task = LabelTask.objects.create(study=study, study_instance_uid=uid, patient_id=patient, source=source,
                                    text=text, text_sha256=f"{abs(hash(text)):064d}"[:64], status=LabelTask.DONE)
    return VerifiedLabels.objects.create(task=task, labels=labels_for(n), method=VerifiedLabels.SINGLE)


@pytest.fixture
def population():
    """120 patients with 1-3 studies each, plus 20 studies without a patient id (split by study UID)."""
    n = 0
    for p in range(120):
        for s in range(1 + p % 3):
            verified(f"1.2.3.{p}.{s}", patient=f"P{p:04d}", n=n)
            n += 1
    for s in range(20):
        verified(f"1.2.4.{s}", patient="", n=n)
        n += 1
    return n


def test_split_is_patient_level_deterministic_and_stable_across_versions(population, users):
    v1 = datasets.snapshot("spine", user=users["admin"], seed=3)
    again = datasets.snapshot("spine", seed=3)
    assert (v1.version, again.version) == (1, 2)
    assert [i["split"] for i in v1.items] == [i["split"] for i in again.items]
    assert v1.sha256 == again.sha256 == datasets.items_sha256(v1.items)

    split_of_group: dict[str, set] = {}
    for item in v1.items:
        split_of_group.setdefault(item["group"], set()).add(item["split"])
    assert all(len(s) == 1 for s in split_of_group.values()), "a patient spans splits"
    assert sum(1 for g in split_of_group if g.startswith("study:")) == 20  # no patient id: the study is the unit
    assert {i["split"] for i in v1.items} == {"train", "val", "test"}
    patients = v1.counts["splits"]
    assert sum(s["patients"] for s in patients.values()) == v1.counts["patients"] == 140
    assert 0.55 < patients["train"]["patients"] / 140 < 0.85  # expected 0.70; 140 draws

    other_seed = datasets.snapshot("spine", seed=4)
    assert [i["split"] for i in other_seed.items] != [i["split"] for i in v1.items]
    assert other_seed.sha256 != v1.sha256

    # New labels arrive: every patient already in v1 keeps its split (no test patient moves into train).
    for p in range(120, 160):
        verified(f"1.2.5.{p}", patient=f"P{p:04d}", n=p)
    verified("1.2.3.0.9", patient="P0000", n=999)  # a new study of an old patient joins that patient's split
    later = datasets.snapshot("spine", seed=3)
    before = {i["group"]: i["split"] for i in v1.items}
    assert all(before.get(i["group"], i["split"]) == i["split"] for i in later.items)
    assert later.counts["items"] == v1.counts["items"] + 41


def test_ratios_and_filters(population):
    only_train_test = datasets.snapshot("tt", seed=1, ratios={"train": 1, "val": 0, "test": 1})
    assert only_train_test.ratios == {"train": 0.5, "val": 0.0, "test": 0.5}
    assert only_train_test.counts["splits"]["val"]["items"] == 0
    verified("9.9.9", patient="S1", source=LabelTask.SIGNED, n=5)
    signed = datasets.snapshot("signed", filters={"source": "signed"})
    assert [i["study_instance_uid"] for i in signed.items] == ["9.9.9"] and signed.filters == {"source": "signed"}
    assert datasets.snapshot("late", filters={"decided_from": "2000-01-01"}).counts["items"] == population + 1
    with pytest.raises(datasets.Conflict):
        datasets.snapshot("none", filters={"decided_to": "2000-01-01"})
    for bad in ({"train": 0, "test": 1}, {"train": -1, "test": 1}, {"tets": 1}, [0.7, 0.3], {"train": True, "test": 1}):
        with pytest.raises(datasets.Invalid):
            datasets.parse_ratios(bad)
    for bad in ({"source": "fax"}, {"colour": 1}, {"decided_from": "yesterday"}, "x",
                {"decided_from": "2020-01-02", "decided_to": "2020-01-01"}):
        with pytest.raises(datasets.Invalid):
            datasets.parse_filters(bad)
    for bad_name in ("", " x", "a/b", "x" * 129, None, 5):
        with pytest.raises(datasets.Invalid):
            datasets.parse_name(bad_name)


def test_phantom_items_make_a_synthetic_dataset(db):
    study = Study.objects.create(study_instance_uid="1.5.1", patient_id="X1",
                                 study_description="SYNTHETIC PHANTOM MRI LUMBAR SPINE")
    verified("1.5.1", study=study, n=1)
    verified("1.5.2", patient="PHANTOM-S1-0002", n=2)
    verified("1.5.3", patient="REAL-3", n=3)
    ds = datasets.snapshot("mixed")
    assert [i["synthetic"] for i in ds.items] == [True, True, False]
    assert ds.synthetic and ds.counts["synthetic_items"] == 2
    assert ds.items[0]["patient_id"] == "X1"  # taken from the indexed study when the task has none
    assert datasets.summary(ds)["label"].startswith("SYNTHETIC")
    real = datasets.snapshot("real", filters={"decided_from": "2000-01-01"})
    assert real.synthetic  # filters do not hide phantom items: still synthetic
    VerifiedLabels.objects.filter(task__study_instance_uid__in=["1.5.1", "1.5.2"]).delete()
    assert not datasets.snapshot("real-only").synthetic


def test_dataset_versions_cannot_change(population, users):
    ds = datasets.snapshot("frozen", user=users["admin"])
    ds.items = []
    with pytest.raises(ImmutableDataset):
        ds.save()
    with pytest.raises(ImmutableDataset):
        DatasetVersion.objects.filter(pk=ds.pk).update(description="changed")
    with pytest.raises(Exception, match="immutable"), transaction.atomic():  # below the ORM: the trigger
        with connection.cursor() as cur:
            cur.execute("UPDATE training_datasetversion SET items = '[]'::jsonb WHERE id = %s", [ds.pk])
    fresh = DatasetVersion.objects.get(pk=ds.pk)
    assert fresh.sha256 == datasets.items_sha256(fresh.items) and len(fresh.items) == population
    users["admin"].delete()  # the creator may go: created_by becomes NULL, nothing else changes
    assert DatasetVersion.objects.get(pk=ds.pk).created_by is None


def test_api_snapshot_detail_and_exports(population, client_for):
    admin = client_for("admin")
    r = admin.post("/api/training/datasets/", {"name": "api", "seed": 2, "description": "first"}, format="json")
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["version"] == 1 and body["counts"]["items"] == population and "items" not in body
    pk = body["id"]
    assert admin.get(f"/api/training/datasets/{pk}/").json()["sha256"] == body["sha256"]
    assert admin.get("/api/training/datasets/", {"name": "api"}).json()["count"] == 1
    for method in ("put", "patch", "delete"):
        assert getattr(admin, method)(f"/api/training/datasets/{pk}/", {"name": "x"}, format="json").status_code == 405

    ds = DatasetVersion.objects.get(pk=pk)
    r = admin.get(f"/api/training/datasets/{pk}/export.json")
    assert r.status_code == 200 and r.streaming and r["X-Dataset-SHA256"] == ds.sha256
    exported = json.loads(b"".join(r.streaming_content))
    assert exported["items"] == ds.items and exported["dataset"]["sha256"] == ds.sha256
    assert datasets.items_sha256(exported["items"]) == ds.sha256  # anyone can check an export against its hash

    r = admin.get(f"/api/training/datasets/{pk}/export.csv")
    assert r.status_code == 200 and r["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(r.streaming_content).decode())))
    assert len(rows) == population
    first = ds.items[0]
    assert rows[0]["study_instance_uid"] == first["study_instance_uid"] and rows[0]["split"] == first["split"]
    assert {k: int(rows[0][k]) for k in KEYS} == first["labels"]

    events = list(AuditEvent.objects.filter(action="export", target_type="dataset", target_id=str(pk))
                  .order_by("at", "pk"))
    assert [e.detail["format"] for e in events] == ["json", "csv"]
    assert events[0].username == "admin" and events[0].detail["sha256"] == ds.sha256


def test_api_errors_are_clear_json(db, client_for):
    admin = client_for("admin")
    r = admin.post("/api/training/datasets/", {"name": "empty"}, format="json")
    assert r.status_code == 409 and r.json()["error"] == "conflict"
    r = admin.post("/api/training/datasets/", {"name": "bad name!"}, format="json")
    assert r.status_code == 400 and r.json()["field"] == "name"
    r = admin.post("/api/training/datasets/", [1, 2], format="json")
    assert r.status_code == 400
    r = admin.post("/api/training/datasets/", {"name": "x", "ratios": {"train": 0}}, format="json")
    assert r.status_code == 400 and r.json()["field"] == "ratios"
    assert admin.get("/api/training/datasets/999999/export.csv").status_code == 404
    assert client_for("annotator").get("/api/training/datasets/").status_code == 403


# ---- per condition x level (issue 23 item 2) ------------------------------------------------------------------

def test_items_and_exports_carry_level_labels_and_targets_come_from_them(db, client_for, users):
    from backend.annotations import services

    task = services.create_task(study_instance_uid="1.2.5.1", text="Canal stenosis at L4-5.",
                                source=LabelTask.IMPORTED)[0]
    services.submit_annotation(task, users["annotator"], None, level_labels={
        **{k: {"study": 0} for k in KEYS}, "canal": {"L3-L4": -1, "L4-L5": 1}, "herniation": {"L5-S1": -1}})
    old = verified("1.2.5.2", patient="P9", n=1)  # verified before per-level labels: level_labels is None
    assert old.level_labels is None
    ds = datasets.snapshot("levels")
    by_uid = {i["study_instance_uid"]: i for i in ds.items}
    new = by_uid["1.2.5.1"]
    assert new["level_labels"]["canal"] == {"L3-L4": -1, "L4-L5": 1} and new["labels"]["canal"] == 1
    assert by_uid["1.2.5.2"]["level_labels"]["canal"] == {"study": labels_for(1)["canal"]}
    assert ds.sha256 == datasets.items_sha256(ds.items)
    # the per-condition targets the probes train on: derived from the levels; an older item: its labels
    assert datasets.condition_targets(new)["canal"] == 1 and datasets.condition_targets(new)["herniation"] == -1
    assert datasets.condition_targets({"labels": {"canal": 0}}) == {"canal": 0}
    assert datasets.condition_targets({"labels": {"canal": 1}, "level_labels": {"canal": {"L4-L5": 0}}}) == {
        "canal": 0}
    # the cells the level agent retrains on (chain.py): present at a spinal level; none for an older item
    assert datasets.present_levels(new) == [("canal", "L4-L5")]
    assert datasets.present_levels(by_uid["1.2.5.2"]) == [] == datasets.present_levels({"labels": {"canal": 1}})
    assert datasets.present_levels({"level_labels": {"canal": {"multilevel": 1, "study": 1, "L5-S1": 1, "L3-L4": 1},
                                                     "herniation": {"L2-L3": 0}}}) == [("canal", "L3-L4"),
                                                                                       ("canal", "L5-S1")]

    admin = client_for("admin")
    exported = json.loads(b"".join(admin.get(f"/api/training/datasets/{ds.pk}/export.json").streaming_content))
    assert exported["items"] == ds.items
    r = admin.get(f"/api/training/datasets/{ds.pk}/export.csv")
    reader = csv.reader(io.StringIO(b"".join(r.streaming_content).decode()))
    header, *rows = list(reader)
    level_cols = [h for h in header if "@" in h]
    # one column per condition x level that occurs: canal at study (the old item), L3-L4, L4-L5; herniation at
    # study and L5-S1; every other condition at study only
    assert level_cols[:3] == ["canal@study", "canal@L3-L4", "canal@L4-L5"]
    assert "herniation@L5-S1" in level_cols and len(level_cols) == len(KEYS) + 3
    row = {r_[header.index("study_instance_uid")]: dict(zip(header, r_)) for r_ in rows}
    assert (row["1.2.5.1"]["canal@L4-L5"], row["1.2.5.1"]["canal@L3-L4"], row["1.2.5.1"]["canal@study"]) == (
        "1", "-1", "")  # empty: this item does not name canal at study level
    assert row["1.2.5.2"]["canal@L4-L5"] == "" and row["1.2.5.1"]["canal"] == "1"
