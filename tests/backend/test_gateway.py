"""/dicom-web/ forwards QIDO-RS/WADO-RS to Orthanc for users with image access only."""

import pytest

pytestmark = [pytest.mark.services, pytest.mark.django_db]


@pytest.fixture
def stored_study(orthanc_admin, client_for, phantom_files, upload, users):
    files = phantom_files(seed=301)
    body = upload(client_for("admin"), files).json()
    return body["studies"][0]["study_instance_uid"]


def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.mark.parametrize("role, expected", [(None, {401, 403}), ("nobody", {403}), ("radiologist", {200}),
                                            ("annotator", {200}), ("admin", {200})])
def test_qido_requires_image_permission(stored_study, client_for, role, expected):
    response = client_for(role).get(f"/dicom-web/studies?StudyInstanceUID={stored_study}")
    assert response.status_code in expected


def test_wado_instance_is_byte_identical_to_orthanc(stored_study, client_for, orthanc_admin):
    client = client_for("radiologist")
    series = body_of(client.get(f"/dicom-web/studies/{stored_study}/series"))
    import json

    series_uid = json.loads(series)[0]["0020000E"]["Value"][0]
    instances = json.loads(body_of(client.get(f"/dicom-web/studies/{stored_study}/series/{series_uid}/instances")))
    sop = instances[0]["00080018"]["Value"][0]
    path = f"/dicom-web/studies/{stored_study}/series/{series_uid}/instances/{sop}"
    accept = {"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}
    ours = client.get(path, headers=accept)
    assert ours.status_code == 200
    direct = orthanc_admin.get(path, headers=accept)
    media_type = direct.headers["Content-Type"].split("boundary=")[0]
    assert ours["Content-Type"].startswith(media_type) and "boundary=" in ours["Content-Type"]
    # Multipart boundaries differ per response; the DICOM payload must not.
    assert _dicom_part(body_of(ours)) == _dicom_part(direct.content)


def _dicom_part(body: bytes) -> bytes:
    start = body.index(b"DICM") - 128
    end = body.rindex(b"\r\n--")
    return body[start:end]


def test_metadata_urls_point_at_gateway_not_orthanc(stored_study, client_for, orthanc):
    body = body_of(client_for("radiologist").get(f"/dicom-web/studies/{stored_study}/metadata")).decode()
    assert "BulkDataURI" in body
    assert f":{orthanc.settings.http_port}" not in body
    assert "http://testserver/dicom-web/studies/" in body


def test_only_dicomweb_resources_and_reads(stored_study, client_for):
    client = client_for("admin")
    assert client.get("/dicom-web/servers").status_code == 404
    assert client.get("/dicom-web/../system").status_code == 404
    # POST is STOW-RS (tests/backend/test_stow.py): multipart/related only, never a raw body
    assert client.post(f"/dicom-web/studies/{stored_study}", b"", content_type="application/dicom").status_code == 415
    assert client.post(f"/dicom-web/studies/{stored_study}/series", b"", content_type="application/dicom").status_code == 404
    assert client.delete(f"/dicom-web/studies/{stored_study}").status_code == 405


def test_orthanc_down_gives_503(stored_study, client_for, settings):
    from backend.devstack.services import free_port

    settings.ORTHANC_URL = f"http://127.0.0.1:{free_port()}"
    response = client_for("radiologist").get("/dicom-web/studies")
    assert response.status_code == 503
    assert "Orthanc" in response.json()["detail"]


def test_fast_path_decision_allows_only_what_the_gateways_fast_path_would(stored_study, client_for, users):
    """nginx's auth_request answer (docker/nginx/nginx.conf): 200 with the grammar's rebuilt path only for a
    credential the gateway checked in full moments ago, a clean GET of the grammar; 403 (nginx then asks the
    gateway itself) for anything else. It carries no Orthanc credential."""
    from backend.audit.models import AuditEvent
    from backend.dicomweb import access_cache

    access_cache.forget_all()
    c = client_for("annotator")
    path = f"/dicom-web/studies/{stored_study}/series"
    decide = lambda target, method="GET": c.get("/internal/dicomweb-decision",  # noqa: E731
                                                HTTP_X_ORIGINAL_URI=target, HTTP_X_ORIGINAL_METHOD=method)
    assert decide(path).status_code == 403  # not checked in full yet
    assert c.get(path).status_code == 200  # the gateway's full check remembers the credential
    allowed = decide(path + "?limit=5")
    assert allowed.status_code == 200 and allowed["X-SpineAgent-Upstream"] == f"studies/{stored_study}/series"
    assert "Authorization" not in allowed and allowed.content == b""
    assert AuditEvent.objects.filter(target_type="images", target_id=stored_study,
                                     detail__path=path).exists()
    for refused in (f"/dicom-web/studies/{stored_study}/../../system", f"/dicom-web/studies/{stored_study}%2f..",
                    "/dicom-web/servers", "/api/studies/", f"/dicom-web/studies/{stored_study}/series/1.2/x",
                    "/dicom-web/studies/%2e%2e/system"):
        assert decide(refused).status_code == 403, refused
    assert decide(path, method="POST").status_code == 403
    assert client_for(None).get("/internal/dicomweb-decision", HTTP_X_ORIGINAL_URI=path).status_code == 403
    access_cache.revoke_user(users["annotator"].pk)
    assert decide(path).status_code == 403  # revoked: on the very next read


def test_quick_decision_answers_as_the_full_cycle_would_and_never_skips_an_audit_row(stored_study, client_for,
                                                                                     users):
    """backend.wsgi's QuickDecision answers nginx's per-frame decision without Django's request cycle only
    where the cycle would answer the same 200 and record nothing; a first read of a series (an audit row is
    due), a revoked credential, a foreign Host, a refused path go to Django as before."""
    import json

    from django.core.handlers.wsgi import WSGIHandler
    from django.core.signals import request_started
    from django.db import close_old_connections
    from django.test import RequestFactory

    from backend.audit.models import AuditEvent
    from backend.dicomweb import access_cache
    from backend.dicomweb.quick_decision import DECISION_PATH, QuickDecision

    access_cache.forget_all()
    c = client_for("radiologist")
    search = f"/dicom-web/studies/{stored_study}/series"
    series_uid = json.loads(body_of(c.get(search)))[0]["0020000E"]["Value"][0]  # full check, audited
    django_app, full_cycle = WSGIHandler(), []

    def counted(environ, start_response):
        full_cycle.append(environ.get("HTTP_X_ORIGINAL_URI"))
        request_started.disconnect(close_old_connections)  # the test's transaction lives on this connection
        try:  # (as Django's test client does)
            return django_app(environ, start_response)
        finally:
            request_started.connect(close_old_connections)

    app, factory = QuickDecision(counted), RequestFactory()
    factory.cookies = c.cookies

    def decide(target, **extra):
        answer = {}

        def start_response(status, headers, exc_info=None):
            answer.update(status=int(status.split()[0]), headers=dict(headers))

        body = b"".join(app(factory.get(DECISION_PATH, HTTP_X_ORIGINAL_URI=target, **extra).environ,
                            start_response))
        return answer["status"], answer["headers"], body

    status, full_headers, _ = decide(search)
    assert (status, full_cycle) == (200, [search])  # nothing remembered yet: Django answers
    status, quick_headers, body = decide(search + "?limit=5")
    assert (status, body, len(full_cycle)) == (200, b"", 1)  # answered without the cycle
    assert quick_headers["X-SpineAgent-Upstream"] == f"studies/{stored_study}/series"
    for name in ("Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy",
                 "Cross-Origin-Opener-Policy", "Cache-Control"):  # what nginx copies onto the bytes
        assert quick_headers[name] == full_headers[name], name

    # a series not read yet by this credential: its audit row is due, so Django answers and records it
    instances = f"/dicom-web/studies/{stored_study}/series/{series_uid}/instances"
    rows = AuditEvent.objects.filter(target_type="images", target_id=stored_study, detail__series=series_uid)
    assert not rows.exists()
    assert decide(instances)[0] == 200 and full_cycle[-1] == instances and rows.count() == 1
    assert decide(instances)[0] == 200 and len(full_cycle) == 2 and rows.count() == 1  # now quick, no new row

    for refused in (f"/dicom-web/studies/{stored_study}/../../system", "/dicom-web/servers",
                    f"/dicom-web/studies/{stored_study}%2f.."):
        assert decide(refused)[0] == 403 and full_cycle[-1] == refused
    assert decide(search, HTTP_X_ORIGINAL_METHOD="POST")[0] == 403 and len(full_cycle) == 6
    assert decide(search, HTTP_HOST="evil.example")[0] == 400 and len(full_cycle) == 7  # DisallowedHost
    access_cache.revoke_user(users["radiologist"].pk)
    assert decide(search)[0] == 403 and len(full_cycle) == 8  # revoked: refused by Django on the next read
