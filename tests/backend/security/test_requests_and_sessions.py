"""CSRF on every session write, the webhook's edge cases, claims and take-overs, CSP headers, and internal
addresses kept out of answers (issue 17, findings 3-4)."""

from __future__ import annotations

import time

import pytest
from django.conf import settings
from django.test import Client

pytestmark = [pytest.mark.security, pytest.mark.django_db]

UID = "1.2.826.0.1.3680043.10.999.1717"


# --- CSRF on every session write ------------------------------------------------------------------------------

def schema_writes():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    for path, item in schema["paths"].items():
        for method in ("post", "put", "patch", "delete"):
            if method in item:
                yield path.replace("{study_instance_uid}", UID).replace("{pk}", "1").replace("{id}", "1"), method


def test_every_api_write_with_a_session_needs_the_csrf_token(users):
    """A cross-site form can carry the session cookie but not the token: every write must refuse it."""
    users["admin"].is_superuser = True  # holds every permission: a refusal can only be the CSRF check
    users["admin"].save()
    client = Client(enforce_csrf_checks=True)
    client.force_login(users["admin"])
    writes = [(p, m) for p, m in schema_writes() if p != "/api/orthanc/stable-study"]  # HMAC, no session
    assert len(writes) >= 14
    for path, method in writes:
        response = getattr(client, method)(path, data="{}", content_type="application/json")
        assert response.status_code == 403 and "CSRF" in response.json()["detail"], f"{method} {path}"
    # The same write with the token is not refused for CSRF (whatever else it says).
    client.get("/")  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    response = client.post(f"/api/studies/{UID}/report/claim", data="{}", content_type="application/json",
                           HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 404  # no such study: past the CSRF check


@pytest.mark.parametrize("path", ["/logout", "/logout-everywhere"])
def test_page_forms_need_the_csrf_token(users, path):
    client = Client(enforce_csrf_checks=True)
    client.force_login(users["radiologist"])
    assert client.post(path).status_code == 403
    assert client.get("/").status_code == 200  # still logged in


# --- the Orthanc webhook's edge cases -------------------------------------------------------------------------

def post_webhook(client, timestamp: str, signature: str | None = None, body: bytes = b'{"study_instance_uid": "1.2.3"}'):
    from backend.studies import webhook

    signature = signature if signature is not None else webhook.sign(settings.ORTHANC_WEBHOOK_SECRET, timestamp, body)
    return client.post("/api/orthanc/stable-study", data=body, content_type="application/json",
                       HTTP_X_SPINEAGENT_TIMESTAMP=timestamp, HTTP_X_SPINEAGENT_SIGNATURE=signature)


@pytest.mark.parametrize("timestamp", ["nan", "NaN", "inf", "-inf", "1e9", f"{time.time():.3f}", " 1700000000",
                                       "-0", "0x65", "", "9" * 40, "１７００００００００"])
def test_webhook_refuses_timestamps_that_are_not_whole_seconds_in_the_window(client, timestamp):
    response = post_webhook(client, timestamp)
    assert response.status_code == 403, timestamp


def test_webhook_refuses_old_future_and_replayed_announcements(client, orthanc):
    now = int(time.time())
    assert post_webhook(client, str(now - 301)).status_code == 403
    assert post_webhook(client, str(now + 301)).status_code == 403
    first = post_webhook(client, str(now))
    assert first.status_code == 404  # signed and fresh: Orthanc has no such study, so 404 (not a refusal)
    replay = post_webhook(client, str(now))  # the same headers and body, captured and sent again
    assert replay.status_code == 403 and replay.json()["detail"] == "replayed signature"


def test_webhook_refuses_garbage_signatures_without_crashing(client):
    now = str(int(time.time()))
    for signature in ("ÿ" * 64, "G" * 64, "abc", "", "0" * 64):
        response = post_webhook(client, now, signature=signature)
        assert response.status_code == 403, signature


# --- claims and take-overs ------------------------------------------------------------------------------------

@pytest.fixture
def second_radiologist(users):
    from django.contrib.auth.models import Group, User

    user = User.objects.create_user("radiologist2", password="another-long-password-2")
    user.groups.add(Group.objects.get(name="radiologist"))
    return user


@pytest.fixture
def drafted(users):
    from backend.reports.models import Report, ReportVersion
    from backend.studies.models import Study

    study = Study.objects.create(study_instance_uid=UID, patient_id="P17")
    report = Report.objects.create(study=study, status=Report.DRAFT_READY, current_number=0)
    ReportVersion.objects.create(report=report, number=0, text="AI draft.", source=ReportVersion.AI)
    return report


def test_reading_a_report_claims_nothing_and_a_cross_site_post_cannot_claim(drafted, users):
    from backend.reports.models import Report

    client = Client(enforce_csrf_checks=True)
    client.force_login(users["radiologist"])
    assert client.get(f"/api/studies/{UID}/report").status_code == 200
    assert client.post(f"/api/studies/{UID}/report/claim").status_code == 403  # no CSRF token
    report = Report.objects.get()
    assert (report.status, report.reader, report.first_opened_at) == ("draft_ready", None, None)


def test_another_readers_report_needs_an_explicit_audited_take_over(drafted, users, second_radiologist, client_for):
    from rest_framework.test import APIClient

    from backend.audit.models import AuditEvent
    from backend.reports.models import Report

    first = client_for("radiologist")
    assert first.post(f"/api/studies/{UID}/report/claim", {}, format="json").status_code == 200
    second = APIClient()
    second.force_login(second_radiologist)
    body = second.get(f"/api/studies/{UID}/report").json()
    assert body["reader"] == "radiologist" and body["permissions"]["take_over"] is True
    assert body["permissions"]["edit"] is False and body["permissions"]["sign"] is False
    for call in (lambda: second.post(f"/api/studies/{UID}/report/claim", {}, format="json"),
                 lambda: second.post(f"/api/studies/{UID}/report/versions", {"text": "Mine.", "base_number": 0},
                                     format="json"),
                 lambda: second.post(f"/api/studies/{UID}/report/sign", {"number": 0, "radpeer_score": "1"},
                                     format="json")):
        response = call()
        assert response.status_code == 409 and response.json()["error"] == "claimed", response.content
        assert response.json()["reader"] == "radiologist"
    assert Report.objects.get().reader == users["radiologist"] and Report.objects.get().versions.count() == 1

    taken = second.post(f"/api/studies/{UID}/report/claim", {"take_over": True}, format="json")
    assert taken.status_code == 200 and taken.json()["took_over_from"] == "radiologist"
    assert Report.objects.get().reader == second_radiologist
    event = AuditEvent.objects.filter(target_type="report", username="radiologist2").latest("pk")
    assert event.detail["took_over_from"] == "radiologist" and event.detail["claimed_by"] == "radiologist2"
    # Now the first reader is the one who must take it back.
    again = first.post(f"/api/studies/{UID}/report/versions", {"text": "Late edit.", "base_number": 0}, format="json")
    assert again.status_code == 409 and again.json()["reader"] == "radiologist2"
    assert second.post(f"/api/studies/{UID}/report/versions", {"text": "Mine.", "base_number": 0},
                       format="json").status_code == 201


# --- Content-Security-Policy ------------------------------------------------------------------------------------

def test_every_page_and_answer_carries_the_csp(client_for):
    admin = client_for("admin")
    for path in ("/login", "/", "/analytics/", "/annotate/", "/api/me", "/viewer-ext/extension.js"):
        response = admin.get(path)
        policy = response["Content-Security-Policy"]
        assert "'unsafe-inline'" not in policy.split("style-src")[0], path  # never for scripts
        assert "object-src 'none'" in policy and "frame-ancestors" in policy, path
    assert admin.get("/").get("Content-Security-Policy") == settings.SPINEAGENT_CSP_PAGES
    assert admin.get("/viewer-ext/extension.js")["Content-Security-Policy"] == settings.SPINEAGENT_CSP_VIEWER
    login = Client().get("/login").content.decode()
    assert "<script>" not in login and "<style>" not in login and 'style="' not in login


# --- internal addresses ---------------------------------------------------------------------------------------

def test_answers_never_name_orthancs_address(client_for, settings, users):
    from backend.devstack.services import free_port

    port = free_port()
    settings.ORTHANC_URL = f"http://127.0.0.1:{port}"  # nothing listens: every call below fails to connect
    settings.ORTHANC_TIMEOUT = 0.5
    admin = client_for("admin")
    responses = [admin.get("/dicom-web/studies"), admin.post("/api/studies/resync"),
                 admin.get("/api/dicom/modalities")]
    for response in responses:
        body = b"".join(response.streaming_content) if response.streaming else response.content
        assert response.status_code == 503, body
        assert str(port).encode() not in body and b"127.0.0.1" not in body, body


def test_job_reasons_shown_to_readers_carry_no_address(db):
    from backend.errors import redact_addresses
    from backend.inference import jobs
    from backend.inference.models import InferenceJob
    from backend.studies.models import Study

    study = Study.objects.create(study_instance_uid=UID)
    job = InferenceJob.objects.create(study=study, status=InferenceJob.RUNNING)
    jobs.end(job.pk, InferenceJob.FAILED, "ConnectionError: HTTPConnectionPool(host='orthanc.internal', port=8042): "
                                          "Max retries exceeded with url: http://orthanc.internal:8042/dicom-web/x")
    job.refresh_from_db()
    assert "orthanc.internal" not in job.error and "8042" not in job.error and "ConnectionError" in job.error
    # DICOM UIDs are not addresses.
    assert redact_addresses("study 1.2.840.10008.5.1.4.1 has no series") == "study 1.2.840.10008.5.1.4.1 has no series"
