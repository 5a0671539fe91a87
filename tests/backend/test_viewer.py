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
    from backend.studies.models import Study

    Study.objects.create(study_instance_uid=UID)
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


def _config(client) -> dict:
    import json

    body = client.get("/viewer/app-config.js").content.decode()
    return json.loads(body.split("window.config = ", 1)[1].split(";\nwindow.config.whiteLabeling", 1)[0])


def test_no_ohif_study_list_the_logo_leads_back_to_our_worklist(client_for):
    c = client_for("radiologist")
    response = c.get("/viewer/app-config.js")
    assert response["Cache-Control"] == "private, no-store"  # per user
    config = _config(c)
    assert config["showStudyList"] is False and config["spineagent"]["worklistUrl"] == "/"
    assert "createLogoComponentFn" in response.content.decode() and "back-to-worklist" in response.content.decode()
    # OHIF's own list route answers our worklist instead
    for path in ("/viewer/", "/viewer", "/viewer/index.html"):
        redirect = c.get(path)
        assert redirect.status_code == 302 and redirect["Location"] == "/", path


def test_investigational_notice_is_acknowledged_once_per_user(client_for, settings):
    rad, other = client_for("radiologist"), client_for("admin")
    assert _config(rad)["investigationalUseDialog"] == {"option": "always"}
    assert rad.post("/api/me/notices/investigational-use").status_code == 200
    assert rad.post("/api/me/notices/investigational-use").status_code == 200  # idempotent
    assert _config(rad)["investigationalUseDialog"] == {"option": "never"}
    assert _config(rad)["spineagent"]["notice"]["acknowledged"] is True
    assert _config(other)["investigationalUseDialog"] == {"option": "always"}  # per user, not per site
    assert rad.post("/api/me/notices/something-else").status_code == 404
    assert client_for(None).post("/api/me/notices/investigational-use").status_code in (401, 403)
    settings.SPINEAGENT_VIEWER_NOTICE = "every-session"
    assert _config(rad)["investigationalUseDialog"] == {"option": "always"}


def test_viewer_layout_is_a_site_setting(client_for, settings):
    assert _config(client_for("radiologist"))["spineagent"]["layout"] == ["T1", "T2"]
    settings.SPINEAGENT_VIEWER_LAYOUT = ("T2", "STIR")
    assert _config(client_for("radiologist"))["spineagent"]["layout"] == ["T2", "STIR"]


@pytest.mark.parametrize("role, pages", [
    ("radiologist", ["worklist"]), ("annotator", ["worklist", "annotate"]),
    ("admin", ["worklist", "annotate", "qa", "analytics", "training"]), ("qa_reviewer", ["worklist", "qa"]),
])
def test_navigation_bar_by_role_on_every_page(client_for, users, role, pages):
    import re

    if role == "admin":
        users["admin"].is_staff = True
        users["admin"].save()
        pages = pages + ["admin"]
    c = client_for(role)
    for url in ["/"] + [u for key, u in (("annotate", "/annotate/"), ("qa", "/qa/"), ("analytics", "/analytics/"),
                                          ("training", "/training/")) if key in pages]:
        html = c.get(url).content.decode()
        nav = re.search(r'<nav class="pages".*?</nav>', html, re.S).group(0)
        assert re.findall(r'data-page="([a-z]+)"', nav) == pages, (url, nav)
        assert nav.count('aria-current="page"') == 1


def test_worklist_page_offers_quick_filters_and_sorting(client_for):
    html = client_for("radiologist").get("/").content.decode()
    for hook in ('data-quick="mine"', 'data-quick="unread"', 'data-quick="draft"', 'name="show_unsupported"',
                 'data-sort="status"', 'data-sort="priority"', 'data-sort="reader"', 'data-sort="date"',
                 'data-page="next"', "Unsupported (not a spine MRI)"):
        assert hook in html, hook
    assert " style=" not in html and "<script>" not in html  # our CSP: no inline style or script


def test_a_link_to_a_study_we_do_not_hold_gets_our_page(client_for):
    from backend.studies.models import Study

    Study.objects.create(study_instance_uid=UID)
    c = client_for("radiologist")
    missing = c.get("/viewer/spineagent?StudyInstanceUIDs=1.2.3.404")
    assert missing.status_code == 404 and b"1.2.3.404" in missing.content and b"Back to the worklist" in missing.content
    assert c.get(f"/viewer/spineagent?StudyInstanceUIDs={UID},1.2.3.404").status_code == 404
    known = c.get(f"/viewer/spineagent?StudyInstanceUIDs={UID}")
    if known.status_code == 503:
        pytest.fail("the OHIF viewer is not built: run scripts/build_viewer.sh")
    assert known.status_code == 200
