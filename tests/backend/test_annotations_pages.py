"""The annotator's HTML pages: login and permission checked on the server, report text escaped with the
evidence highlighted from offsets, toggles preset to the extraction, and the highlight cutter itself."""

import re

import pytest

from backend.annotations import services
from backend.annotations.highlight import Span, segments
from backend.annotations.models import LabelTask
from spinefm.conditions import CONDITION_KEYS

pytestmark = [pytest.mark.django_db]

UID = "1.2.826.0.1.3680043.10.999.78"
TEXT = "FINDINGS: Mild canal stenosis at L4-L5 <script>alert(1)</script>. No fracture."


@pytest.fixture
def task(db):
    return services.create_task(study_instance_uid=UID, text=TEXT, source=LabelTask.IMPORTED)[0]


def test_anonymous_users_are_sent_to_login(client, task):
    for path in ("/annotate/", f"/annotate/tasks/{task.pk}"):
        r = client.get(path)
        assert r.status_code == 302 and r["Location"].startswith("/login?next=")


def test_roles_without_verify_labels_get_403(client_for, task):
    for role in ("radiologist", "nobody"):
        client = client_for(role)
        assert client.get("/annotate/").status_code == 403
        assert client.get(f"/annotate/tasks/{task.pk}").status_code == 403


def test_queue_page_lists_the_task(client_for, task):
    r = client_for("annotator").get("/annotate/?order=uncertainty")
    assert r.status_code == 200
    html = r.content.decode()
    assert f'href="/annotate/tasks/{task.pk}?order=uncertainty"' in html and UID in html
    assert '<option value="uncertainty" selected>' in html
    # the page's title is text, and "Submitted by you" is one table in the body
    assert "<title>Label verification · SpineAgent</title>" in html and html.count('id="submitted"') == 1
    assert "Needs adjudication" not in html  # annotators do not adjudicate
    assert "Needs adjudication" in client_for("admin").get("/annotate/").content.decode()


def test_task_page_escapes_text_highlights_evidence_and_presets_toggles(client_for, task, settings):
    settings.SPINEAGENT_ANNOTATION_MODE = "assisted"  # blind mode presets and highlights nothing (below)
    r = client_for("annotator").get(f"/annotate/tasks/{task.pk}")
    assert r.status_code == 200
    html = r.content.decode()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    report = re.search(r'<pre class="report" id="report">(.*?)</pre>', html, re.S).group(1)
    marks = re.findall(r'<mark class="ev ev-(\w+)" data-conditions="([\w ]+)"[^>]*>(.*?)</mark>', report)
    assert any(k == "present" and c == "canal" and "canal stenosis" in t for k, c, t in marks), marks
    assert any(k == "absent" and c == "fracture" for k, c, _ in marks)
    assert re.sub(r"<[^>]+>", "", report) == TEXT.replace("<", "&lt;").replace(">", "&gt;")
    for key in CONDITION_KEYS:
        checked = re.findall(rf'name="{key}" value="(-?\d)"[^>]*checked', html)
        assert checked == (["1"] if key == "canal" else ["0"]), key
    assert 'id="open-images"' not in html  # the images are not indexed
    assert '"submit_url": "/api/annotations/tasks/%d/annotations"' % task.pk in html
    assert 'name="csrfmiddlewaretoken"' in html


def test_task_outside_your_queue_is_404(client_for, users, task):
    services.submit_annotation(task, users["admin"], {k: 0 for k in CONDITION_KEYS})
    assert client_for("annotator").get(f"/annotate/tasks/{task.pk}").status_code == 404


def test_assets_are_served(client_for):
    r = client_for(None).get("/annotate/assets/task.js")
    assert r.status_code == 200 and "X-CSRFToken" in b"".join(r.streaming_content).decode()
    assert client_for(None).get("/annotate/assets/../views.py").status_code == 404


def test_segments_cut_overlapping_spans_and_ignore_bad_offsets():
    text = "abcdefghij"
    spans = [Span(2, 6, "canal", 1), Span(4, 8, "herniation", -1), Span(5, 50, "cyst", 1), Span(3, 3, "par", 1),
             Span(-1, 2, "edema", 1)]
    segs = segments(text, spans)
    assert "".join(s.text for s in segs) == text
    # cyst ends past the text and edema starts before it: both ignored; par is empty: ignored
    assert [(s.text, s.conditions, s.kind) for s in segs] == [
        ("ab", "", ""), ("cd", "canal", "present"), ("ef", "canal herniation", "present"),
        ("gh", "herniation", "uncertain"), ("ij", "", "")]
