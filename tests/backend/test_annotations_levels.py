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


# ---- agreement per condition x level -------------------------------------------------------------------------

Z = 1.959963984540054


def _csv(response):
    import csv
    import io

    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


@pytest.fixture
def third(users):
    u = User.objects.create_user("annotator3", password="x")
    u.groups.add(Group.objects.get(name="annotator"))
    return u


def _annotate(n, users_levels, required):
    t, _ = services.create_task(study_instance_uid=f"{UID}.9.{n}", text=f"Report {n}.", source=LabelTask.IMPORTED,
                                required_annotations=required)
    for user, canal in users_levels:
        services.submit_annotation(t, user, None, level_labels={**{k: {"study": 0} for k in CONDITION_KEYS},
                                                                "canal": canal})


def test_cohen_per_condition_and_level_by_hand(users, annotator2, client_for):
    a, b = users["annotator"], annotator2
    # canal levels of two annotators on four tasks:
    #   T0 A {L4-L5: 1}  B {L4-L5: 1}          -> L4-L5 (1, 1)
    #   T1 A {L3-L4: 1, L4-L5: 1}  B {L4-L5: 1} -> L3-L4 (1, 0), L4-L5 (1, 1)
    #   T2 A {L4-L5: 0}  B {L4-L5: 0}          -> L4-L5 (0, 0)
    #   T3 A {study: 0}  B {L4-L5: 1}          -> study (0, 0), L4-L5 (0, 1)
    # L4-L5: po = 3/4; A 1:2 0:2, B 1:3 0:1 -> pe = 2/4 * 3/4 + 2/4 * 1/4 = 1/2 -> kappa = 1/2.
    # Jackknife: without a (1,1): po 2/3, pe 4/9 -> 0.4 (twice); without (0,0): po 2/3, pe 2/3 -> 0;
    # without (0,1): 1. Mean 0.45; squared deviations .0025 + .0025 + .2025 + .3025 = .51;
    # SE = sqrt(3/4 * .51) = 0.6184658; 0.5 -+ 1.959964 * 0.6184658 -> -0.712170 .. 1 (clipped).
    tasks = [({"L4-L5": 1}, {"L4-L5": 1}), ({"L3-L4": 1, "L4-L5": 1}, {"L4-L5": 1}),
             ({"L4-L5": 0}, {"L4-L5": 0}), ({"study": 0}, {"L4-L5": 1})]
    for n, (x, y) in enumerate(tasks):
        _annotate(n, [(a, x), (b, y)], 2)
    body = client_for("admin").get("/api/annotations/metrics").json()["annotator_agreement"]
    cells = {(r["condition"], r["level"]): r for r in body["levels"]}
    canal = cells[("canal", "L4-L5")]
    assert canal["n"] == 4 and canal["kappa"] == pytest.approx(0.5) and canal["observed_agreement"] == 0.75
    assert canal["ci_low"] == pytest.approx(0.5 - Z * 0.6184658, abs=1e-6) and canal["ci_high"] == 1.0
    assert (cells[("canal", "L3-L4")]["n"], cells[("canal", "L3-L4")]["observed_agreement"]) == (1, 0.0)
    assert cells[("canal", "L3-L4")]["ci_low"] is None  # one task: no interval
    assert cells[("canal", "study")]["n"] == 1
    # levels in order: study, L3-L4, L4-L5; every other condition at study only, all absent: kappa undefined
    assert [r["level"] for r in body["levels"] if r["condition"] == "canal"] == ["study", "L3-L4", "L4-L5"]
    assert cells[("fracture", "study")]["n"] == 4 and cells[("fracture", "study")]["kappa"] is None
    # per condition (derived labels) the canal pairs are the L4-L5 ones: the same kappa
    assert body["conditions"]["canal"]["kappa"] == pytest.approx(0.5)
    assert body["fleiss"]["levels"] == []

    r = client_for("admin").get("/api/analytics/export.csv?table=annotator_agreement_levels")
    assert r.status_code == 200
    header, *rows = _csv(r)
    assert header == ["statistic", "condition", "level", "n", "observed_agreement", "kappa", "ci_low", "ci_high"]
    by = {(row[0], row[1], row[2]): dict(zip(header, row)) for row in rows}
    assert len(rows) == len(body["levels"]) == len(CONDITION_KEYS) + 2
    assert float(by[("cohen", "canal", "L4-L5")]["kappa"]) == pytest.approx(0.5)
    assert float(by[("cohen", "canal", "L4-L5")]["ci_low"]) == pytest.approx(-0.712170, abs=1e-5)


def test_fleiss_per_condition_and_level_by_hand(users, annotator2, third, client_for):
    a, b, c = users["annotator"], annotator2, third
    # canal at L4-L5 rated 111, 110, 000, 000 (test_agreement_levels' hand-checked Fleiss: 23/35, P-bar 5/6,
    # interval -0.144699 .. 1); the third annotator also puts canal at L5-S1 on T0: L5-S1 rated 001 once:
    # P = (4 + 1 - 3) / 6 = 1/3, p(1) = 1/3 -> Pe = 5/9, kappa = (1/3 - 5/9) / (4/9) = -1/2, no interval.
    ratings = [({"L4-L5": 1}, {"L4-L5": 1}, {"L4-L5": 1, "L5-S1": 1}), ({"L4-L5": 1}, {"L4-L5": 1}, {"L4-L5": 0}),
               ({"L4-L5": 0}, {"L4-L5": 0}, {"L4-L5": 0}), ({"L4-L5": 0}, {"L4-L5": 0}, {"L4-L5": 0})]
    for n, levels3 in enumerate(ratings):
        _annotate(n, list(zip((a, b, c), levels3)), 3)
    body = client_for("admin").get("/api/annotations/metrics").json()["annotator_agreement"]
    cells = {(r["condition"], r["level"]): r for r in body["fleiss"]["levels"]}
    canal = cells[("canal", "L4-L5")]
    assert canal["n"] == 4 and canal["kappa"] == pytest.approx(23 / 35)
    assert canal["observed_agreement"] == pytest.approx(5 / 6) and canal["ci_high"] == 1.0
    assert canal["ci_low"] == pytest.approx(-0.144699, abs=1e-5)
    extra = cells[("canal", "L5-S1")]
    assert extra["n"] == 1 and extra["kappa"] == pytest.approx(-0.5) and extra["ci_low"] is None
    assert extra["observed_agreement"] == pytest.approx(1 / 3)
    # Cohen over the first two (they agree everywhere): kappa 1 at L4-L5; neither of them named L5-S1
    cohen = {(r["condition"], r["level"]): r for r in body["levels"]}
    assert cohen[("canal", "L4-L5")]["kappa"] == 1.0 and ("canal", "L5-S1") not in cohen
    r = client_for("admin").get("/api/analytics/export.csv?table=annotator_agreement_levels")
    by = {(row[0], row[1], row[2]): row for row in _csv(r)[1:]}
    assert float(by[("fleiss", "canal", "L4-L5")][5]) == pytest.approx(23 / 35)


def test_per_level_agreement_export_needs_the_label_metrics_permission(db, users, client_for):
    from django.contrib.auth.models import Permission
    from rest_framework.test import APIClient

    analyst = User.objects.create_user("analyst", password="x")
    analyst.user_permissions.add(Permission.objects.get(codename="view_analytics"))
    c = APIClient()
    c.force_login(analyst)
    assert c.get("/api/analytics/export.csv?table=annotator_agreement_levels").status_code == 403
    assert c.get("/api/analytics/export.xlsx?table=annotator_agreement_levels").status_code == 403
