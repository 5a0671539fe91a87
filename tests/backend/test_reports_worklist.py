"""The worklist: derived statuses, filters, quick filters, sorting, and a query count that does not grow with rows."""

import datetime as dt

import pytest
from django.utils import timezone

from backend.inference.models import InferenceJob, ModelVersion
from backend.reports.models import Report
from backend.studies.models import Study

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def model_version(db):
    return ModelVersion.objects.create(name="phantom-nano", version="0.3", path="builtin:test")


def _study(n, job_status=None, report_status=None, model_version=None, reader=None, signed_by=None, day=1,
           earlier_job=None, priority=None, opened=None):
    study = Study.objects.create(study_instance_uid=f"1.2.826.0.1.3680043.10.999.7{n:03d}", patient_id=f"P{n}",
                                 patient_name=f"Phantom^{n}", study_date=dt.date(2026, 3, day),
                                 study_description="MR LSPINE", modalities="MR", num_series=4)
    Study.objects.filter(pk=study.pk).update(received_at=timezone.now() - dt.timedelta(minutes=100 - n))
    if earlier_job:
        InferenceJob.objects.create(study=study, status=earlier_job, trigger="auto", model_version=model_version)
    if job_status:
        error = {"unsupported": "modality CT is not MR", "failed": "Orthanc stayed unavailable"}.get(job_status, "")
        InferenceJob.objects.create(study=study, status=job_status, trigger="manual", model_version=model_version,
                                    error=error)
    if report_status:
        Report.objects.create(study=study, status=report_status, reader=reader, signed_by=signed_by,
                              current_number=0 if report_status != "no_draft" else None, ai_priority=priority,
                              first_opened_at=opened if opened is not None else (timezone.now() if reader else None))
    return study


@pytest.fixture
def worklist(users, model_version):
    rad = users["radiologist"]
    return {
        "queued": _study(1, "queued", model_version=model_version),
        "running": _study(2, "running", model_version=model_version, day=2),
        "failed": _study(3, "failed", day=3),
        "unsupported": _study(4, "unsupported", day=4),
        "draft ready": _study(5, "succeeded", "draft_ready", model_version, day=5, priority=2),
        "in review": _study(6, "succeeded", "in_review", model_version, reader=rad, day=6, priority=0),
        "signed": _study(7, "succeeded", "signed", model_version, reader=rad, signed_by=rad, day=7, priority=1),
        "rerun queued on signed": _study(8, "queued", "signed", model_version, signed_by=rad, day=8,
                                         earlier_job="succeeded"),
        "rerun failed, draft kept": _study(9, "failed", "draft_ready", model_version, day=9,
                                           earlier_job="succeeded"),
        "nothing": _study(10, day=10),
    }


def _rows(client, query=""):
    r = client.get("/api/worklist" + query)
    assert r.status_code == 200, r.content
    return r.json()


def test_statuses_and_ordering(worklist, client_for):
    body = _rows(client_for("radiologist"))
    assert body["count"] == 10
    rows = {row["study_instance_uid"]: row for row in body["results"]}
    expected = {"queued": "queued", "running": "running", "failed": "failed", "unsupported": "unsupported",
                "draft ready": "draft ready", "in review": "in review", "signed": "signed",
                "rerun queued on signed": "signed", "rerun failed, draft kept": "draft ready",
                "nothing": "not queued"}
    for key, status in expected.items():
        assert rows[worklist[key].study_instance_uid]["status"] == status, key
    # newest received first
    assert [r["patient_id"] for r in body["results"]] == [f"P{n}" for n in range(10, 0, -1)]
    row = rows[worklist["unsupported"].study_instance_uid]
    assert row["job_status"] == "unsupported" and row["reason"] == "modality CT is not MR"
    assert row["status_label"] == "Unsupported (not a spine MRI)"
    row = rows[worklist["failed"].study_instance_uid]
    assert row["reason"] == "Orthanc stayed unavailable" and row["status_label"] == "Analysis failed"
    # a failed re-run beside a kept draft is no reason to show: the draft is there to read
    assert rows[worklist["rerun failed, draft kept"].study_instance_uid]["reason"] is None
    assert rows[worklist["draft ready"].study_instance_uid]["priority_label"] == "urgent finding"
    row = rows[worklist["signed"].study_instance_uid]
    assert row["reader"] == "radiologist" and row["model_version"]["name"] == "phantom-nano"
    assert set(row) >= {"study_instance_uid", "patient_id", "patient_name", "study_date", "study_description",
                        "modalities", "num_series", "received_at", "status", "job_status", "reader",
                        "model_version"}
    assert row["study_date"] == "2026-03-07" and row["num_series"] == 4


def test_filters_and_paging(worklist, client_for):
    c = client_for("admin")
    assert {r["status"] for r in _rows(c, "?status=failed")["results"]} == {"failed"}
    assert _rows(c, "?status=failed")["count"] == 1
    assert _rows(c, "?status=draft_ready,in%20review")["count"] == 3
    dated = _rows(c, "?date_from=2026-03-03&date_to=2026-03-05")["results"]
    assert sorted(r["patient_id"] for r in dated) == ["P3", "P4", "P5"]
    assert sorted(r["patient_id"] for r in _rows(c, "?reader=radiologist")["results"]) == ["P6", "P7", "P8"]
    page = _rows(c, "?limit=3&offset=3")
    assert page["count"] == 10 and [r["patient_id"] for r in page["results"]] == ["P7", "P6", "P5"]
    # With a status filter the total is read off the page's rows; past the end it is counted apart.
    second = _rows(c, "?status=draft_ready,in%20review&limit=2&offset=2")
    assert second["count"] == 3 and len(second["results"]) == 1 and second["previous"] and not second["next"]
    beyond = _rows(c, "?status=failed,unsupported&offset=5")
    assert beyond["count"] == 2 and beyond["results"] == []
    assert c.get("/api/worklist?status=bogus").status_code == 400
    assert c.get("/api/worklist?date_from=03/01/2026").status_code == 400


def test_unsupported_hidden_on_request_failed_kept(worklist, client_for):
    c = client_for("radiologist")
    shown = _rows(c, "?hide=unsupported")
    assert shown["count"] == 9 and "unsupported" not in {r["status"] for r in shown["results"]}
    assert "failed" in {r["status"] for r in shown["results"]}
    assert _rows(c, "?status=unsupported")["count"] == 1
    assert _rows(c, "?status=failed,unsupported&hide=unsupported")["count"] == 1
    assert c.get("/api/worklist?status=unsupported&hide=unsupported").status_code == 400
    assert c.get("/api/worklist?hide=nonsense").status_code == 400


def test_quick_filters(worklist, client_for, users):
    c = client_for("radiologist")
    mine = _rows(c, "?mine=1")["results"]
    assert sorted(r["patient_id"] for r in mine) == ["P6", "P7", "P8"]
    assert _rows(client_for("admin"), "?mine=1")["count"] == 0
    # unread: nobody opened it and it is not signed (no report yet counts as unread)
    unread = sorted(r["patient_id"] for r in _rows(c, "?unread=1")["results"])
    assert unread == ["P1", "P10", "P2", "P3", "P4", "P5", "P9"]
    assert [r["patient_id"] for r in _rows(c, "?unread=1&status=draft_ready")["results"]] == ["P9", "P5"]
    assert c.get("/api/worklist?mine=maybe").status_code == 400


@pytest.mark.parametrize("ordering, first, last", [
    ("-received", "P10", "P1"), ("received", "P1", "P10"), ("date", "P1", "P10"), ("-date", "P10", "P1"),
    # workflow order: queued, running, draft ready (P9 before P5: newest first within a status), ...
    ("status", "P1", "P10"), ("-status", "P10", "P1"),
    ("-priority", "P5", "P1"), ("priority", "P6", "P1"),  # no priority (no draft) last
])
def test_sorting(worklist, client_for, ordering, first, last):
    rows = _rows(client_for("admin"), f"?ordering={ordering}")["results"]
    assert (rows[0]["patient_id"], rows[-1]["patient_id"]) == (first, last), [r["patient_id"] for r in rows]


def test_sorting_by_status_and_reader_pages_in_order(worklist, client_for):
    c = client_for("admin")
    ids = [r["patient_id"] for r in _rows(c, "?ordering=status")["results"]]
    assert ids == ["P1", "P2", "P9", "P5", "P6", "P8", "P7", "P3", "P4", "P10"]
    paged = _rows(c, "?ordering=status&limit=4&offset=4")
    assert paged["count"] == 10 and [r["patient_id"] for r in paged["results"]] == ids[4:8]
    by_reader = [r["reader"] for r in _rows(c, "?ordering=reader")["results"]]
    assert by_reader[:3] == ["radiologist"] * 3 and by_reader[3:] == [None] * 7  # no reader last
    assert c.get("/api/worklist?ordering=patient_name").status_code == 400


def test_query_count_does_not_grow_with_rows(worklist, client_for, model_version,
                                             django_assert_max_num_queries):
    c = client_for("radiologist")
    c.get("/api/worklist")  # warm the session and permission caches of this client
    # session, user, 2 permission lookups, the page's ids, its rows, the count: independent of the number of rows
    with django_assert_max_num_queries(7) as few:
        _rows(c)
    for n in range(11, 41):
        _study(n, "succeeded", "draft_ready", model_version)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert _rows(c)["count"] == 40


def test_annotator_sees_statuses_but_not_reports(worklist, client_for):
    client = client_for("annotator")
    rows = client.get("/api/worklist").json()["results"]
    assert rows and all("status" in row and "text" not in row for row in rows)
    assert client.get(f"/api/studies/{rows[0]['study_instance_uid']}/report").status_code == 403
    assert client_for("nobody").get("/api/worklist").status_code == 403


def test_the_unsupported_shortcut_agrees_with_the_display_status(worklist, model_version, users):
    """Hiding unsupported studies uses unsupported_study_ids (from the few unsupported jobs), not the CASE
    over every study: the two must name the same studies, whatever came before or after the unsupported job."""
    from backend.reports import worklist as wl

    rad = users["radiologist"]
    _study(11, "unsupported", earlier_job="succeeded", model_version=model_version)  # re-run found it unsupported
    _study(12, "succeeded", "draft_ready", model_version, earlier_job="unsupported")  # re-run after a fix
    _study(13, "unsupported", "in_review", model_version, reader=rad)  # someone reads it anyway
    _study(14, "unsupported", "no_draft", model_version)  # a report row without a version
    by_case = set(wl.worklist_queryset(every_row=True).filter(display_status="unsupported").values_list("pk", flat=True))
    assert by_case == set(wl.unsupported_study_ids().values_list("study_id", flat=True))
    assert {Study.objects.get(pk=pk).patient_id for pk in by_case} == {"P4", "P11", "P14"}


@pytest.mark.parametrize("query", ["?hide=unsupported", "?hide=unsupported&ordering=-priority",
                                   "?hide=unsupported&ordering=reader", "?ordering=-date&limit=3&offset=2",
                                   "?hide=unsupported&unread=1&ordering=date"])
def test_the_cheap_path_pages_like_the_every_row_path(worklist, client_for, query):
    """Without a status filter the page is picked on the studies alone; it must equal the every-row query."""
    c = client_for("radiologist")
    cheap = _rows(c, query)
    full = _rows(c, query + "&status=" + ",".join(s.replace(" ", "%20") for s in
                                                   ("queued", "running", "draft ready", "in review", "signed",
                                                    "failed", "not queued")))
    hidden = "hide=unsupported" in query
    if not hidden:
        full = _rows(c, query + "&status=queued,running,draft_ready,in_review,signed,failed,unsupported,not_queued")
    assert [r["patient_id"] for r in cheap["results"]] == [r["patient_id"] for r in full["results"]]
    assert cheap["count"] == full["count"]
