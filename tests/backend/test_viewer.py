"""backend/viewer: the served OHIF config, SPA fallback, extension files and the role-aware pages."""

import pytest

pytestmark = [pytest.mark.django_db]

UID = "1.2.826.0.1.3680043.10.999.7"


def test_app_config_has_only_our_gateway(client):
    body = client.get("/viewer/app-config.js").content.decode()
    assert '"routerBasename": "/viewer"' in body
    assert '"/viewer-ext/extension.js"' in body and '"/viewer-ext/mode.js"' in body
    assert body.count('"namespace": "@ohif/extension-default.dataSourcesModule.dicomweb"') == 1
    assert '"qidoRoot": "http://testserver/dicom-web"' in body
    assert "cloudfront" not in body and "https://" not in body


def test_viewer_deep_link_needs_login_then_serves_index(client_for):
    url = f"/viewer/spineagent?StudyInstanceUIDs={UID}"
    response = client_for(None).get(url)
    assert response.status_code == 302 and response["Location"].startswith("/login?next=/viewer/spineagent")
    response = client_for("annotator").get(url)
    if response.status_code == 503:
        pytest.fail("the OHIF viewer is not built: run scripts/build_viewer.sh")
    html = b"".join(response.streaming_content).decode()
    assert 'src="/viewer/app-config.js"' in html and "<script>" not in html  # no inline script (our CSP)
    assert "script-src 'self' 'wasm-unsafe-eval';" in response["Content-Security-Policy"]
    inline = client_for("annotator").get("/viewer/inline-1.js")  # OHIF's first inline script, moved to a file
    assert 'window.PUBLIC_URL="/viewer/"' in b"".join(inline.streaming_content).decode()


def test_extension_files_are_served_and_contained(client):
    response = client.get("/viewer-ext/extension.js")
    assert response.status_code == 200 and response["Content-Type"] == "text/javascript"
    assert client.get("/viewer-ext/../../backend/settings.py").status_code == 404
    assert client.get("/viewer-ext/nope.js").status_code == 404


@pytest.mark.parametrize("role, can_review", [("radiologist", True), ("annotator", False), ("admin", True)])
def test_worklist_page_is_role_aware(client_for, role, can_review):
    response = client_for(role).get("/")
    assert response.status_code == 200
    assert response.context["can_review"] is can_review
    assert (b'id="read-only"' in response.content) is (not can_review)


def test_login_page_and_redirect(client, users):
    assert client.get("/").status_code == 302
    assert client.get("/login").status_code == 200
    response = client.post("/login", {"username": "radiologist", "password": "test-password-123"})
    assert response.status_code == 302 and response["Location"] == "/"
