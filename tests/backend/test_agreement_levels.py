"""Issue 23 item 2: agreement per condition and per condition x level, with intervals.

* Annotators: Fleiss' kappa (three annotators) per condition with its jackknife interval, through the
  annotation metrics API and the annotator_agreement export (Cohen's is checked in test_annotations.py).
* AI draft vs signed report: per-level labels stored at sign time, percent agreement (Wilson) and Cohen's
  kappa (jackknife) per condition and per condition x level, through the API, the CSV / XLSX exports,
  the filters and the dashboard.

Every expected figure is worked out by hand in the comments.
"""

from __future__ import annotations

import csv
import importlib
import io
import math
import re

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group, Permission, User
from django.core.management import call_command
from django.template.defaultfilters import floatformat
from openpyxl import load_workbook

from backend.analytics.models import ConditionOutcome
from backend.annotations import services
from backend.annotations.models import LabelTask
from backend.inference.models import InferenceJob, InferenceResult, ModelVersion
from backend.reports import versions
from backend.studies.models import Study
from spine_labels import extract_labels
from spinefm.conditions import CONDITION_KEYS

pytestmark = [pytest.mark.django_db]

Z = 1.959963984540054


def wilson(k, n):
    p = k / n
    denom = 1 + Z * Z / n
    centre = (p + Z * Z / (2 * n)) / denom
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / denom
    return centre - half, centre + half


def _csv(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


# ---- per-level labels of one text ------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("Mild canal stenosis at L4-L5. No canal stenosis at L3-L4.", {"L4-L5": 1, "L3-L4": 0}),
    ("Canal stenosis. No canal stenosis at L3-L4.", {"L3-L4": 0, "study": 1}),  # the finding names no level
    ("No canal stenosis.", {"study": 0}),
    ("Possible canal stenosis at L5-S1.", {"L5-S1": -1}),
])
def test_level_values_of_the_rule_labels(text, expected):
    assert extract_labels(text).labels["canal"].level_values() == expected


# ---- annotators: Fleiss ----------------------------------------------------------------------------------------

def _labels(**values):
    out = {k: 0 for k in CONDITION_KEYS}
    out.update(values)
    return out


@pytest.fixture
def three_annotators(users):
    extra = []
    for name in ("annotator2", "annotator3"):
        u = User.objects.create_user(name, password="x")
        u.groups.add(Group.objects.get(name="annotator"))
        extra.append(u)
    return [users["annotator"], *extra]


def test_fleiss_kappa_with_jackknife_interval_by_hand(three_annotators, client_for):
    # Four tasks, three annotators each; canal ratings 111, 110, 000, 000.
    # P_i = (sum_j n_ij^2 - 3) / 6: 1, (4 + 1 - 3) / 6 = 1/3, 1, 1 -> P-bar = (10/3) / 4 = 5/6.
    # p(1) = 5/12, p(0) = 7/12 -> Pe = 25/144 + 49/144 = 37/72; kappa = (5/6 - 37/72) / (35/72) = 23/35.
    # Jackknife: without 111: P-bar = 7/9, p(1) = 2/9, Pe = 53/81 -> 5/14; without 110: P-bar = 1, Pe = 5/9
    # -> 1; without a 000: P-bar = 7/9, p(1) = 5/9, Pe = 41/81 -> 11/20 (twice). Mean = 0.6142857;
    # squared deviations 0.0661224 + 0.1487755 + 2 * 0.0041327 = 0.2231633; SE = sqrt(3/4 * 0.2231633)
    # = 0.4091118; 23/35 -+ 1.959964 * 0.4091118 = -0.1447 .. 1.4590 (clipped to 1).
    # Herniation: 111 on task 0, 000 elsewhere -> every P_i = 1, kappa 1.
    for i, canal in enumerate([(1, 1, 1), (1, 1, 0), (0, 0, 0), (0, 0, 0)]):
        t, _ = services.create_task(study_instance_uid=f"1.2.826.0.1.3680043.10.999.23.{i}",
                                    text=f"Report {i}: canal stenosis.", source=LabelTask.IMPORTED,
                                    required_annotations=3)
        for user, value in zip(three_annotators, canal):
            services.submit_annotation(t, user, _labels(canal=value, herniation=int(i == 0)))
    body = client_for("admin").get("/api/annotations/metrics").json()["annotator_agreement"]
    fleiss = body["fleiss"]
    assert (fleiss["n_tasks"], fleiss["annotations"]) == (4, 12)
    canal = fleiss["conditions"]["canal"]
    assert canal["n"] == 4 and canal["kappa"] == pytest.approx(23 / 35)
    assert canal["observed_agreement"] == pytest.approx(5 / 6)
    assert canal["ci_low"] == pytest.approx(23 / 35 - Z * 0.4091118, abs=1e-6) and canal["ci_high"] == 1.0
    assert fleiss["conditions"]["herniation"]["kappa"] == 1.0
    assert fleiss["conditions"]["fracture"]["kappa"] is None  # all 0: undefined
    # Cohen over the first two annotations still: canal pairs (1,1) (1,1) (0,0) (0,0) -> kappa 1
    assert body["conditions"]["canal"]["kappa"] == 1.0 and body["n_tasks"] == 4

    r = client_for("admin").get("/api/analytics/export.csv?table=annotator_agreement")
    header, *rows = _csv(r)
    assert header == ["statistic", "annotations_seen", "condition", "n", "observed_agreement", "kappa", "ci_low",
                      "ci_high"]
    by = {(row[0], row[1], row[2]): dict(zip(header, row)) for row in rows}
    assert len(rows) == 4 * len(CONDITION_KEYS)
    row = by[("fleiss", "any", "canal")]
    assert float(row["kappa"]) == pytest.approx(23 / 35) and float(row["ci_high"]) == 1.0
    assert float(row["ci_low"]) == pytest.approx(-0.144699, abs=1e-5)
    assert by[("cohen", "any", "canal")]["kappa"] == "1.0" and by[("fleiss", "any", "fracture")]["kappa"] == ""


def test_annotator_agreement_export_needs_the_label_metrics_permission(db, users, client_for):
    analyst = User.objects.create_user("analyst", password="x")
    analyst.user_permissions.add(Permission.objects.get(codename="view_analytics"))
    from rest_framework.test import APIClient
    c = APIClient()
    c.force_login(analyst)
    assert c.get("/api/analytics/export.csv?table=annotator_agreement").status_code == 403
    assert c.get("/api/analytics/export.xlsx?table=annotator_agreement").status_code == 403
    r = c.get("/api/analytics/export.xlsx")
    assert r.status_code == 200
    assert "annotator_agreement" not in load_workbook(io.BytesIO(b"".join(r.streaming_content))).sheetnames
    assert client_for("radiologist").get("/api/analytics/draft-agreement").status_code == 403


# ---- AI draft vs signed report --------------------------------------------------------------------------------

# (draft, signed or None for unchanged, reader)
CASES = [
    ("FINDINGS: L4-L5 disc herniation.", None, "r1"),
    ("FINDINGS: L4-L5 disc herniation.", "FINDINGS: L5-S1 disc herniation.", "r1"),
    ("FINDINGS: No disc herniation.", "FINDINGS: L4-L5 disc herniation.", "r2"),
    ("FINDINGS: No disc herniation.", None, "r2"),
]


@pytest.fixture
def signed(users, django_capture_on_commit_callbacks):
    second = User.objects.create_user("radiologist2", password="x")
    second.groups.add(*users["radiologist"].groups.all())
    readers = {"r1": users["radiologist"], "r2": second}
    mv = ModelVersion.objects.create(name="phantom-nano", version="0.23", path="builtin:a")
    out = []
    for n, (draft, final, reader) in enumerate(CASES):
        study = Study.objects.create(study_instance_uid=f"1.2.826.0.1.3680043.10.999.230{n}", patient_id=f"P{n}",
                                     body_part="LSPINE")
        job = InferenceJob.objects.create(study=study, model_version=mv, status="succeeded")
        result = InferenceResult.objects.create(job=job, study=study, model_version=mv,
                                                data={"draft_text": draft, "draft_backend": "template",
                                                      "conditions": []})
        versions.add_ai_draft(result)
        with django_capture_on_commit_callbacks(execute=True):
            number = versions.save_version(study, readers[reader], final, 0).number if final else 0
            versions.sign(study, readers[reader], number, "1", "")
        out.append(study)
    return {"studies": out, "readers": readers}


# Herniation per report (draft, signed): (1,1) (1,1) (0,1) (0,0).
# po = 3/4; draft present 2/4, signed present 3/4 -> pe = 1/2 * 3/4 + 1/2 * 1/4 = 1/2; kappa = (3/4 - 1/2) / (1/2)
# = 1/2. Jackknife over reports: without report 0 or 1: (1,1) (0,1) (0,0): po 2/3, pe = 1/3 * 2/3 + 2/3 * 1/3
# = 4/9 -> 2/5; without report 2: (1,1) (1,1) (0,0) -> 1; without report 3: (1,1) (1,1) (0,1): po 2/3,
# pe = 2/3 * 1 + 1/3 * 0 = 2/3 -> 0. Mean 0.45, squared deviations 0.0025 * 2 + 0.3025 + 0.2025 = 0.51,
# SE = sqrt(3/4 * 0.51) = 0.618466 -> 0.5 -+ 1.212181 = -0.712181 .. 1 (clipped).
HERNIATION_KAPPA_LOW = 0.5 - Z * math.sqrt(0.75 * 0.51)
# Per level (the levels a report names for any condition, plus "study" where a text names none for this one).
# Herniation: report 0: L4-L5 (1,1). Report 1: L4-L5 (1, 0: not named), L5-S1 (0, 1). Report 2: draft names no
# level -> "study" (0, 0: signed names L4-L5 only), L4-L5 (0, 1). Report 3: study (0, 0).
# L4-L5: (1,1) (1,0) (0,1): po 1/3, draft present 2/3, signed present 2/3 -> pe = 4/9 + 1/9 = 5/9;
# kappa = (3/9 - 5/9) / (4/9) = -1/2. Jackknife: without (1,1): (1,0) (0,1): po 0, pe 1/2 -> -1; without (1,0):
# (1,1) (0,1): po 1/2, pe = 1/2 * 1 = 1/2 -> 0; without (0,1): likewise 0. Mean -1/3, squared deviations
# 4/9 + 1/9 + 1/9 = 2/3, SE = sqrt(2/3 * 2/3) = 2/3 -> -1/2 -+ 1.306643 = -1 (clipped) .. 0.806643.
# L5-S1: (0,1): n 1, agreement 0, kappa (0 - 0) / 1 = 0, no interval (one report).
# study: (0,0) (0,0): agreement 1, kappa undefined (one value throughout).


def test_per_level_labels_stored_at_sign_time(signed):
    o = ConditionOutcome.objects.get(metrics__report__study=signed["studies"][1], condition="herniation")
    assert (o.draft_label, o.signed_label, o.draft_levels, o.signed_levels) == (1, 1, {"L4-L5": 1}, {"L5-S1": 1})
    o = ConditionOutcome.objects.get(metrics__report__study=signed["studies"][2], condition="herniation")
    assert (o.draft_levels, o.signed_levels) == ({"study": 0}, {"L4-L5": 1})
    o = ConditionOutcome.objects.get(metrics__report__study=signed["studies"][3], condition="canal")
    assert (o.draft_levels, o.signed_levels) == ({"study": 0}, {"study": 0})


def test_draft_vs_signed_agreement_by_hand(signed, client_for):
    body = client_for("admin").get("/api/analytics/draft-agreement").json()
    assert body["reports"] == 4 and body["reports_without_levels"] == 0 and body["labeler"] == "rules-1.0"
    cond = {r["condition"]: r for r in body["conditions"]}
    assert [r["condition"] for r in body["conditions"]] == list(CONDITION_KEYS)
    h = cond["herniation"]
    low, high = wilson(3, 4)  # 0.300574 .. 0.954406
    assert (h["n"], h["agree"], h["percent_agreement"], h["draft_present"], h["signed_present"]) == (4, 3, 0.75, 2, 3)
    assert (h["agreement_ci_low"], h["agreement_ci_high"]) == (pytest.approx(low), pytest.approx(high))
    assert h["kappa"] == pytest.approx(0.5)
    assert h["kappa_ci_low"] == pytest.approx(HERNIATION_KAPPA_LOW) and h["kappa_ci_high"] == 1.0
    assert (cond["canal"]["n"], cond["canal"]["percent_agreement"], cond["canal"]["kappa"]) == (4, 1.0, None)

    levels = {(r["condition"], r["level"]): r for r in body["levels"]}
    assert [lv for c, lv in levels if c == "herniation"] == ["study", "L4-L5", "L5-S1"]
    l45 = levels[("herniation", "L4-L5")]
    assert (l45["n"], l45["agree"], l45["draft_present"], l45["signed_present"]) == (3, 1, 2, 2)
    assert l45["percent_agreement"] == pytest.approx(1 / 3)
    assert l45["kappa"] == pytest.approx(-0.5)
    assert l45["kappa_ci_low"] == -1.0 and l45["kappa_ci_high"] == pytest.approx(-0.5 + Z * 2 / 3)
    l5s1 = levels[("herniation", "L5-S1")]
    assert (l5s1["n"], l5s1["agree"], l5s1["kappa"], l5s1["kappa_ci_low"]) == (1, 0, 0.0, None)
    study = levels[("herniation", "study")]
    assert (study["n"], study["percent_agreement"], study["kappa"]) == (2, 1.0, None)
    assert levels[("canal", "study")]["n"] == 4  # nothing said in any text: one "study" row per report
    # L4-L5 is a level reports 0, 1 and 2 speak of: a canal row there, absent in both texts
    canal45 = levels[("canal", "L4-L5")]
    assert (canal45["n"], canal45["agree"], canal45["kappa"]) == (3, 3, None)
    assert ("canal", "L3-L4") not in levels  # no report names it


def test_filters_apply_and_bad_filters_are_400(signed, client_for):
    admin = client_for("admin")
    r1 = signed["readers"]["r1"].pk
    body = admin.get(f"/api/analytics/draft-agreement?reader={r1}").json()
    # reports 0 and 1 only: herniation (1,1) (1,1) -> agreement 1, kappa undefined; L4-L5 (1,1) (1,0)
    h = {r["condition"]: r for r in body["conditions"]}["herniation"]
    assert (body["reports"], h["n"], h["percent_agreement"], h["kappa"]) == (2, 2, 1.0, None)
    l45 = {(r["condition"], r["level"]): r for r in body["levels"]}[("herniation", "L4-L5")]
    # the draft says 1 on both: pe = 1 * 1/2 = 1/2 = po -> kappa 0, and no interval (one side used one value)
    assert (l45["n"], l45["agree"], l45["kappa"], l45["kappa_ci_low"], l45["kappa_ci_high"]) == (2, 1, 0.0, None, None)
    r = admin.get("/api/analytics/draft-agreement?reader=abc")
    assert r.status_code == 400 and r.json()["field"] == "reader"


def test_rows_without_levels_are_counted_and_rebuilt(signed, client_for):
    ConditionOutcome.objects.filter(metrics__report__study=signed["studies"][0]).update(draft_levels=None,
                                                                                        signed_levels=None)
    body = client_for("admin").get("/api/analytics/draft-agreement").json()
    assert body["reports_without_levels"] == 1
    assert {(r["condition"], r["level"]): r for r in body["levels"]}[("herniation", "L4-L5")]["n"] == 2
    assert {r["condition"]: r for r in body["conditions"]}["herniation"]["n"] == 4  # per condition unaffected
    call_command("compute_edit_metrics", stdout=io.StringIO())
    body = client_for("admin").get("/api/analytics/draft-agreement").json()
    assert body["reports_without_levels"] == 0
    assert {(r["condition"], r["level"]): r for r in body["levels"]}[("herniation", "L4-L5")]["n"] == 3
    # the data migration (analytics 0004) fills them from the versions each row names, as at sign time
    migration = importlib.import_module("backend.analytics.migrations.0004_condition_levels")
    ConditionOutcome.objects.update(draft_levels=None, signed_levels=None)
    migration.backfill_levels(django_apps, None)
    o = ConditionOutcome.objects.get(metrics__report__study=signed["studies"][1], condition="herniation")
    assert (o.draft_levels, o.signed_levels) == ({"L4-L5": 1}, {"L5-S1": 1})
    assert not ConditionOutcome.objects.filter(draft_levels=None).exists()


def test_draft_agreement_exports_and_dashboard(signed, client_for):
    admin = client_for("admin")
    header, *rows = _csv(admin.get("/api/analytics/export.csv?table=draft_agreement"))
    assert header[:3] == ["condition", "display_name", "n"] and len(rows) == len(CONDITION_KEYS)
    h = dict(zip(header, next(r for r in rows if r[0] == "herniation")))
    assert (h["n"], h["agree"], h["percent_agreement"], h["kappa"], h["kappa_ci_high"]) == ("4", "3", "0.75", "0.5",
                                                                                            "1.0")
    assert float(h["kappa_ci_low"]) == pytest.approx(HERNIATION_KAPPA_LOW)
    assert float(h["agreement_ci_low"]) == pytest.approx(wilson(3, 4)[0])
    header, *rows = _csv(admin.get("/api/analytics/export.csv?table=draft_agreement_levels"))
    assert header[:4] == ["condition", "display_name", "level", "n"]
    by = {(r[0], r[2]): dict(zip(header, r)) for r in rows}
    assert float(by[("herniation", "L4-L5")]["kappa"]) == pytest.approx(-0.5)
    assert by[("herniation", "L4-L5")]["kappa_ci_low"] == "-1.0"
    assert by[("herniation", "L5-S1")]["kappa_ci_low"] == "" and by[("herniation", "study")]["kappa"] == ""

    r = admin.get("/api/analytics/export.xlsx?table=draft_agreement_levels")
    sheet = list(load_workbook(io.BytesIO(b"".join(r.streaming_content)))["draft_agreement_levels"]
                 .iter_rows(values_only=True))
    xrow = dict(zip(sheet[0], next(row for row in sheet[1:] if row[0] == "herniation" and row[2] == "L4-L5")))
    assert (xrow["n"], xrow["agree"], xrow["kappa"]) == (3, 1, pytest.approx(-0.5))

    page = client_for("admin").get("/analytics/")
    html = page.content.decode()
    assert page.status_code == 200 and 'id="draft-agreement"' in html and 'id="draft-agreement-levels"' in html
    assert "L5-S1" in html and 'id="annotator-agreement"' in html


# ---- the dashboard shows the exports' per-level rows ------------------------------------------------------------

def _page_rows(html: str, table: str) -> dict[tuple, list[str]]:
    """{(the row's data-* values): its cells} of one table of the dashboard."""
    body = re.search(rf'<table id="{table}">.*?<tbody>(.*?)</tbody>', html, re.S).group(1)
    return {tuple(re.findall(r'data-\w+="([^"]*)"', attrs)): [c.strip() for c in re.findall(r"<td[^>]*>(.*?)</td>",
                                                                                          cells, re.S)]
            for attrs, cells in re.findall(r"<tr( data-[^>]*)>(.*?)</tr>", body, re.S)}


def _shown(value: str) -> str:
    """An export cell as the page writes it: two decimals (the template's floatformat), "–" when empty."""
    return "–" if value == "" else floatformat(float(value), 2)


def _shown_kappa(row: dict, low: str, high: str) -> str:
    if row["kappa"] == "":
        return "–"
    ci = f' ({_shown(row[low])} to {_shown(row[high])})' if row[low] != "" else ""
    return _shown(row["kappa"]) + ci


def _annotate_levels(n: int, annotators, canal_levels: list[dict]) -> None:
    t, _ = services.create_task(study_instance_uid=f"1.2.826.0.1.3680043.10.999.238.{n}", text=f"Report {n}.",
                                source=LabelTask.IMPORTED, required_annotations=len(canal_levels))
    for user, canal in zip(annotators, canal_levels):
        services.submit_annotation(t, user, None, level_labels={**{k: {"study": 0} for k in CONDITION_KEYS},
                                                                "canal": canal})


def test_dashboard_annotator_agreement_per_level_is_the_exports(three_annotators, client_for):
    # Two tasks with two annotations, two with three; canal levels:
    #   T0 {L4-L5: 1} {L4-L5: 1}; T1 {L3-L4: 1, L4-L5: 1} {L4-L5: 1};
    #   T2 {L4-L5: 0} {L4-L5: 0} {L4-L5: 1}; T3 {study: 0} {L4-L5: 1} {L4-L5: 1}.
    # Cohen (first two of each task), canal L4-L5: (1,1) (1,1) (0,0) (0,1) -> po 3/4, kappa 1/2 (worked out in
    # test_annotations_levels.py). Fleiss (T2, T3), canal L4-L5: (0,0,1) (0,1,1): P_i = 1/3 each, p(1) = 1/2
    # -> Pe = 1/2, kappa = (1/3 - 1/2) / (1/2) = -1/3.
    tasks = [[{"L4-L5": 1}, {"L4-L5": 1}], [{"L3-L4": 1, "L4-L5": 1}, {"L4-L5": 1}],
             [{"L4-L5": 0}, {"L4-L5": 0}, {"L4-L5": 1}], [{"study": 0}, {"L4-L5": 1}, {"L4-L5": 1}]]
    for n, canal in enumerate(tasks):
        _annotate_levels(n, three_annotators, canal)
    admin = client_for("admin")
    header, *rows = _csv(admin.get("/api/analytics/export.csv?table=annotator_agreement_levels"))
    export = {(r[0], r[1], r[2]): dict(zip(header, r)) for r in rows}
    assert float(export[("cohen", "canal", "L4-L5")]["kappa"]) == pytest.approx(0.5)
    assert float(export[("fleiss", "canal", "L4-L5")]["kappa"]) == pytest.approx(-1 / 3)

    html = admin.get("/analytics/").content.decode()
    page = _page_rows(html, "annotator-agreement-levels")
    assert set(page) == set(export)  # the export's rows, no more, no fewer
    for key, row in export.items():
        kind, _display, level, n, observed, kappa = page[key]
        assert kind == {"cohen": "Cohen's", "fleiss": "Fleiss'"}[row["statistic"]] and level == row["level"]
        assert (n, observed, kappa) == (row["n"], _shown(row["observed_agreement"]),
                                        _shown_kappa(row, "ci_low", "ci_high")), key
    assert page[("cohen", "canal", "L4-L5")][3:] == ["4", "0.75", f"0.50 ({_shown(str(0.5 - Z * 0.6184658))} to 1.00)"]
    assert page[("fleiss", "canal", "L4-L5")][5].startswith("-0.33")
    assert ("fleiss", "canal", "L3-L4") not in page  # only in a two-annotation task: no Fleiss row


def test_dashboard_draft_agreement_per_level_is_the_exports(signed, client_for):
    admin = client_for("admin")
    r1 = signed["readers"]["r1"].pk
    for query in ("", f"?reader={r1}"):  # the same filters on both
        header, *rows = _csv(admin.get(f"/api/analytics/export.csv?table=draft_agreement_levels"
                                       f"{'&' + query[1:] if query else ''}"))
        export = {(r[0], r[2]): dict(zip(header, r)) for r in rows}
        shown = {k for k, r in export.items() if r["draft_present"] != "0" or r["signed_present"] != "0"}
        page = _page_rows(admin.get(f"/analytics/{query}").content.decode(), "draft-agreement-levels")
        assert set(page) == shown and ("herniation", "L4-L5") in shown
        for key in shown:
            row = export[key]
            _display, level, n, draft, signed_present, agreement, kappa = page[key]
            assert (level, n, draft, signed_present) == (row["level"], row["n"], row["draft_present"],
                                                         row["signed_present"]), key
            assert agreement == (f'{_shown(row["percent_agreement"])} ({_shown(row["agreement_ci_low"])} to '
                                 f'{_shown(row["agreement_ci_high"])})')
            assert kappa == _shown_kappa(row, "kappa_ci_low", "kappa_ci_high"), key
    # with every reader: herniation L4-L5 kappa -1/2 (worked out above); reader r1 alone: kappa 0, no interval
    assert page[("herniation", "L4-L5")][2:] == ["2", "2", "1", "0.50 (0.09 to 0.91)", "0.00"]
