"""Ingest through the API into the real Orthanc, idempotently, rejecting bad files whole."""

import io
import zipfile

import pytest

from backend.inference.models import InferenceJob
from backend.studies.models import Instance, Series, Study

pytestmark = [pytest.mark.services, pytest.mark.django_db]


def test_upload_round_trip_indexes_and_queues_one_job(orthanc_admin, client_for, phantom_files, upload, users):
    files = phantom_files(seed=101)
    before = orthanc_admin.count_instances()
    response = upload(client_for("admin"), files)
    assert response.status_code == 201, response.content
    [report] = response.json()["studies"]
    assert report["created"] is True and report["instances_new"] == len(files)
    assert orthanc_admin.count_instances() == before + len(files)

    study = Study.objects.get(study_instance_uid=report["study_instance_uid"])
    assert study.num_instances == len(files) == Instance.objects.filter(series__study=study).count()
    sequences = set(study.series.values_list("sequence_type", flat=True))
    assert {"T1", "T2", "STIR"} <= sequences
    assert set(Series.objects.filter(study=study, sequence_type="T1").values_list("plane", flat=True)) == {"sagittal"}
    assert study.orthanc_id
    assert InferenceJob.objects.filter(study=study).count() == 1


def test_same_study_twice_creates_no_duplicates(orthanc_admin, client_for, phantom_files, upload, users):
    files = phantom_files(seed=102)
    client = client_for("admin")
    assert upload(client, files).status_code == 201
    counts = (Study.objects.count(), Series.objects.count(), Instance.objects.count(), InferenceJob.objects.count())
    orthanc_count = orthanc_admin.count_instances()
    second = upload(client, files)
    assert second.status_code == 201
    assert second.json()["studies"][0] == {**second.json()["studies"][0], "created": False, "instances_new": 0}
    assert (Study.objects.count(), Series.objects.count(), Instance.objects.count(),
            InferenceJob.objects.count()) == counts
    assert orthanc_admin.count_instances() == orthanc_count


def test_zip_upload(orthanc_admin, client_for, phantom_files, upload, users):
    files = phantom_files(seed=103)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files:
            archive.writestr(f"study/{name}", data)
        archive.writestr("__MACOSX/._junk", b"junk")
    response = upload(client_for("admin"), [("study.zip", buffer.getvalue())])
    assert response.status_code == 201, response.content
    assert response.json()["studies"][0]["instances_received"] == len(files)


@pytest.mark.parametrize("name, data, reason", [
    ("notes.txt", b"this is not dicom", "too short"),
    ("fake.dcm", b"\0" * 200, "not a DICOM Part-10 file"),
    ("broken.zip", b"PK\x03\x04" + b"\0" * 200, "corrupt zip"),
])
def test_non_dicom_rejected_with_name_and_reason(orthanc_admin, client_for, upload, users, name, data, reason):
    before = orthanc_admin.count_instances()
    response = upload(client_for("admin"), [(name, data)])
    assert response.status_code == 400
    [problem] = response.json()["files"]
    assert problem["file"] == name and reason in problem["reason"]
    assert orthanc_admin.count_instances() == before


def test_truncated_file_rejects_whole_upload(orthanc_admin, client_for, phantom_files, upload, testdata_file, users):
    good = phantom_files(seed=104)
    before = orthanc_admin.count_instances()
    response = upload(client_for("admin"), good + [("MR_truncated.dcm", testdata_file("MR_truncated.dcm"))])
    assert response.status_code == 400
    body = response.json()
    assert body["detail"] == "nothing was stored"
    assert body["files"] == [{"file": "MR_truncated.dcm", "reason": "truncated pixel data (8130 of 8192 bytes)"}]
    assert orthanc_admin.count_instances() == before
    assert Study.objects.count() == 0 and InferenceJob.objects.count() == 0


def test_upload_needs_permission(client_for, phantom_files, upload, users):
    files = phantom_files(seed=105)[:1]
    assert upload(client_for("radiologist"), files).status_code == 403
    assert upload(client_for(None), files).status_code in (401, 403)


def test_orthanc_down_answers_503_and_stores_nothing(orthanc, client_for, phantom_files, upload, users, settings):
    from backend.devstack.services import free_port

    settings.ORTHANC_URL = f"http://127.0.0.1:{free_port()}"
    response = upload(client_for("admin"), phantom_files(seed=106))
    assert response.status_code == 503
    assert response.json()["service"] == "Orthanc"
    assert Study.objects.count() == 0
