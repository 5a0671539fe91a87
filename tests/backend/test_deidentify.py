"""De-identification on ingest (SPINEAGENT_DEIDENTIFY_ON_INGEST): names never reach the index or Orthanc."""

import io

import pydicom
import pytest

from backend.studies.deidentify import METHOD, deidentify_instances
from backend.studies.dicom_files import InvalidUpload, UploadWorkspace, read_upload
from backend.studies.models import Instance, Series, Study

pytestmark = [pytest.mark.django_db, pytest.mark.services]

NAME, PATIENT_ID, BIRTH = "DOE^JANE^H4TEST", "MRN-H4-778899", "19480229"


def with_patient(files, name=NAME, patient_id=PATIENT_ID):
    """The phantom's files as if they came from a real patient (same UIDs, known identity)."""
    out = []
    for file_name, data in files:
        ds = pydicom.dcmread(io.BytesIO(data))
        ds.PatientName, ds.PatientID, ds.PatientBirthDate = name, patient_id, BIRTH
        ds.InstitutionName = "St H4 Hospital"
        ds.add_new(0x00291010, "LO", f"private note about {name}")  # a vendor's private tag
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
        out.append((file_name, buffer.getvalue()))
    return out


def original_uids(files):
    datasets = [pydicom.dcmread(io.BytesIO(d), stop_before_pixels=True) for _, d in files]
    return ({str(d.StudyInstanceUID) for d in datasets}, {str(d.SeriesInstanceUID) for d in datasets},
            {str(d.SOPInstanceUID) for d in datasets})


@pytest.fixture
def workspace():
    with UploadWorkspace() as ws:
        yield ws


def test_same_key_same_pseudonyms_and_structure_kept(phantom_files, settings, workspace):
    files = with_patient(phantom_files(seed=9201))
    first = deidentify_instances(read_upload(files, workspace))
    again = deidentify_instances(read_upload(files, workspace))
    assert [i.dataset.SOPInstanceUID for i in first] == [i.dataset.SOPInstanceUID for i in again]
    studies, series, sops = original_uids(files)
    new = [pydicom.dcmread(i.path) for i in first]
    assert len({str(d.StudyInstanceUID) for d in new}) == len(studies) == 1  # still one study
    assert len({str(d.SeriesInstanceUID) for d in new}) == len(series)
    assert {str(d.SOPInstanceUID) for d in new}.isdisjoint(sops)
    for d in new:
        assert d.file_meta.MediaStorageSOPInstanceUID == d.SOPInstanceUID
        assert (str(d.PatientName), d.PatientID, d.PatientBirthDate) != (NAME, PATIENT_ID, BIRTH)
        assert d.PatientIdentityRemoved == "YES" and METHOD in list(d.DeidentificationMethod)
        assert 0x00291010 not in d and "H4" not in str(d.get("InstitutionName", ""))
        assert d.PixelData  # pixels still there
    settings.SPINEAGENT_DEIDENTIFY_KEY = "another-site-key"
    other = deidentify_instances(read_upload(files, workspace))
    assert other[0].dataset.StudyInstanceUID != first[0].dataset.StudyInstanceUID


def test_burned_in_annotation_is_refused(phantom_files, workspace):
    name, data = phantom_files(seed=9202)[0]
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.BurnedInAnnotation = "YES"
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    with pytest.raises(InvalidUpload, match="burned-in"):
        deidentify_instances(read_upload([(name, buffer.getvalue())], workspace))


def orthanc_holds_name(orthanc_admin, name: str) -> bool:
    r = orthanc_admin.get("/patients?expand")
    tags = [p["MainDicomTags"] for p in r.json()]
    return any(name.split("^")[0] in t.get("PatientName", "") or t.get("PatientID") == PATIENT_ID for t in tags)


def test_upload_with_the_setting_on_stores_no_identity(orthanc_admin, client_for, upload, phantom_files, settings):
    settings.SPINEAGENT_DEIDENTIFY_ON_INGEST = True
    files = with_patient(phantom_files(seed=9203))
    studies, series, sops = original_uids(files)
    r = upload(client_for("admin"), files)
    assert r.status_code == 201, r.content
    (stored,) = r.json()["studies"]
    assert stored["study_instance_uid"] not in studies and stored["instances_new"] == len(files)

    study = Study.objects.get(study_instance_uid=stored["study_instance_uid"])
    assert NAME not in study.patient_name and study.patient_id != PATIENT_ID and study.patient_birth_date != BIRTH
    assert not Study.objects.filter(patient_name__icontains="DOE").exists()
    assert Series.objects.filter(study=study).count() == len(series)
    assert Instance.objects.filter(series__study=study).count() == len(sops)
    assert not Instance.objects.filter(sop_instance_uid__in=sops).exists()

    assert not orthanc_holds_name(orthanc_admin, NAME)
    assert orthanc_admin.has_study(study.study_instance_uid) and not orthanc_admin.has_study(next(iter(studies)))
    instance = orthanc_admin.get("/instances").json()
    tags = orthanc_admin.get(f"/instances/{instance[0]}/simplified-tags").json()
    assert tags["PatientIdentityRemoved"] == "YES" and "DOE" not in json_text(tags)
    # The series -> instances relation in Orthanc matches the index.
    orthanc_series = orthanc_admin.get(f"/studies/{study.orthanc_id}/series").json()
    assert sorted(len(s["Instances"]) for s in orthanc_series) == sorted(
        s.num_instances for s in Series.objects.filter(study=study))
    # Re-uploading the same files adds nothing: the pseudonyms are stable.
    again = upload(client_for("admin"), files).json()["studies"][0]
    assert again["study_instance_uid"] == study.study_instance_uid and again["instances_new"] == 0


def json_text(value) -> str:
    import json

    return json.dumps(value)


def test_upload_with_the_setting_off_is_unchanged(orthanc_admin, client_for, upload, phantom_files, settings):
    settings.SPINEAGENT_DEIDENTIFY_ON_INGEST = False
    files = with_patient(phantom_files(seed=9204), name="ROE^RICHARD^H4TEST", patient_id="MRN-H4-OFF")
    studies, _, _ = original_uids(files)
    r = upload(client_for("admin"), files)
    assert r.status_code == 201, r.content
    study = Study.objects.get(study_instance_uid=next(iter(studies)))
    assert study.patient_name == "ROE^RICHARD^H4TEST" and study.patient_id == "MRN-H4-OFF"
    assert orthanc_admin.has_study(study.study_instance_uid)
