"""docker/nginx/nginx.conf, run for real (Debian's nginx) in front of the live server: the deployment's proxy
must not re-open the gateway with encoded variants, nor serve files outside its folders (issue 17).

The config is the deployment's own file with only its addresses changed (backend/devstack/nginx.py: the
upstreams -> the live server and the test Orthanc, a loopback port, a temporary /srv, the gateway account's
header file written by the image's own start-up script). Image reads take nginx's fast path (Django decides,
Orthanc sends the bytes): the tests below hold it to the gateway's rules.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.security, pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def nginx(live_server, orthanc, tmp_path):
    from backend.devstack.nginx import NginxFront, nginx_binary

    if nginx_binary() is None:
        pytest.fail("nginx is required for the deployment's proxy test: run scripts/setup.sh (test tools)")
    front = NginxFront(tmp_path, live_server.url, orthanc.settings.http_port, orthanc.settings.gateway_username,
                       orthanc.settings.gateway_password).start()
    (front.srv / "static" / "site.css").write_text("body {}")
    (front.srv / "viewer" / "index.html").write_text("<!doctype html><title>viewer</title>")
    (tmp_path / "secret.txt").write_text("outside the served folders")
    yield {"url": front.url, "srv": front.srv, "log": tmp_path / "error.log"}
    front.stop()


@pytest.fixture
def annotator_token(users):
    from rest_framework.authtoken.models import Token

    return Token.objects.create(user=users["annotator"]).key


def test_nginx_passes_dicomweb_through_and_refuses_every_traversal(nginx, annotator_token, orthanc, client_for,
                                                                   phantom_files, upload, raw_get, traversal_variants,
                                                                   orthanc_markers):
    study = upload(client_for("admin"), phantom_files(seed=1702)).json()["studies"][0]["study_instance_uid"]
    status, body = raw_get(nginx["url"], f"/dicom-web/studies/{study}/series", annotator_token)
    assert status == 200 and study.encode() in body  # the proxy really forwards the gateway
    for target in traversal_variants(study, "1.2.3", "0" * 8, "0" * 8):
        status, body = raw_get(nginx["url"], target, annotator_token)
        assert status in (400, 404), f"{target} answered {status} through nginx"
        leaked = [m for m in orthanc_markers if m in body]
        assert not leaked, f"{target} leaked {leaked} through nginx"


def test_nginx_static_folders_do_not_leak_outside(nginx, annotator_token, raw_get):
    assert raw_get(nginx["url"], "/static/site.css", annotator_token)[0] == 200
    for target in ("/static/../secret.txt", "/static..%2fsecret.txt", "/static/%2e%2e/secret.txt",
                   "/viewer/../secret.txt", "/viewer-ext/..%2f..%2fsecret.txt", "/static/..%5csecret.txt",
                   "/viewer/%2e%2e/%2e%2e/etc/passwd"):
        status, body = raw_get(nginx["url"], target, annotator_token)
        assert b"outside the served folders" not in body and b"root:x:0:0" not in body, target


@pytest.fixture
def reads(orthanc, client_for, phantom_files, upload, orthanc_admin):
    """A stored study and one frame's paths (gateway and Orthanc direct)."""
    study = upload(client_for("admin"), phantom_files(seed=1703)).json()["studies"][0]["study_instance_uid"]
    lookup = orthanc_admin.get("/studies?expand").json()
    orthanc_study = next(s for s in lookup if s["MainDicomTags"]["StudyInstanceUID"] == study)
    series = orthanc_admin.get(f"/series/{orthanc_study['Series'][0]}").json()
    series_uid = series["MainDicomTags"]["SeriesInstanceUID"]
    sop = orthanc_admin.get(f"/instances/{series['Instances'][0]}").json()["MainDicomTags"]["SOPInstanceUID"]
    return {"study": study, "series": series_uid,
            "frame": f"studies/{study}/series/{series_uid}/instances/{sop}/frames/1"}


def _get(url, token=None, **headers):
    import requests

    if token:
        headers["Authorization"] = f"Token {token}"
    return requests.get(url, headers={"Accept": "multipart/related; type=\"application/octet-stream\"", **headers},
                        timeout=30)


def test_fast_path_serves_orthanc_bytes_only_after_the_gateways_own_check(nginx, reads, annotator_token, orthanc,
                                                                          monkeypatch):
    """The first read of a credential takes the gateway (full check); the next ones come from Orthanc through
    nginx, byte for byte, with the headers Django puts on every answer, and are audited like gateway reads."""
    import requests

    from backend.audit.models import AuditEvent
    from backend.dicomweb import access_cache, proxy

    access_cache.forget_all()
    streamed = []
    real_open = proxy.open_upstream
    monkeypatch.setattr(proxy, "open_upstream", lambda path, *a, **kw: streamed.append(path) or real_open(path, *a, **kw))
    direct = requests.get(f"{orthanc.settings.url}/dicom-web/{reads['frame']}", auth=(orthanc.settings.username,
                          orthanc.settings.password), headers={"Accept": "multipart/related; type=\"application/octet-stream\""},
                          timeout=30)
    first = _get(f"{nginx['url']}/dicom-web/{reads['frame']}", annotator_token)
    assert first.status_code == 200 and streamed == [reads["frame"]]  # cold: Django's gateway streamed it
    second = _get(f"{nginx['url']}/dicom-web/{reads['frame']}", annotator_token)
    assert second.status_code == 200 and streamed == [reads["frame"]]  # warm: nginx took it from Orthanc
    frame = lambda r: r.content.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n--", 1)[0]  # noqa: E731
    assert frame(second) == frame(direct) == frame(first) and len(frame(second)) > 100_000
    location = lambda r: r.content.split(b"\r\n")[1]  # noqa: E731  (Content-Location of the part)
    assert location(second) == location(first) and nginx["url"].encode() in location(second)
    from django.conf import settings

    assert second.headers["Content-Security-Policy"] == settings.SPINEAGENT_CSP_PAGES
    assert second.headers["X-Content-Type-Options"] == "nosniff" and second.headers["X-Frame-Options"] == "DENY"
    assert second.headers["Cache-Control"] == "private, max-age=0"
    assert "Set-Cookie" not in second.headers and "WWW-Authenticate" not in second.headers
    # Metadata read on the fast path: Orthanc's URLs point back at us, not at Orthanc.
    metadata = _get(f"{nginx['url']}/dicom-web/studies/{reads['study']}/series/{reads['series']}/metadata",
                    annotator_token, Accept="application/dicom+json")
    assert metadata.status_code == 200 and len(streamed) == 1
    assert orthanc.settings.url.encode() not in metadata.content
    rows = AuditEvent.objects.filter(target_type="images", username="annotator", target_id=reads["study"])
    assert rows.exists() and all(r.detail["path"].startswith("/dicom-web/") for r in rows)


def test_fast_path_is_exactly_as_strict(nginx, reads, annotator_token, users, raw_get, monkeypatch):
    """Revocation takes effect on the next read, strangers and other methods get the gateway's answers, the
    decision itself cannot be asked from outside, and every malformed spelling falls to the gateway's 404."""
    from backend.dicomweb import access_cache, proxy

    access_cache.forget_all()
    streamed = []
    real_open = proxy.open_upstream
    monkeypatch.setattr(proxy, "open_upstream", lambda path, *a, **kw: streamed.append(path) or real_open(path, *a, **kw))
    url = f"{nginx['url']}/dicom-web/{reads['frame']}"
    assert _get(url, annotator_token).status_code == 200  # the gateway's full check
    assert _get(url, annotator_token).status_code == 200  # the fast path
    assert _get(url).status_code in (401, 403)  # no credential
    assert _get(url, "not-a-token").status_code in (401, 403)
    status, body = raw_get(nginx["url"], "/internal/dicomweb-decision", annotator_token)
    assert status == 404 and b"dicom-web" not in body
    for spelled in (f"/dicom-web/{reads['frame']}/../../..", f"/dicom-web/{reads['frame'].replace('.', '%2e', 1)}",
                    f"/dicom-web/{reads['frame']}/", f"/dicom-web//{reads['frame']}"):
        before = len(streamed)
        status, _ = raw_get(nginx["url"], spelled, annotator_token)
        # Declined by the decision: the gateway answers (404, or it streams what its own rules allow: the test
        # server, unlike gunicorn, does not hand Django the raw target); never nginx's fast path.
        assert status in (400, 404) or len(streamed) == before + 1, spelled
    # The query string is Orthanc's business, as through the gateway (the path alone is the grammar's).
    assert raw_get(nginx["url"], f"/dicom-web/{reads['frame']}?StudyInstanceUID=1%2f2", annotator_token)[0] == 200
    import requests

    assert requests.post(f"{nginx['url']}/dicom-web/studies", headers={"Authorization": f"Token {annotator_token}"},
                         data=b"", timeout=30).status_code in (400, 403, 405, 415)
    access_cache.revoke_user(users["annotator"].pk)  # what a role change, a logout everywhere or a deactivation do
    users["annotator"].groups.clear()
    assert _get(url, annotator_token).status_code == 403
