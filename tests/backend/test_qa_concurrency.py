"""Two reviewers submitting the same QA case at once: the case row lock makes exactly one review win."""

import threading

import pytest
from django.db import connection, transaction

from backend.audit.models import AuditEvent
from backend.qa import services
from backend.qa.models import QACase
from backend.reports.models import Report, ReportVersion
from backend.studies.models import Study

pytestmark = [pytest.mark.django_db(transaction=True)]

UID = "1.2.826.0.1.3680043.10.999.96"


@pytest.fixture
def case(users):
    study = Study.objects.create(study_instance_uid=UID)
    reader = users["radiologist"]
    report = Report.objects.create(study=study, status=Report.SIGNED, current_number=1, signed_number=1,
                                   signed_by=reader, reader=reader, radpeer_score="3a", radpeer_comment="missed")
    ReportVersion.objects.create(report=report, number=0, text="AI draft", source=ReportVersion.AI)
    ReportVersion.objects.create(report=report, number=1, text="signed", source=ReportVersion.RADIOLOGIST,
                                 author=reader)
    return QACase.objects.create(report=report, selection=QACase.DISCREPANT, reader=reader, original_score="3a",
                                 original_comment="missed", signed_number=1)


def _review(client, body, outcomes):
    try:
        r = client.post(f"/api/qa/cases/{body.pop('case')}/review", body, format="json")
        outcomes.append((body["decision"], r.status_code, r.json()))
    finally:
        connection.close()


def test_a_review_waits_for_the_lock_and_then_is_409(case, users, client_for):
    outcomes = []
    client = client_for("admin")  # its session must be committed before the other thread reads it
    with transaction.atomic():
        QACase.objects.select_for_update().get(pk=case.pk)
        other = threading.Thread(target=_review, args=(
            client, {"case": case.pk, "decision": "change", "score": "2a", "reason": "minor", "report_version": 1},
            outcomes))
        other.start()
        other.join(timeout=1.0)
        assert other.is_alive(), "the second review did not wait for the case lock"
        services.review(case.pk, users["qa_reviewer"], "agree", None, "", 1)
    other.join(timeout=30)
    assert outcomes and outcomes[0][1] == 409 and outcomes[0][2]["error"] == "already_reviewed", outcomes
    case.refresh_from_db()
    assert (case.decision, case.reviewed_score, case.reviewer_id) == ("agree", "3a", users["qa_reviewer"].pk)
    assert AuditEvent.objects.filter(action="edit", target_type="qa-review").count() == 1


def test_two_concurrent_reviews_exactly_one_wins(case, client_for):
    outcomes = []
    start = threading.Barrier(2)

    def run(role, body):
        client = client_for(role)
        start.wait()
        _review(client, {"case": case.pk, "report_version": 1, **body}, outcomes)

    threads = [threading.Thread(target=run, args=("qa_reviewer", {"decision": "agree"})),
               threading.Thread(target=run, args=("admin", {"decision": "change", "score": "3b",
                                                            "reason": "cord compression"}))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(code for _, code, _ in outcomes) == [200, 409], outcomes
    winner = next(decision for decision, code, _ in outcomes if code == 200)
    case.refresh_from_db()
    assert case.decision == winner and case.status == "reviewed"
    assert AuditEvent.objects.filter(action="edit", target_type="qa-review").count() == 1
