"""The DICOM SR of an inference result: built, STOWed to a real Orthanc, read back, and harmless to the index."""

import io

import highdicom as hd
import pydicom
import pytest

from backend.inference import dicom_sr, receivers, runner, tasks
from backend.inference.models import InferenceJob, InferenceResult
from backend.studies.ingest import index_from_orthanc
from backend.studies.models import Instance, Study
from backend.studies.orthanc.client import get_client
from spinefm import intake

pytestmark = [pytest.mark.services, pytest.mark.django_db]


@pytest.fixture
def phantom_result(orthanc, users, client_for, phantom_files, upload):
    """A stored phantom study and a result whose boxes point at two of its real instances."""
    response = upload(client_for("admin"), phantom_files(seed=611))
    assert response.status_code == 201, response.content
    study = Study.objects.get(study_instance_uid=response.json()["studies"][0]["study_instance_uid"])
    sagittal = list(Instance.objects.filter(series__study=study).order_by("series__series_number",
                                                                           "instance_number"))
    first, second = sagittal[3], sagittal[-2]
    job = InferenceJob.objects.get(study=study)
    job.status = InferenceJob.SUCCEEDED
    job.save()
    data = {
        "model_name": "spineagent-phantom-nano", "model_version": "0.3", "synthetic_training": True,
        "draft_text": "FINDINGS:\nL4-L5: disc herniation.\n\nIMPRESSION:\n1. L4-L5 disc herniation.",
        "draft_backend": "template",
        "conditions": [
            {"condition": "herniation", "probability": 0.91, "present": True, "level": "L4-L5"},
            {"condition": "lesion_intramedullary", "probability": 0.72, "present": True, "level": "C5"},
            {"condition": "fracture", "probability": 0.05, "present": False, "level": None},
            {"condition": "canal", "probability": 0.41, "present": False, "level": "L3-L4", "status": "not_assessed"},
            {"condition": "edema", "probability": 0.3, "present": False, "level": "L2", "status": "possible"},
        ],
        "boxes": [
            {"condition": "herniation", "series_instance_uid": first.series.series_instance_uid,
             "sop_instance_uid": first.sop_instance_uid, "box": [100.0, 120.5, 140.0, 150.0], "score": 0.8,
             "level": "L4-L5"},
            {"condition": "lesion_intramedullary", "series_instance_uid": second.series.series_instance_uid,
             "sop_instance_uid": second.sop_instance_uid, "box": [-4.0, 10.0, 30.0, 999.0], "score": 0.6,
             "level": "C5"},
            {"condition": "herniation", "series_instance_uid": "1.2.3", "sop_instance_uid": "1.2.3.4",
             "box": [1, 2, 3, 4], "score": 0.1, "level": "L5-S1"},
            # localised although not called: below threshold, and not validated by its bundle
            {"condition": "fracture", "series_instance_uid": first.series.series_instance_uid,
             "sop_instance_uid": first.sop_instance_uid, "box": [10.0, 10.0, 20.0, 20.0], "score": 0.2,
             "level": "L1"},
            {"condition": "canal", "series_instance_uid": first.series.series_instance_uid,
             "sop_instance_uid": first.sop_instance_uid, "box": [30.0, 30.0, 40.0, 40.0], "score": 0.3,
             "level": "L3-L4"},
        ],
        "key_slices": [], "similar_cases": [],
    }
    result = InferenceResult.objects.create(job=job, study=study, model_version=None, data=data)
    return result, first, second


def _read_back(orthanc_admin, sop_uid) -> pydicom.Dataset:
    match = next(m for m in _lookup(orthanc_admin, sop_uid) if m["Type"] == "Instance")
    return pydicom.dcmread(io.BytesIO(orthanc_admin.get(f"/instances/{match['ID']}/file").content))


def _lookup(orthanc_admin, uid):
    import requests

    return requests.post(orthanc_admin.url + "/tools/lookup", data=uid, auth=orthanc_admin.auth, timeout=30).json()


def test_sr_round_trip_through_orthanc(phantom_result, orthanc_admin):
    result, first, second = phantom_result
    before = orthanc_admin.count_instances()
    assert tasks.export(result, get_client()) == "stored"
    # Redelivery: same deterministic SOPInstanceUID, nothing new in Orthanc.
    assert tasks.export_sr.apply(args=(result.pk,)).get() == "exists"
    assert orthanc_admin.count_instances() == before + 1

    _, sop_uid = dicom_sr.sr_uids(result)
    ds = _read_back(orthanc_admin, sop_uid)
    assert ds.Modality == "SR" and ds.SOPInstanceUID == sop_uid
    assert ds.SeriesDescription == "SpineAgent AI results (synthetic-trained model)"
    assert ds.StudyInstanceUID == result.study.study_instance_uid
    sr = hd.sr.Comprehensive3DSR.from_dataset(ds)
    groups = sr.content.get_planar_roi_measurement_groups()
    assert len(groups) == 4  # the box on an instance outside the study is left out
    by_finding = {g.finding_type.value: g for g in groups}
    # the presence evaluation is the model's call; a condition it may not call carries none
    presence = {k: [e.value.meaning for e in g.get_qualitative_evaluations()] for k, g in by_finding.items()}
    assert presence == {"herniation": ["Present"], "lesion_intramedullary": ["Present"], "fracture": ["Absent"],
                        "canal": []}
    # a hedged call without a box is an image-free group marked Equivocal; an absent one has no group
    free = sr.content.get_image_measurement_groups()
    assert [(g.finding_type.value, [e.value.meaning for e in g.get_qualitative_evaluations()]) for g in free] == \
        [("edema", ["Equivocal"])]
    herniation = by_finding["herniation"]
    assert herniation.finding_type.scheme_designator == "99SPINEAGENT"
    assert herniation.finding_type.meaning == "Disc herniation"
    assert herniation.roi.graphic_type == hd.sr.GraphicTypeValues.POLYLINE
    assert herniation.roi.value.tolist() == [[100.0, 120.5], [140.0, 120.5], [140.0, 150.0], [100.0, 150.0],
                                             [100.0, 120.5]]
    ref = herniation.roi.ContentSequence[0].ReferencedSOPSequence[0]
    assert ref.ReferencedSOPInstanceUID == first.sop_instance_uid
    assert ref.ReferencedSOPClassUID == first.sop_class_uid
    site = herniation.finding_sites[0].value
    assert (site.value, site.scheme_designator) == ("84020006", "SCT")  # disc of L4 = L4-L5
    probability = next(m for m in herniation.get_measurements() if m.name.meaning == "Probability")
    assert probability.value == pytest.approx(0.91)
    lesion = by_finding["lesion_intramedullary"]  # longer than 16 characters: LongCodeValue
    assert lesion.roi.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == second.sop_instance_uid
    assert lesion.roi.value.tolist()[0] == [0.0, 10.0] and lesion.roi.value.tolist()[2] == [30.0, 256.0]
    texts = [item.TextValue for item in sr.ContentSequence if item.ValueType == "TEXT"]
    assert any("synthetic" in t for t in texts) and any("L4-L5 disc herniation" in t for t in texts)
    assert "template" in texts  # which drafter wrote the draft (docs/weights.md)

    # Building again gives the same UIDs; a result with nothing to report gives no SR.
    headers = get_client().study_metadata(result.study.study_instance_uid)
    again = dicom_sr.build_sr(result, headers)
    assert (again.SOPInstanceUID, again.SeriesInstanceUID) == (ds.SOPInstanceUID, ds.SeriesInstanceUID)
    empty = InferenceResult(pk=result.pk + 1000, study=result.study, data={"conditions": [], "boxes": []})
    assert dicom_sr.build_sr(empty, headers) is None


def test_indexing_the_sr_adds_an_sr_series_and_no_job(phantom_result, orthanc_admin):
    """Orthanc's stable-study event or a re-sync re-indexes the study with our SR in it."""
    result, _, _ = phantom_result
    study = result.study
    series_before = study.series.count()
    tasks.export(result, get_client())
    study, created = index_from_orthanc(study.study_instance_uid)
    assert not created
    # The session's Orthanc may also hold SRs of this phantom from earlier tests (one SR per result).
    sr_series = study.series.get(series_instance_uid=dicom_sr.sr_uids(result)[0])
    assert sr_series.modality == "SR" and sr_series.num_instances == 1
    assert study.series.exclude(modality="SR").count() == series_before
    assert "SR" in study.modalities.split("\\")
    assert InferenceJob.objects.filter(study=study).count() == 1
    headers = get_client().study_metadata(study.study_instance_uid)
    runner.check_supported(headers)  # the SR does not make the study unsupported
    assert sr_series.series_instance_uid not in intake.series_to_fetch(headers)


def test_level_codes():
    assert (dicom_sr.level_code("L4").value, dicom_sr.level_code("L4").scheme_designator) == ("11994002", "SCT")
    assert dicom_sr.level_code("C6-C7").meaning == "Intervertebral disc structure of sixth cervical vertebra"
    assert dicom_sr.level_code("S1-S2").scheme_designator == "99SPINEAGENT"
    assert dicom_sr.finding_code("lesion_intramedullary").meaning == "Intradural intramedullary lesion"


def test_export_failures_never_raise(db, monkeypatch, caplog):
    study = Study.objects.create(study_instance_uid="1.2.826.0.1.3680043.10.999.63")
    job = InferenceJob.objects.create(study=study, status="succeeded")
    result = InferenceResult.objects.create(job=job, study=study, data={"boxes": [{"broken": True}]})

    def boom(*a, **kw):
        raise RuntimeError("broken build")

    monkeypatch.setattr(tasks, "export", boom)
    assert tasks.export_sr.apply(args=(result.pk,)).get() == "failed"
    assert tasks.export_sr.apply(args=(10**9,)).get() == "result gone"

    def broker_down(*a, **kw):
        raise ConnectionError("redis down")

    monkeypatch.setattr(tasks.export_sr, "apply_async", broker_down)
    receivers.dispatch_sr_export(result.pk)  # logged, not raised
    assert "could not queue the DICOM SR export" in caplog.text


# --- issue 18: SR for any study ---------------------------------------------------------------------------------

STRIPPED = ("PatientBirthDate", "PatientSex", "AccessionNumber", "ReferringPhysicianName", "StudyID", "PatientName",
            "PatientID", "StudyDate", "StudyTime")
# Every MR file pydicom ships in its wheel (others are downloads, and this machine has no network).
PYDICOM_MR = ("MR_small.dcm", "MR_small_RLE.dcm", "MR_small_bigendian.dcm", "MR_small_expb.dcm",
              "MR_small_implicit.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm",
              "MR_small_padded.dcm", "MR_truncated.dcm")


def _sr_result(study, sop_uid, condition="herniation"):
    job = InferenceJob.objects.filter(study=study).first() or InferenceJob.objects.create(study=study)
    InferenceJob.objects.filter(pk=job.pk).update(status=InferenceJob.SUCCEEDED)
    return InferenceResult.objects.create(job=job, study=study, data={
        "model_name": "m", "model_version": "1", "synthetic_training": True, "draft_text": "x",
        "conditions": [{"condition": condition, "probability": 0.9, "present": True, "status": "present",
                        "level": "L4-L5"}],
        "boxes": [{"condition": condition, "sop_instance_uid": sop_uid, "box": [1, 2, 10, 12], "score": 0.5,
                   "level": "L4-L5"}]})


@pytest.mark.parametrize("name", PYDICOM_MR)
@pytest.mark.parametrize("how", ["as shipped", "de-identified (Type 2 attributes removed)", "Type 2 empty"])
def test_sr_builds_for_pydicom_mr_files_with_missing_type2_attributes(db, name, how):
    from pydicom.data import get_testdata_file

    header = pydicom.dcmread(get_testdata_file(name), stop_before_pixels=True)
    for keyword in STRIPPED:
        if how.startswith("de-identified") and keyword in header:
            delattr(header, keyword)
        elif how == "Type 2 empty":
            setattr(header, keyword, "")
    study = Study.objects.create(study_instance_uid=str(header.StudyInstanceUID))
    result = _sr_result(study, str(header.SOPInstanceUID))
    sr = dicom_sr.build_sr(result, [header])
    assert sr is not None and sr.StudyInstanceUID == header.StudyInstanceUID
    for keyword in ("PatientBirthDate", "PatientSex", "AccessionNumber", "ReferringPhysicianName", "StudyID"):
        assert keyword in sr  # Type 2: present, empty where the study had nothing
    if how.startswith("de-identified"):
        assert sr.PatientBirthDate == "" and sr.AccessionNumber == ""
    again = pydicom.dcmread(io.BytesIO(dicom_sr.to_part10(sr)))
    assert hd.sr.Comprehensive3DSR.from_dataset(again).content.get_planar_roi_measurement_groups()


def test_failed_sr_export_is_recorded_visible_and_retryable(orthanc, orthanc_admin, users, client_for, testdata_file,
                                                            monkeypatch, django_capture_on_commit_callbacks):
    """An export that fails is on the result for the reader and the admin; an admin's retry stores it."""
    data = testdata_file("MR_small.dcm")
    header = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    for keyword in STRIPPED[:5]:
        delattr(header, keyword) if keyword in header else None
    buffer = io.BytesIO()
    full = pydicom.dcmread(io.BytesIO(data))
    for keyword in STRIPPED[:5]:
        delattr(full, keyword) if keyword in full else None
    full.save_as(buffer, enforce_file_format=True)
    orthanc_admin.post_instance(buffer.getvalue())
    study, _ = index_from_orthanc(str(header.StudyInstanceUID))
    result = _sr_result(study, str(header.SOPInstanceUID))
    original = dicom_sr.build_sr
    monkeypatch.setattr(dicom_sr, "build_sr", lambda *a: (_ for _ in ()).throw(AttributeError("PatientBirthDate")))
    monkeypatch.setattr("backend.inference.tasks.export_sr.apply_async",
                        lambda args, **kw: tasks.export_sr.apply(args=args))
    receivers.dispatch_sr_export(result.pk)
    result.refresh_from_db()
    assert (result.sr_status, result.sr_error) == ("failed", "AttributeError: PatientBirthDate")
    report = client_for("radiologist").get(f"/api/studies/{study.study_instance_uid}/report").json()
    assert report["sr_export"] == {"status": "failed", "error": "AttributeError: PatientBirthDate"}
    assert client_for("admin").get(f"/api/studies/{study.study_instance_uid}/result").json()["sr_status"] == "failed"

    monkeypatch.setattr(dicom_sr, "build_sr", original)
    assert client_for("radiologist").post(f"/api/studies/{study.study_instance_uid}/result/sr-export").status_code == 403
    retried = client_for("admin").post(f"/api/studies/{study.study_instance_uid}/result/sr-export")
    assert retried.status_code == 202 and retried.json()["sr_status"] == "stored", retried.content
    _, sop_uid = dicom_sr.sr_uids(result)
    stored = _read_back(orthanc_admin, sop_uid)
    assert stored.PatientBirthDate == "" and stored.StudyInstanceUID == header.StudyInstanceUID
