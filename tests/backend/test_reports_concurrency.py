"""Two radiologists saving on the same base at the same time: exactly one wins, nothing is overwritten."""

import threading

import pytest
from django.db import connection, transaction

from backend.reports import versions
from backend.reports.models import Report, ReportVersion
from backend.studies.models import Study

pytestmark = [pytest.mark.django_db(transaction=True)]

UID = "1.2.826.0.1.3680043.10.999.62"


@pytest.fixture
def report(users):
    study = Study.objects.create(study_instance_uid=UID)
    report = Report.objects.create(study=study, status=Report.DRAFT_READY, current_number=0)
    ReportVersion.objects.create(report=report, number=0, text="AI draft", source=ReportVersion.AI)
    return report


def _save_in_thread(client, text, outcomes):
    try:
        r = client.post(f"/api/studies/{UID}/report/versions", {"text": text, "base_number": 0}, format="json")
        outcomes.append((text, r.status_code, r.json()))
    finally:
        connection.close()


def test_second_writer_waits_for_the_lock_and_gets_409(report, users, client_for):
    """Hold the row lock in this connection, save from another: it must wait, then see it is stale."""
    outcomes = []
    client = client_for("radiologist")  # its session must be committed before the other thread reads it
    with transaction.atomic():
        Report.objects.select_for_update().get(pk=report.pk)
        other = threading.Thread(target=_save_in_thread, args=(client, "theirs", outcomes))
        other.start()
        other.join(timeout=1.0)
        assert other.is_alive(), "the second save did not wait for the row lock"
        versions.save_version(report.study, users["radiologist"], "mine", 0)
    other.join(timeout=30)
    assert outcomes and outcomes[0][1] == 409, outcomes
    body = outcomes[0][2]
    assert body["error"] == "stale" and body["your_text"] == "theirs" and body["current"]["text"] == "mine"
    assert list(ReportVersion.objects.order_by("number").values_list("number", "text")) == [(0, "AI draft"),
                                                                                           (1, "mine")]


def test_two_concurrent_saves_exactly_one_wins(report, client_for):
    outcomes = []
    start = threading.Barrier(2)

    def run(text):
        client = client_for("radiologist")
        start.wait()
        _save_in_thread(client, text, outcomes)

    threads = [threading.Thread(target=run, args=(t,)) for t in ("left", "right")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    codes = sorted(code for _, code, _ in outcomes)
    assert codes == [201, 409], outcomes
    winner = next(text for text, code, _ in outcomes if code == 201)
    assert list(ReportVersion.objects.order_by("number").values_list("text", flat=True)) == ["AI draft", winner]
