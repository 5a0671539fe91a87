"""Issue 23 item 2: verified labels per condition x level.

Annotators send ``level_labels`` {condition: {level | "study": 1 | 0 | -1}}; the per-condition ``labels``
every older consumer reads are derived from them (present at any level -> present, absent at every
level -> absent, else uncertain). Two annotators who put a finding at different levels disagree. Bad
levels / values / contradictions are 400s naming the field, with nothing written. Real PostgreSQL.
"""

import pytest
from django.contrib.auth.models import Group, User

from backend.annotations import levels, services
from backend.annotations.models import Annotation, LabelTask, Reveal, VerifiedLabels
from spinefm.conditions import CONDITION_KEYS, Condition

pytestmark = [pytest.mark.django_db]

UID = "1.2.826.0.1.3680043.10.999.232"
TEXT = "FINDINGS: Canal stenosis at L4-5. No fracture. Disc herniation at L5-S1."


def labels(**values):
    out = {k: 0 for k in CONDITION_KEYS}
    out.update(values)
    return out


@pytest.fixture
def task(db):
    return services.create_task(study_instance_uid=UID, text=TEXT, source=LabelTask.IMPORTED)[0]


@pytest.fixture
def annotator2(users):
    second = User.objects.create_user("annotator2", password="x")
    second.groups.add(Group.objects.get(name="annotator"))
    return second


def url(task, what="annotations"):
    return f"/api/annotations/tasks/{task.pk}/{what}"


def test_condition_value_rule():
    assert levels.condition_value({"L4-L5": 1, "L3-L4": -1}) == 1
    assert levels.condition_value({"L4-L5": 0, "study": 0}) == 0
    assert levels.condition_value({"L4-L5": 0, "L3-L4": -1}) == -1


def test_level_labels_stored_and_labels_derived(task, client_for):
    body = {"level_labels": {"canal": {"L4-L5": 1, "L3-L4": 0}, "herniation": {"L5-S1": -1}},
            "labels": {k: 0 for k in CONDITION_KEYS if k not in ("canal", "herniation")}, "mode": "blind"}
    r = client_for("annotator").post(url(task), body, format="json")
    assert r.status_code == 201, r.content
    a = Annotation.objects.get(task=task)
    assert a.labels == labels(canal=1, herniation=-1)
    # ordered cranio-caudally; conditions sent as labels only sit at "study"
    assert list(a.level_labels["canal"].items()) == [("L3-L4", 0), ("L4-L5", 1)]
    assert a.level_labels["herniation"] == {"L5-S1": -1} and a.level_labels["fracture"] == {"study": 0}
    verified = VerifiedLabels.objects.get(task=task)
    assert verified.labels == labels(canal=1, herniation=-1)
    assert verified.level_labels["canal"] == {"L3-L4": 0, "L4-L5": 1}


def test_level_labels_alone_cover_every_condition(task, users):
    body = {k: {"study": 0} for k in CONDITION_KEYS}
    body["canal"] = {"L4-L5": 1}
    a = services.submit_annotation(task, users["annotator"], None, level_labels=body)
    assert a.labels == labels(canal=1)


@pytest.mark.parametrize("body, field, needle", [
    ({"level_labels": {"canal": {"L9-L10": 1}}, "labels": labels()}, "level_labels.canal.L9-L10", "unknown level"),
    ({"level_labels": {"canal": {"L4-L5": 2}}, "labels": labels()}, "level_labels.canal.L4-L5", "not 2"),
    ({"level_labels": {"canal": {"L4-L5": True}}, "labels": labels()}, "level_labels.canal.L4-L5", "not True"),
    ({"level_labels": {"canal": {"L4-L5": "1"}}, "labels": labels()}, "level_labels.canal.L4-L5", "not '1'"),
    ({"level_labels": {"canal": {}}, "labels": labels()}, "level_labels.canal", "non-empty"),
    ({"level_labels": {"canal": [1]}, "labels": labels()}, "level_labels.canal", "non-empty"),
    ({"level_labels": {"stenosis": {"L4-L5": 1}}, "labels": labels()}, "level_labels", "unknown condition"),
    ({"level_labels": [1], "labels": labels()}, "level_labels", "must be an object"),
    # the per-condition label contradicts the levels
    ({"level_labels": {"canal": {"L4-L5": 1}}, "labels": labels(canal=0)}, "labels.canal", "contradicts"),
    # levels for some conditions, nothing for the others
    ({"level_labels": {"canal": {"L4-L5": 1}}}, "labels", "missing condition(s): neuroforaminal"),
])
def test_bad_level_labels_are_400_naming_the_field(task, client_for, body, field, needle):
    r = client_for("annotator").post(url(task), body, format="json")
    assert r.status_code == 400, r.content
    data = r.json()
    assert data["error"] == "invalid" and needle in data["detail"], data
    assert data.get("field") == field, data
    assert not Annotation.objects.exists() and not VerifiedLabels.objects.exists()


def test_a_condition_without_levels_takes_only_study(monkeypatch):
    """A site condition registered without a level kind: "study" only (the shipped registry has none such)."""
    monkeypatch.setattr(levels, "get_condition", lambda key: Condition(key, key, "site", ("T2",), ""))
    assert levels.levels_for("canal") == ("study",)
    with pytest.raises(services.Invalid) as exc:
        levels.validate({"canal": {"L4-L5": 1}}, None, services.Invalid)
    assert exc.value.extra["field"] == "level_labels.canal.L4-L5" and "has no levels" in exc.value.detail


def test_same_value_at_different_levels_goes_to_adjudication(users, annotator2, client_for):
    task, _ = services.create_task(study_instance_uid=UID + ".2", text=TEXT, source=LabelTask.IMPORTED,
                                   required_annotations=2)
    services.submit_annotation(task, users["annotator"], labels(canal=1), level_labels={"canal": {"L4-L5": 1}})
    second = services.submit_annotation(task, annotator2, labels(canal=1), level_labels={"canal": {"L3-L4": 1}})
    assert second.task.status == LabelTask.ADJUDICATION
    admin = client_for("admin")
    detail = admin.get(url(task, "")).json()
    assert detail["disagreements"] == ["canal"]
    # the disputed condition offers both annotators' levels, undecided; agreed ones start at their value
    assert detail["preset_levels"]["canal"] == {"L3-L4": None, "L4-L5": None}
    assert detail["preset_levels"]["fracture"] == {"study": 0}
    assert {a["annotator"]: a["level_labels"]["canal"] for a in detail["annotations_detail"]} == {
        "annotator": {"L4-L5": 1}, "annotator2": {"L3-L4": 1}}
    bad = admin.post(url(task, "adjudicate"), {"level_labels": {"canal": {"L4-L5": 5}}, "labels": labels(canal=1),
                                               "revision": detail["revision"]}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "level_labels.canal.L4-L5"
    r = admin.post(url(task, "adjudicate"), {"level_labels": {"canal": {"L3-L4": 0, "L4-L5": 1}},
                                             "labels": labels(canal=1), "revision": detail["revision"]},
                   format="json")
    assert r.status_code == 201, r.content
    assert r.json()["level_labels"]["canal"] == {"L3-L4": 0, "L4-L5": 1} and r.json()["labels"]["canal"] == 1
    again = admin.post(url(task, "adjudicate"), {"labels": labels(), "revision": detail["revision"]}, format="json")
    assert again.status_code == 409


def test_absent_at_named_levels_agrees_with_absent_at_study(users, annotator2):
    task, _ = services.create_task(study_instance_uid=UID + ".3", text=TEXT, source=LabelTask.IMPORTED,
                                   required_annotations=2)
    services.submit_annotation(task, users["annotator"], labels(canal=1),
                               level_labels={"canal": {"L4-L5": 1, "L3-L4": 0}, "fracture": {"L1": 0}})
    done = services.submit_annotation(task, annotator2, labels(canal=1), level_labels={"canal": {"L4-L5": 1}})
    assert done.task.status == LabelTask.DONE
    verified = VerifiedLabels.objects.get(task=task)
    assert verified.method == "agreement"
    assert verified.level_labels["canal"] == {"L3-L4": 0, "L4-L5": 1}
    assert verified.level_labels["fracture"] == {"study": 0, "L1": 0}


def test_stale_adjudication_after_a_level_change_is_409(users, annotator2, client_for):
    task, _ = services.create_task(study_instance_uid=UID + ".4", text=TEXT, source=LabelTask.IMPORTED,
                                   required_annotations=2)
    services.submit_annotation(task, users["annotator"], labels(canal=1), level_labels={"canal": {"L4-L5": 1}})
    services.submit_annotation(task, annotator2, labels(canal=1), level_labels={"canal": {"L3-L4": 1}})
    seen = services.revision(task)
    Annotation.objects.filter(annotator=annotator2).update(level_labels={"canal": {"L2-L3": 1}})
    r = client_for("admin").post(url(task, "adjudicate"), {"labels": labels(canal=1), "revision": seen},
                                 format="json")
    assert r.status_code == 409 and r.json()["error"] == "stale"


def test_assisted_offers_the_extracted_levels(task, client_for, settings):
    settings.SPINEAGENT_ANNOTATION_MODE = "assisted"
    detail = client_for("annotator").get(url(task, "")).json()
    assert detail["suggested_levels"]["canal"] == {"L4-L5": 1}
    assert detail["suggested_levels"]["herniation"] == {"L5-S1": 1}
    assert detail["suggested_levels"]["fracture"] == {"study": 0}
    assert detail["preset_levels"]["canal"] == {"L4-L5": 1}
    assert "L4-L5" in detail["known_levels"] and "study" in detail["known_levels"]
    assert all(c["has_levels"] for c in detail["conditions"])


def test_blind_withholds_the_levels_until_the_reveal(task, client_for):
    client = client_for("annotator")
    detail = client.get(url(task, "")).json()
    assert detail["suggested_levels"] is None and detail["extraction_hidden"] is True
    assert detail["preset_levels"]["canal"] == {"study": None}  # nothing of the extraction's levels leaks
    first = {"canal": {"L3-L4": 1}}
    r = client.post(url(task, "reveal"), {"level_labels": first, "labels": labels(canal=1)}, format="json")
    assert r.status_code == 200, r.content
    assert Reveal.objects.get(task=task).level_labels["canal"] == {"L3-L4": 1}
    shown = r.json()
    assert shown["first_pass_levels"]["canal"] == {"L3-L4": 1}
    # the rows are the first pass as fixed; the extraction's levels now come beside them, to add
    assert shown["preset_levels"]["canal"] == {"L3-L4": 1} and shown["suggested_levels"]["canal"] == {"L4-L5": 1}
    # the same first pass again is the same reveal; different levels are a 409
    assert client.post(url(task, "reveal"), {"level_labels": first, "labels": labels(canal=1)},
                       format="json").status_code == 200
    moved = client.post(url(task, "reveal"), {"level_labels": {"canal": {"L4-L5": 1}}, "labels": labels(canal=1)},
                        format="json")
    assert moved.status_code == 409 and moved.json()["error"] == "already_revealed"


def test_page_rows_are_per_level_with_the_level_next_to_the_evidence(task, client_for, settings):
    import json
    import re

    client = client_for("annotator")
    blind = client.get(f"/annotate/tasks/{task.pk}").content.decode()
    assert set(re.findall(r'<tr data-condition="\w+"[^>]*data-level="([^"]+)"', blind)) == {"study"}
    config = json.loads(re.search(r'<script id="task-config" type="application/json">(.*?)</script>', blind,
                                  re.S).group(1))
    assert config["suggested_levels"] is None and config["level_evidence"] is None and config["suggested"] is None
    assert 'class="evidence"' not in blind and "<kbd>L</kbd> add a level" in blind
    settings.SPINEAGENT_ANNOTATION_MODE = "assisted"
    html = client.get(f"/annotate/tasks/{task.pk}").content.decode()
    canal = re.search(r'<tr data-condition="canal"[^>]*data-level="L4-L5".*?</tr>', html, re.S).group(0)
    assert re.search(r'name="canal" value="1"[^>]*checked', canal)
    evidence = re.search(r'<td class="evidence">(.*?)</td>', canal, re.S).group(1)
    assert "<span class=\"level-tag\">L4-L5</span> Canal stenosis at L4-5." in evidence  # the sentence
    config = json.loads(re.search(r'<script id="task-config" type="application/json">(.*?)</script>', html,
                                  re.S).group(1))
    assert config["level_evidence"]["herniation"]["L5-S1"][0]["levels"] == "L5-S1"
