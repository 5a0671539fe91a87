"""Issue 23 item 3: edit burden (WER with S/I/D, sentences kept / edited / added / deleted, clinically
significant edits) per signed report and per reader, model version and month, through the API, the CSV /
XLSX exports, the charts and the dashboard.

Five reports are signed through the report services; every figure below is worked out by hand in CASES.
Words (normalised): lower case, punctuation removed ("L4-L5" -> "l4l5", "FINDINGS:" -> "findings"), split on
any whitespace. Reference = signed text (N words), hypothesis = AI draft. Sentences: the heading line
"FINDINGS:" is not a sentence; pairs at fuzz.ratio >= 0.5, ratio = 2 * LCS / (len a + len b) on the
normalised sentences.
"""

from __future__ import annotations

import csv
import io
import statistics
from contextlib import contextmanager
from datetime import datetime, timezone as tz
from unittest import mock

import pytest
from django.apps import apps as django_apps
from django.core.management import call_command
from openpyxl import load_workbook
from PIL import Image

from backend.analytics import edit_burden
from backend.analytics.models import EditMetrics
from backend.audit.models import AuditEvent
from backend.inference.models import InferenceJob, InferenceResult, ModelVersion
from backend.reports import versions
from backend.reports.models import Report
from backend.studies.models import Study

pytestmark = [pytest.mark.django_db]

MARCH, APRIL = datetime(2026, 3, 10, 9, 0, tzinfo=tz.utc), datetime(2026, 4, 10, 9, 0, tzinfo=tz.utc)

# draft, signed, reader, model, month, hand-computed figures.
CASES = [
    # 0. words: findings mild|severe spinal canal stenosis at l4l5 normal alignment: N = 9, one substitution
    #    (mild -> severe): H 8, S 1, D 0, I 0, WER 1/9.
    #    sentences: "normal alignment" identical (kept); "mild spinal canal stenosis at l4l5" (34 chars) vs
    #    "severe spinal canal stenosis at l4l5" (36): LCS = " spinal canal stenosis at l4l5" (30; "mild" and
    #    "severe" share no letter), ratio 60/70 = 0.857 >= 0.5: edited. kept 1, edited 1, added 0, deleted 0.
    #    significant: canal present in both at L4-L5, severity mild -> severe: 1 severity_changed at L4-L5.
    ("FINDINGS:\nMild spinal canal stenosis at L4-L5. Normal alignment.",
     "FINDINGS:\nSevere spinal canal stenosis at L4-L5. Normal alignment.", "r1", "A", MARCH,
     {"wer": 1 / 9, "words": (9, 8, 1, 0, 0), "sentences": (1, 1, 0, 0),
      "edits": [("canal", "severity_changed", "L4-L5", "mild", "severe")]}),
    # 1. signed: findings l4l5 disc herniation (N 4); the draft adds l1 compression fracture: H 4, I 3,
    #    WER 3/4. sentences: "l4l5 disc herniation" kept, "l1 compression fracture" deleted.
    #    significant: fracture present -> absent (L1 in the draft).
    ("FINDINGS:\nL4-L5 disc herniation. L1 compression fracture.", "FINDINGS:\nL4-L5 disc herniation.",
     "r1", "B", APRIL,
     {"wer": 3 / 4, "words": (4, 4, 0, 0, 3), "sentences": (1, 0, 0, 1),
      "edits": [("fracture", "present_to_absent", None, None, None)]}),
    # 2. signed: findings disc herniation at l5s1 spinal canal stenosis at l4l5 (N 10); draft: findings disc
    #    herniation at l4l5 (5). Cheapest: the draft's 5 words hit (its l4l5 on the signed last word), the 5
    #    signed words "l5s1 spinal canal stenosis at" deleted: H 5, S 0, D 5, I 0, WER 5/10 (a substitution
    #    l4l5 -> l5s1 would cost 6). sentences: "disc herniation at l4l5" vs "disc herniation at l5s1"
    #    (23 + 23 chars, LCS "disc herniation at l" + "5" = 21): 42/46 = 0.913, edited; "spinal canal
    #    stenosis at l4l5" added. significant: canal absent -> present; herniation L4-L5 -> L5-S1 (level).
    ("FINDINGS:\nDisc herniation at L4-L5.", "FINDINGS:\nDisc herniation at L5-S1. Spinal canal stenosis at L4-L5.",
     "r2", "A", APRIL,
     {"wer": 1 / 2, "words": (10, 5, 0, 5, 0), "sentences": (0, 1, 1, 0),
      "edits": [("canal", "absent_to_present", None, None, None),
                ("herniation", "level_changed", None, None, None)]}),
    # 3. signed: findings disc herniation at l4l5 (N 5); the draft adds "possible": H 5, I 1, WER 1/5.
    #    sentences: "possible disc herniation at l4l5" (32) vs "disc herniation at l4l5" (23), LCS 23:
    #    46/55 = 0.836, edited. significant: herniation uncertain -> present (certainty_changed).
    ("FINDINGS:\nPossible disc herniation at L4-L5.", "FINDINGS:\nDisc herniation at L4-L5.", "r2", "B", MARCH,
     {"wer": 1 / 5, "words": (5, 5, 0, 0, 1), "sentences": (0, 1, 0, 0),
      "edits": [("herniation", "certainty_changed", None, None, None)]}),
    # 4. signed unchanged: N 6 (findings normal alignment no disc herniation), WER 0, 2 sentences kept.
    ("FINDINGS:\nNormal alignment. No disc herniation.", None, "r1", "A", MARCH,
     {"wer": 0.0, "words": (6, 6, 0, 0, 0), "sentences": (2, 0, 0, 0), "edits": []}),
]
WORDS = ("reference_words", "hits", "substitutions", "deletions", "insertions")
SENTENCES = ("kept", "edited", "added", "deleted")


@contextmanager
def at(when: datetime):
    with mock.patch("django.utils.timezone.now", return_value=when):
        yield


@pytest.fixture
def models_(db):
    return {"A": ModelVersion.objects.create(name="phantom-nano", version="0.5", path="builtin:a"),
            "B": ModelVersion.objects.create(name="phantom-nano", version="0.6", path="builtin:b")}


@pytest.fixture
def signed(readers, models_, django_capture_on_commit_callbacks):
    reports = []
    for n, (draft, final, reader, model, when, _) in enumerate(CASES):
        user, mv = readers[reader], models_[model]
        with at(when):
            study = Study.objects.create(study_instance_uid=f"1.2.826.0.1.3680043.10.999.23{n}", patient_id=f"ID{n}",
                                         patient_name="ROE^RICHARD", accession_number=f"ACC{n}", body_part="LSPINE")
            job = InferenceJob.objects.create(study=study, model_version=mv, status="succeeded")
            result = InferenceResult.objects.create(job=job, study=study, model_version=mv,
                                                    data={"draft_text": draft, "draft_backend": "template",
                                                          "conditions": []})
            versions.add_ai_draft(result)
            with django_capture_on_commit_callbacks(execute=True):
                number = versions.save_version(study, user, final, 0).number if final else 0
                versions.sign(study, user, number, "1", "")
        reports.append(Report.objects.get(study=study))
    return reports


def _expected_group(indices: list[int]) -> dict:
    """Sums of the hand figures of CASES[indices] (the aggregation rule, applied by hand)."""
    words = [sum(CASES[i][5]["words"][k] for i in indices) for k in range(5)]
    return {"reports": len(indices), "words": dict(zip(WORDS, words)),
            "wer": (words[2] + words[3] + words[4]) / words[0],
            "sentences": {k: sum(CASES[i][5]["sentences"][n] for i in indices) for n, k in enumerate(SENTENCES)},
            "edits": sum(len(CASES[i][5]["edits"]) for i in indices),
            "with_edits": sum(1 for i in indices if CASES[i][5]["edits"])}


def _check_group(g: dict, indices: list[int]) -> None:
    e = _expected_group(indices)
    assert g["reports"] == e["reports"] and g["words"] == e["words"] and g["sentences"] == e["sentences"]
    assert g["wer"] == pytest.approx(e["wer"])
    assert g["significant_edits"]["total"] == e["edits"]
    assert g["reports_with_significant_edits"]["k"] == e["with_edits"]


# ---- one pair, no database --------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", range(len(CASES)))
def test_burden_of_each_case_by_hand(n):
    draft, final, *_, expect = CASES[n]
    b = edit_burden.burden(draft, final if final is not None else draft)
    assert b["wer"] == pytest.approx(expect["wer"])
    assert tuple(b[f"wer_{k}"] for k in WORDS) == expect["words"]
    assert tuple(b[f"sentences_{k}"] for k in SENTENCES) == expect["sentences"]
    got = [(e["condition"], e["kind"], e["level"], e["draft_severity"] if e["level"] else None,
            e["final_severity"] if e["level"] else None) for e in b["significant_edits"]]
    assert got == expect["edits"]


def test_sentence_threshold_and_edge_cases():
    # "disc bulge" (10) vs "disc herniation" (15): LCS "disc " + "e" = 6, 12/25 = 0.48 < 0.5: deleted + added.
    assert edit_burden.align_sentences("Disc bulge.", "Disc herniation.")["pairs"] == []
    # "disc bulge" vs "disc bulges" (11): LCS 10, 20/21 = 0.952: one edited pair.
    a = edit_burden.align_sentences("Disc bulge.", "Disc bulges.")
    assert (a["kept"], a["edited"], a["added"], a["deleted"]) == (0, 1, 0, 0)
    # Moved sentences are kept; punctuation and case do not make an edit.
    a = edit_burden.align_sentences("Normal alignment. No fracture.", "no fracture! Normal alignment")
    assert (a["kept"], a["edited"]) == (2, 0)
    # No reference words: no WER, every draft word an insertion; no draft: all deleted, WER 1.
    assert edit_burden.word_errors("Disc bulge", "") == {"wer": None, "wer_reference_words": 0, "wer_hits": 0,
                                                        "wer_substitutions": 0, "wer_deletions": 0,
                                                        "wer_insertions": 2}
    assert edit_burden.word_errors("", "Disc bulge")["wer_deletions"] == 2


def test_significant_edit_details():
    edits = edit_burden.significant_edits(
        "Disc herniation at L4-L5. Mild spinal canal stenosis at L3-L4 and severe spinal canal stenosis at L4-L5.",
        "Disc herniation at L4-L5. Moderate spinal canal stenosis at L3-L4 and severe spinal canal stenosis at "
        "L4-L5. Grade 1 anterolisthesis of L4 on L5.")
    # canal: same levels; L3-L4 mild -> moderate (one edit), L4-L5 severe both (none); listhesis added.
    assert [(e["condition"], e["kind"], e["level"], e["draft_severity"], e["final_severity"]) for e in edits] == [
        ("canal", "severity_changed", "L3-L4", "mild", "moderate"),
        ("spondylolisthesis", "absent_to_present", None, None, "grade 1")]
    assert edits[1]["final_levels"] == ["L4-L5"] and edits[1]["draft_label"] == "absent"


# ---- stored at sign time, through the API -----------------------------------------------------------------------

def test_stored_per_report_and_listed_by_the_api(signed, client_for):
    body = client_for("admin").get("/api/analytics/edit-burden").json()
    assert (body["reference"], body["hypothesis"], body["sentence_match"]) == ("signed text", "AI draft", 0.5)
    by = {r["report_id"]: r for r in body["reports"]}
    assert len(by) == 5
    for report, (*_, expect) in zip(signed, CASES):
        r = by[report.pk]
        assert r["wer"] == pytest.approx(expect["wer"])
        assert tuple(r["words"][k] for k in WORDS) == expect["words"]
        assert tuple(r["sentences"][k] for k in SENTENCES) == expect["sentences"]
        assert [(e["condition"], e["kind"]) for e in r["significant_edits"]] == [e[:2] for e in expect["edits"]]
    level = by[signed[2].pk]["significant_edits"][1]
    assert (level["draft_levels"], level["final_levels"], level["display_name"]) == (["L4-L5"], ["L5-S1"],
                                                                                     "Disc herniation")


def test_all_reports_by_hand(signed, client_for):
    (g,) = client_for("admin").get("/api/analytics/edit-burden").json()["groups"]
    # N = 9 + 4 + 10 + 5 + 6 = 34; S 1, D 5, I 3 + 1 = 4: pooled WER 10/34.
    assert g["words"] == {"reference_words": 34, "hits": 28, "substitutions": 1, "deletions": 5, "insertions": 4}
    assert g["wer"] == pytest.approx(10 / 34)
    # per-report WERs 0, 1/9, 1/5, 1/2, 3/4: median 1/5.
    assert g["wer_median"] == pytest.approx(1 / 5) and g["wer_reports"] == 5
    assert g["wer_mean"] == pytest.approx(statistics.fmean([0, 1 / 9, 1 / 5, 1 / 2, 3 / 4]))
    assert g["sentences"] == {"kept": 4, "edited": 3, "added": 1, "deleted": 1}
    assert g["significant_edits"] == {"total": 5, "absent_to_present": 1, "present_to_absent": 1,
                                      "certainty_changed": 1, "level_changed": 1, "severity_changed": 1}
    share = g["reports_with_significant_edits"]
    assert (share["k"], share["n"], share["rate"]) == (4, 5, 0.8)
    assert share["ci_low"] == pytest.approx(0.3755, abs=5e-5)  # Wilson 4/5


@pytest.mark.parametrize("group_by, expected", [
    # reader r1: cases 0, 1, 4: N 19, S 1, I 3 -> 4/19; r2: cases 2, 3: N 15, D 5, I 1 -> 6/15.
    ("reader", {"r1": [0, 1, 4], "r2": [2, 3]}),
    # model A: cases 0, 2, 4: N 25, S 1, D 5 -> 6/25; B: cases 1, 3: N 9, I 4 -> 4/9.
    ("model_version", {"A": [0, 2, 4], "B": [1, 3]}),
    # March: cases 0, 3, 4: N 20, S 1, I 1 -> 2/20; April: cases 1, 2: N 14, I 3, D 5 -> 8/14.
    ("month", {"2026-03": [0, 3, 4], "2026-04": [1, 2]}),
])
def test_groups_by_hand(signed, client_for, readers, models_, group_by, expected):
    body = client_for("admin").get(f"/api/analytics/edit-burden?group_by={group_by}").json()
    keys = {"reader": lambda k: str(readers[k].pk), "model_version": lambda k: str(models_[k].pk),
            "month": lambda k: k}[group_by]
    groups = {g["group"]: g for g in body["groups"]}
    assert set(groups) == {keys(k) for k in expected}
    for k, indices in expected.items():
        _check_group(groups[keys(k)], indices)
    wer = {"reader": {"r1": 4 / 19, "r2": 6 / 15}, "model_version": {"A": 6 / 25, "B": 4 / 9},
           "month": {"2026-03": 2 / 20, "2026-04": 8 / 14}}[group_by]
    for k, value in wer.items():
        assert groups[keys(k)]["wer"] == pytest.approx(value)


def test_filters_apply(signed, client_for, readers, models_):
    client = client_for("admin")
    body = client.get(f"/api/analytics/edit-burden?model_version={models_['B'].pk}&date_from=2026-04-01").json()
    assert [r["report_id"] for r in body["reports"]] == [signed[1].pk]
    _check_group(body["groups"][0], [1])


def test_permissions_and_bad_params(signed, client_for):
    assert client_for("radiologist").get("/api/analytics/edit-burden").status_code == 403
    assert client_for(None).get("/api/analytics/edit-burden").status_code in (401, 403)
    r = client_for("admin").get("/api/analytics/edit-burden?group_by=week")
    assert r.status_code == 400 and r.json()["field"] == "group_by"


def test_rebuilt_by_the_command_and_the_migration_backfill(signed):
    EditMetrics.objects.update(wer=None, wer_reference_words=0, wer_insertions=0, sentences_kept=0,
                               significant_edits=[])
    call_command("compute_edit_metrics", stdout=io.StringIO())
    m = EditMetrics.objects.get(report=signed[1])
    assert (m.wer, m.wer_reference_words, m.wer_insertions, m.sentences_kept) == (0.75, 4, 3, 1)
    assert [e["kind"] for e in m.significant_edits] == ["present_to_absent"]
    # the data migration (0003_edit_burden) does the same from the versions each row names
    import importlib

    migration = importlib.import_module("backend.analytics.migrations.0003_edit_burden")
    EditMetrics.objects.update(wer=None, wer_reference_words=0, significant_edits=[])
    migration.backfill_edit_burden(django_apps, None)
    m = EditMetrics.objects.get(report=signed[2])
    assert (m.wer, m.wer_reference_words, m.wer_deletions) == (0.5, 10, 5)
    assert [e["kind"] for e in m.significant_edits] == ["absent_to_present", "level_changed"]


# ---- exports ----------------------------------------------------------------------------------------------------

def _csv(response):
    assert response.status_code == 200, response.content
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_csv_reports_table_has_the_burden_columns(signed, client_for):
    header, *rows = _csv(client_for("admin").get("/api/analytics/export.csv?table=reports"))
    by = {int(r[1]): dict(zip(header, r)) for r in rows}
    for report, (*_, expect) in zip(signed, CASES):
        r = by[report.pk]
        assert float(r["wer"]) == pytest.approx(expect["wer"])
        assert tuple(int(r[f"wer_{k}"]) for k in WORDS) == expect["words"]
        assert tuple(int(r[f"sentences_{k}"]) for k in SENTENCES) == expect["sentences"]
        assert int(r["significant_edits"]) == len(expect["edits"])
    c2 = by[signed[2].pk]
    assert (c2["significant_absent_to_present"], c2["significant_level_changed"],
            c2["significant_severity_changed"]) == ("1", "1", "0")


def test_csv_edit_burden_table_by_reader(signed, client_for, readers):
    header, *rows = _csv(client_for("admin").get("/api/analytics/export.csv?table=edit_burden&group_by=reader"))
    by = {r[0]: dict(zip(header, r)) for r in rows}
    r1 = by[str(readers["r1"].pk)]
    # r1: cases 0, 1, 4 (see test_groups_by_hand): N 19, H 18, S 1, D 0, I 3; WERs 1/9, 3/4, 0: median 1/9.
    assert [r1[k] for k in ("reports", "reference_words", "hits", "substitutions", "deletions", "insertions")] == [
        "3", "19", "18", "1", "0", "3"]
    assert float(r1["wer"]) == pytest.approx(4 / 19) and float(r1["wer_median"]) == pytest.approx(1 / 9)
    assert [r1[f"sentences_{k}"] for k in SENTENCES] == ["4", "1", "0", "1"]
    assert (r1["significant_edits"], r1["significant_severity_changed"], r1["significant_present_to_absent"],
            r1["reports_with_significant_edits"]) == ("2", "1", "1", "2")
    assert float(r1["reports_with_significant_edits_rate"]) == pytest.approx(2 / 3)


def test_csv_significant_edits_table_lists_every_edit(signed, client_for):
    header, *rows = _csv(client_for("admin").get("/api/analytics/export.csv?table=significant_edits"))
    got = [dict(zip(header, r)) for r in rows]
    # rows in sign-off order (March: cases 0, 3, 4; April: 1, 2), each report's edits in registry order
    order = sorted(zip(signed, CASES), key=lambda pair: (pair[1][4], pair[0].pk))
    expected = [(report.pk, *e[:3]) for report, (*_, x) in order for e in x["edits"]]
    assert [(int(r["report_id"]), r["condition"], r["kind"], r["level"] or None) for r in got] == expected
    severity = next(r for r in got if r["kind"] == "severity_changed")
    assert (severity["draft_severity"], severity["final_severity"], severity["level"]) == ("mild", "severe", "L4-L5")
    level = next(r for r in got if r["kind"] == "level_changed")
    assert (level["draft_levels"], level["final_levels"], level["draft_label"]) == ("L4-L5", "L5-S1", "present")
    audit = AuditEvent.objects.filter(action="export", target_type="analytics").get()
    assert audit.detail["row_count"] == 5 and audit.target_id == "significant_edits"


def test_xlsx_has_the_burden_sheets(signed, client_for):
    r = client_for("admin").get("/api/analytics/export.xlsx?group_by=month")
    wb = load_workbook(io.BytesIO(b"".join(r.streaming_content)), read_only=True)
    header, *rows = list(wb["edit_burden"].iter_rows(values_only=True))
    by = {row[0]: dict(zip(header, row)) for row in rows}
    assert by["2026-03"]["wer"] == pytest.approx(2 / 20) and by["2026-04"]["wer"] == pytest.approx(8 / 14)
    assert (by["2026-04"]["deletions"], by["2026-04"]["insertions"], by["2026-04"]["significant_edits"]) == (5, 3, 3)
    edits = list(wb["significant_edits"].iter_rows(values_only=True))
    assert len(edits) == 1 + 5 and edits[0][:2] == ("study_id", "report_id")


# ---- charts and dashboard ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("chart", ["burden", "significant"])
def test_burden_charts(signed, client_for, chart):
    client = client_for("admin")
    r = client.get(f"/api/analytics/chart.png?chart={chart}&group_by=reader")
    assert r.status_code == 200 and r["X-Analytics-Empty"] == "0"
    assert Image.open(io.BytesIO(r.content)).format == "PNG"
    empty = client.get(f"/api/analytics/chart.png?chart={chart}&date_from=2031-01-01")
    assert empty["X-Analytics-Empty"] == "1"


def test_dashboard_shows_the_burden_and_each_edit(signed, client_for):
    r = client_for("admin").get("/analytics/?group_by=model_version")
    assert r.status_code == 200
    html = r.content.decode()
    section = html[html.index('id="burden"'):html.index("<h2>Condition accuracy</h2>")]
    assert "phantom-nano:0.5" in section and "phantom-nano:0.6" in section
    assert "0.240" in section and "0.444" in section  # pooled WER of A 6/25 and B 4/9
    assert "severity changed at L4-L5" in section and "mild" in section and "present → absent" in section
    assert "chart=burden" in html and "chart=significant" in html
