"""Studies reaching Orthanc another way are announced by our plugin, or caught up by re-sync."""

import io
import json
import time

import pydicom
import pytest
from django.core.management import call_command

from backend.studies import webhook
from backend.studies.ingest import resync_from_orthanc
from backend.studies.models import Study

pytestmark = [pytest.mark.services]


@pytest.mark.django_db(transaction=True)
def test_plugin_announces_stable_study(announcing_orthanc_admin, phantom_files, wait_until):
    files = phantom_files(seed=201)
    for _, data in files:
        announcing_orthanc_admin.post_instance(data)  # Orthanc's own REST upload, not our API
    uid = str(pydicom.dcmread(io.BytesIO(files[0][1]), stop_before_pixels=True).StudyInstanceUID)
    wait_until(lambda: Study.objects.filter(study_instance_uid=uid, num_instances=len(files)).exists(),
               timeout=60, what="stable-study announcement")
    assert Study.objects.get(study_instance_uid=uid).source == "orthanc"


@pytest.mark.django_db
def test_unsigned_announcement_refused(client, settings):
    body = json.dumps({"study_instance_uid": "1.2.3"}).encode()
    assert client.post("/api/orthanc/stable-study", body, content_type="application/json").status_code == 403
    ts = str(int(time.time()))
    bad = client.post("/api/orthanc/stable-study", body, content_type="application/json",
                      headers={"X-SpineAgent-Timestamp": ts, "X-SpineAgent-Signature": "0" * 64})
    assert bad.status_code == 403 and bad.json()["detail"] == "bad signature"
    old = str(int(time.time()) - 3600)
    stale = client.post("/api/orthanc/stable-study", body, content_type="application/json", headers={
        "X-SpineAgent-Timestamp": old,
        "X-SpineAgent-Signature": webhook.sign(settings.ORTHANC_WEBHOOK_SECRET, old, body)})
    assert stale.status_code == 403 and stale.json()["detail"] == "timestamp too old"


@pytest.mark.django_db
def test_signed_announcement_with_malformed_uid_is_400(client, settings):
    body = json.dumps({"study_instance_uid": "'; DROP TABLE"}).encode()
    ts = str(int(time.time()))
    response = client.post("/api/orthanc/stable-study", body, content_type="application/json", headers={
        "X-SpineAgent-Timestamp": ts, "X-SpineAgent-Signature": webhook.sign(settings.ORTHANC_WEBHOOK_SECRET, ts, body)})
    assert response.status_code == 400


@pytest.mark.django_db
def test_resync_restores_index_from_orthanc(orthanc_admin, client_for, phantom_files, upload, users):
    files = phantom_files(seed=202)
    upload(client_for("admin"), files)
    uids = set(Study.objects.values_list("study_instance_uid", flat=True))
    Study.objects.all().delete()
    call_command("sync_orthanc")
    assert uids <= set(Study.objects.values_list("study_instance_uid", flat=True))
    study = Study.objects.get(study_instance_uid=next(iter(uids)))
    assert study.num_instances == len(files) and study.source == "sync"


@pytest.mark.django_db
def test_resync_keeps_studies_with_reports_when_images_are_gone(orthanc_admin, client_for, phantom_files, upload,
                                                                users):
    from backend.reports.models import Report

    uid = upload(client_for("admin"), phantom_files(seed=203)).json()["studies"][0]["study_instance_uid"]
    Report.objects.create(study=Study.objects.get(study_instance_uid=uid), status=Report.SIGNED)
    orthanc_id = Study.objects.get(study_instance_uid=uid).orthanc_id
    assert requests_delete(orthanc_admin, f"/studies/{orthanc_id}") == 200
    Study.objects.create(study_instance_uid="1.2.826.0.1.3680043.10.999.404")  # gone, nothing protects it
    summary = resync_from_orthanc()
    assert Study.objects.filter(study_instance_uid=uid).exists()
    assert not Study.objects.filter(study_instance_uid="1.2.826.0.1.3680043.10.999.404").exists()
    assert summary["kept_protected"] == 1 and summary["removed"] == 1


def requests_delete(admin, path: str) -> int:
    import requests

    return requests.delete(admin.url + path, auth=admin.auth, timeout=30).status_code
