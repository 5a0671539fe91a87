"""Audit log: append-only in the database, written by the middleware and the login signals, read by admins."""

import csv
import io
import ipaddress
import random
import uuid

import pytest
from django.db import DatabaseError, connection, transaction
from django.test import Client

from backend.audit.admin import AuditEventAdmin
from backend.audit.events import ROUTES
from backend.audit.log import record
from backend.audit.models import AuditEvent
from backend.studies.models import Study

pytestmark = [pytest.mark.django_db]

UID = "1.2.826.0.1.3680043.10.999.91"
PASSWORD = "test-password-123"


def events(**filters):
    return list(AuditEvent.objects.filter(**filters).order_by("pk"))


# --- append-only -------------------------------------------------------------------------------------------

def test_database_refuses_update_and_delete_of_audit_rows():
    event = record("view", "report", UID)
    for sql in ("UPDATE audit_auditevent SET action = 'edit' WHERE id = %s",
                "DELETE FROM audit_auditevent WHERE id = %s"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(sql, [event.pk])
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(target_id="forged")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        event.delete()
    event.refresh_from_db()
    assert (event.action, event.target_id) == ("view", UID)


def test_admin_site_is_read_only(rf, users):
    admin = AuditEventAdmin(AuditEvent, None)
    request = rf.get("/admin/audit/auditevent/")
    request.user = users["admin"]
    assert not admin.has_add_permission(request)
    assert not admin.has_change_permission(request)
    assert not admin.has_delete_permission(request)
    assert set(admin.get_readonly_fields(request)) >= {"at", "user", "action", "target_id", "detail"}


# --- what the middleware records ---------------------------------------------------------------------------

def test_report_view_edit_sign_are_recorded_with_user_and_address(client_for, users):
    Study.objects.create(study_instance_uid=UID, patient_id="P1")
    c = client_for("radiologist")
    assert c.get(f"/api/studies/{UID}/report", REMOTE_ADDR="10.9.8.7").status_code == 200
    r = c.post(f"/api/studies/{UID}/report/versions", {"text": "Manual report.", "base_number": None},
               format="json")
    assert r.status_code == 201
    assert c.post(f"/api/studies/{UID}/report/sign", {"number": 1}, format="json").status_code == 200

    rows = events(target_type="report")
    assert [(e.action, e.target_id, e.user, e.username) for e in rows] == [
        ("view", UID, users["radiologist"], "radiologist"),
        ("edit", UID, users["radiologist"], "radiologist"),
        ("sign", UID, users["radiologist"], "radiologist"),
    ]
    assert rows[0].ip == "10.9.8.7"
    assert rows[1].detail["version"] == 1 and rows[2].detail["signed_number"] == 1


def test_failed_and_unlisted_requests_are_not_recorded_but_refusals_are(client_for, users):
    c = client_for("radiologist")
    assert c.get(f"/api/studies/{UID}/report").status_code == 404  # no such study: nothing was shown
    assert c.get("/api/worklist").status_code == 200  # not in the table
    assert AuditEvent.objects.exclude(action="login").count() == 0  # client_for logs in: that one is real
    annotator = client_for("annotator")
    for _ in range(3):  # a refusal is recorded once per caller, route and status per window
        assert annotator.get(f"/api/studies/{UID}/report").status_code == 403
    (refused,) = AuditEvent.objects.exclude(action="login")
    assert (refused.action, refused.user, refused.target_type, refused.target_id) == (
        "refused", users["annotator"], "study-report", f"/api/studies/{UID}/report")
    assert refused.detail["status"] == 403 and refused.detail["method"] == "GET"
    assert "reports.view_report" in refused.detail["reason"]


def test_the_table_only_names_routes_that_exist():
    from django.urls import get_resolver

    names = {name for name in get_resolver().reverse_dict if isinstance(name, str)}
    assert {url_name for url_name, _ in ROUTES} <= names


def test_token_authenticated_calls_are_attributed(users):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    Study.objects.create(study_instance_uid=UID, patient_id="P1")
    token = Token.objects.create(user=users["admin"])
    c = APIClient(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert c.get(f"/api/studies/{UID}/").status_code == 200
    (event,) = events(target_type="study")
    assert (event.action, event.target_id, event.user) == ("view", UID, users["admin"])


@pytest.mark.services
def test_image_views_are_recorded_once_per_user_and_study(orthanc, client_for, upload, phantom_files, users):
    from backend.dicomweb import access_cache

    r = upload(client_for("admin"), phantom_files(seed=9101))
    assert r.status_code == 201, r.content
    study = r.json()["studies"][0]["study_instance_uid"]
    access_cache.forget_all()
    rad = client_for("radiologist")
    for _ in range(3):  # QIDO, then metadata, then again: one event
        assert rad.get(f"/dicom-web/studies/{study}/series").status_code == 200
        assert rad.get(f"/dicom-web/studies/{study}/metadata").status_code == 200
    assert rad.get("/dicom-web/studies").status_code == 200  # a study-less search: not an image view
    ann = client_for("annotator")
    assert ann.get(f"/dicom-web/studies/{study}/series").status_code == 200
    rows = events(target_type="images")
    assert [(e.username, e.target_id, e.action) for e in rows] == [
        ("radiologist", study, "view"), ("annotator", study, "view")]


# --- logins ------------------------------------------------------------------------------------------------

def fresh_ip() -> str:
    """An address no earlier run used: login-failure counters live in Redis for their whole window."""
    return str(ipaddress.IPv4Address(0x0A000000 + random.randrange(1, 2**24 - 1)))


def test_login_and_failed_login_are_recorded_with_address(client, users):
    name, bad_ip, good_ip = f"nosuch-{uuid.uuid4().hex[:8]}", fresh_ip(), fresh_ip()
    client.post("/login", {"username": name, "password": "wrong"}, REMOTE_ADDR=bad_ip)
    client.post("/login", {"username": "radiologist", "password": PASSWORD}, REMOTE_ADDR=good_ip)
    failed, ok = events(action="login_failed"), events(action="login")
    assert [(e.target_id, e.user, e.ip) for e in failed] == [(name, None, bad_ip)]
    assert [(e.target_id, e.user, e.ip, e.detail["method"]) for e in ok] == [
        ("radiologist", users["radiologist"], good_ip, "password")]
    assert "wrong" not in str(failed[0].detail)


def test_forwarded_address_is_read_from_the_trusted_proxy_hop(client, users, settings):
    settings.SPINEAGENT_TRUSTED_PROXIES = 1  # nginx appends the address it saw; what the client sent is left of it
    client.post("/login", {"username": "radiologist", "password": PASSWORD}, REMOTE_ADDR="172.18.0.5",
                HTTP_X_FORWARDED_FOR="6.6.6.6, 10.20.30.40")
    assert events(action="login")[0].ip == "10.20.30.40"
    settings.SPINEAGENT_TRUSTED_PROXIES = 0  # nothing in front: the header is the client's own text
    Client().post("/login", {"username": "radiologist", "password": PASSWORD}, REMOTE_ADDR="10.0.0.9",
                HTTP_X_FORWARDED_FOR="6.6.6.6")
    assert events(action="login")[1].ip == "10.0.0.9"


# --- the admin API -----------------------------------------------------------------------------------------

@pytest.fixture
def some_events(users):
    record("view", "report", "1.1", user=users["radiologist"])
    record("edit", "report", "1.1", user=users["radiologist"])
    record("view", "images", "1.2", user=users["annotator"])
    record("login_failed", "user", "=HYPERLINK(\"http://evil\")", detail={"username": "=HYPERLINK"})


def test_list_filters_and_paginates(client_for, some_events):
    c = client_for("admin")
    body = c.get("/api/audit/events/").json()
    # the four above, then the admin's own login (client_for logs in): newest first
    assert body["count"] == 5 and [e["action"] for e in body["results"][:2]] == ["login", "login_failed"]
    assert c.get("/api/audit/events/?user=radiologist").json()["count"] == 2
    assert c.get("/api/audit/events/?action=view").json()["count"] == 2
    assert c.get("/api/audit/events/?target_type=report&target_id=1.1&action=edit").json()["count"] == 1
    page = c.get("/api/audit/events/?limit=1&offset=1").json()
    assert len(page["results"]) == 1 and page["next"] and page["previous"] is not None
    from django.utils import timezone

    today = timezone.now().date().isoformat()
    assert c.get(f"/api/audit/events/?date_from={today}&date_to={today}").json()["count"] == 5
    assert c.get("/api/audit/events/?date_to=2000-01-01").json()["count"] == 0
    assert c.get("/api/audit/events/?date_from=0001-01-01&date_to=9999-12-31").json()["count"] == 5  # the extremes
    for query, field in (("action=delete", "action"), ("date_from=yesterday", "date_from"),
                         ("date_from=2025-02-02&date_to=2025-02-01", "date_to")):
        r = c.get(f"/api/audit/events/?{query}")
        assert r.status_code == 400 and r.json()["field"] == field


def test_csv_export_streams_escapes_formulas_and_is_itself_recorded(client_for, some_events, users):
    r = client_for("admin").get("/api/audit/export.csv?target_type=user&action=login_failed")
    assert r.status_code == 200 and r["Content-Type"].startswith("text/csv") and r.streaming
    rows = list(csv.reader(io.StringIO(b"".join(r.streaming_content).decode())))
    assert rows[0] == ["at", "user_id", "username", "action", "target_type", "target_id", "ip", "detail"]
    assert len(rows) == 2 and rows[1][3] == "login_failed"
    assert rows[1][5].startswith("'=")  # a spreadsheet shows it as text, does not run it
    (export,) = events(action="export")
    assert export.user == users["admin"] and export.target_type == "audit-log"
    assert export.detail["params"] == {"target_type": "user", "action": "login_failed"}
    assert client_for("admin").get("/api/audit/export.csv?action=nope").status_code == 400
    assert AuditEvent.objects.filter(action="export").count() == 1  # a refused export exported nothing


def test_nul_characters_are_a_400_in_filters_and_harmless_in_events(client_for):
    r = client_for("admin").get("/api/audit/events/?user=a%00b")
    assert r.status_code == 400 and r.json()["field"] == "user"
    event = record("login_failed", "user", "evil\x00name", detail={"username": "evil\x00name"})
    event.refresh_from_db()
    assert "\x00" not in event.target_id and "\x00" not in event.detail["username"]
