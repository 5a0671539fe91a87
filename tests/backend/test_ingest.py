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


# --- issue 18: uploads that tell the truth --------------------------------------------------------------------

ORTHANC_REFUSES = ("SC_rgb_jpeg.dcm",)  # valid DICOM that Orthanc 1.10 will not store (POST /instances: 400)


def _orthanc_study_uids(orthanc_admin) -> set[str]:
    return {s["MainDicomTags"]["StudyInstanceUID"] for s in orthanc_admin.get("/studies?expand").json()}


def _index_equals_orthanc(orthanc_admin) -> None:
    assert set(Study.objects.values_list("study_instance_uid", flat=True)) <= _orthanc_study_uids(orthanc_admin)


@pytest.mark.parametrize("name", ORTHANC_REFUSES)
def test_a_file_orthanc_refuses_is_a_400_naming_it_and_orthancs_reason(orthanc_admin, client_for, upload, users,
                                                                      testdata_file, name):
    before = orthanc_admin.count_instances()
    response = upload(client_for("admin"), [(name, testdata_file(name))])
    assert response.status_code == 400, response.content  # was a 503 "Orthanc is unavailable" with Retry-After
    body = response.json()
    assert body["error"] == "invalid_dicom" and "Retry-After" not in response
    [problem] = body["files"]
    assert problem["file"] == name and problem["reason"].startswith("Orthanc refused it: ") and len(problem["reason"]) > 25
    assert orthanc_admin.count_instances() == before


def test_a_batch_with_one_refused_file_stores_nothing(orthanc_admin, client_for, upload, users, testdata_file,
                                                      phantom_files):
    good = phantom_files(seed=1802)[:3]
    before = orthanc_admin.count_instances()
    response = upload(client_for("admin"), [*good, ("SC_rgb_jpeg.dcm", testdata_file("SC_rgb_jpeg.dcm"))])
    assert response.status_code == 400, response.content
    assert [p["file"] for p in response.json()["files"]] == ["SC_rgb_jpeg.dcm"]
    assert orthanc_admin.count_instances() == before  # the three stored first were deleted again
    _index_equals_orthanc(orthanc_admin)
    import pydicom

    assert not Study.objects.filter(
        study_instance_uid=str(pydicom.dcmread(io.BytesIO(good[0][1])).StudyInstanceUID)).exists()


def test_subsampled_colour_is_not_truncated(orthanc_admin, client_for, upload, users, testdata_file):
    response = upload(client_for("admin"), [("ybr.dcm", testdata_file("SC_ybr_full_422_uncompressed.dcm"))])
    assert response.status_code == 201, response.content  # 2 bytes per pixel for YBR_FULL_422, not 3


@pytest.mark.parametrize("uid, why", [("1.2.840 113619.2", "not a valid DICOM UID"), ("1.2.abc.3", "not a valid"),
                                      ("1." + "2" * 70, "at most 64"), ("1.02.3", "leading zeros")])
def test_non_conformant_uids_are_refused_before_anything_is_stored(orthanc_admin, client_for, upload, users,
                                                                   testdata_file, uid, why):
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(testdata_file("MR_small.dcm")))
    ds.StudyInstanceUID = uid
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    before = orthanc_admin.count_instances()
    response = upload(client_for("admin"), [("spaces.dcm", buffer.getvalue())])
    assert response.status_code == 400
    [problem] = response.json()["files"]
    assert problem["file"] == "spaces.dcm" and "StudyInstanceUID" in problem["reason"] and "not a valid DICOM UID" in problem["reason"]
    assert orthanc_admin.count_instances() == before


def test_no_file_of_pydicoms_corpus_nor_a_garbled_one_gives_a_5xx(orthanc_admin, client_for, upload, users):
    """Every DICOM file pydicom ships, uploaded alone, and garbled copies: 201 or a 4xx naming the file;
    never a 5xx, and the index never holds a study Orthanc does not."""
    import random
    from pathlib import Path

    from pydicom.data import get_testdata_files

    admin = client_for("admin")
    rng = random.Random(18)
    outcomes = {}
    for path in sorted(get_testdata_files("*.dcm")):
        data = Path(path).read_bytes()
        variants = {Path(path).name: data, "truncated-" + Path(path).name: data[: rng.randrange(1, max(2, len(data)))]}
        garbled = bytearray(data)
        for _ in range(20):
            garbled[rng.randrange(len(garbled))] = rng.randrange(256)
        variants["garbled-" + Path(path).name] = bytes(garbled)
        for name, blob in variants.items():
            response = upload(admin, [(name, blob)])
            outcomes[name] = response.status_code
            assert response.status_code < 500, (name, response.content[:300])
            if response.status_code >= 400:
                assert response.json()["files"][0]["file"].startswith(name)
    _index_equals_orthanc(orthanc_admin)
    assert sum(1 for s in outcomes.values() if s == 201) >= 30 and sum(1 for s in outcomes.values() if s == 400) >= 30
