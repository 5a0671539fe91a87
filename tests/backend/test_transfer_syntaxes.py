"""Every transfer syntax an archive holds MR in reaches the model (issue 18, item 8).

The worker asks Orthanc for instances as stored (Orthanc 1.10 cannot transcode JPEG 2000) and decodes them
itself with pydicom and the pylibjpeg decoders. A phantom study re-encoded in each syntax is uploaded through
the API, fetched by the real runner from the real Orthanc and analysed by the shipped bundle: lossless
syntaxes give exactly the predictions of the uncompressed study. pydicom's own files in the syntaxes we
cannot write (JPEG baseline and lossless, JPEG-LS near-lossless, lossy JPEG 2000) are fetched and decoded
the same way. A series Orthanc will not deliver is left out with its reason, and only an outage is retried.
"""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from pydicom.uid import (JPEG2000, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ExplicitVRLittleEndian,
                         JPEG2000Lossless, JPEGLSLossless, RLELossless, generate_uid)

from backend.inference import fetch, runner
from backend.inference.models import InferenceJob
from backend.studies.models import Study
from backend.studies.orthanc.client import OrthancRefused, get_client

pytestmark = [pytest.mark.services, pytest.mark.django_db]
LOSSLESS = (ExplicitVRLittleEndian, JPEG2000Lossless, JPEGLSLossless, RLELossless, DeflatedExplicitVRLittleEndian,
            ExplicitVRBigEndian)


def encoded(files: list[tuple[str, bytes]], syntax) -> list[tuple[str, bytes]]:
    """The study with new UIDs (one study per syntax in the shared Orthanc), each instance in ``syntax``."""
    mapping: dict[str, str] = {}

    def new(uid: str) -> str:
        return mapping.setdefault(uid, generate_uid(entropy_srcs=[uid, str(syntax)]))

    out = []
    for name, data in files:
        ds = pydicom.dcmread(io.BytesIO(data))
        pixels = ds.pixel_array
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"):
            if keyword in ds:
                setattr(ds, keyword, new(str(ds[keyword].value)))
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        if syntax == JPEG2000:
            ds.compress(JPEG2000, j2k_psnr=[80])
        elif syntax in (JPEG2000Lossless, JPEGLSLossless, RLELossless):
            ds.compress(syntax)
        elif syntax == ExplicitVRBigEndian:
            ds.PixelData = pixels.astype(pixels.dtype.newbyteorder(">")).tobytes()
            ds.file_meta.TransferSyntaxUID = syntax
        else:
            ds.file_meta.TransferSyntaxUID = syntax
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
        out.append((name, buffer.getvalue()))
    return out


def analysed(client, upload, files) -> dict:
    response = upload(client, files)
    assert response.status_code == 201, response.content
    study = Study.objects.get(study_instance_uid=response.json()["studies"][0]["study_instance_uid"])
    job = InferenceJob.objects.get(study=study)
    data, _ = runner.run(job)
    assert data["series_skipped"] == []
    return data


@pytest.fixture(scope="module")
def reference_store():
    return {}


@pytest.mark.parametrize("syntax", LOSSLESS + (JPEG2000,), ids=lambda s: s.name)
def test_a_study_in_each_transfer_syntax_is_analysed_like_the_uncompressed_one(
        syntax, orthanc, users, client_for, phantom_files, upload, active_model, reference_store):
    files = phantom_files(seed=1801)
    admin = client_for("admin")
    if "data" not in reference_store:
        reference_store["data"] = analysed(admin, upload, encoded(files, ExplicitVRLittleEndian))
    reference = reference_store["data"]
    data = analysed(admin, upload, encoded(files, syntax))
    assert [s["sequence"] for s in data["series"]] == [s["sequence"] for s in reference["series"]]
    probabilities = np.array([c["probability"] for c in data["conditions"]])
    expected = np.array([c["probability"] for c in reference["conditions"]])
    if syntax in LOSSLESS:
        assert np.allclose(probabilities, expected, atol=1e-4), syntax.name
        assert [c["status"] for c in data["conditions"]] == [c["status"] for c in reference["conditions"]]
    else:  # lossy: close, not equal
        assert np.abs(probabilities - expected).max() < 0.05


# pydicom's files in syntaxes we do not write ourselves, that Orthanc 1.10 stores (it refuses SC_rgb_jpeg.dcm
# and JPEGLSNearLossless_08.dcm: tests/backend/test_ingest.py shows the upload then names Orthanc's reason).
PYDICOM_CODECS = ("SC_rgb_jpeg_gdcm.dcm", "JPEG2000.dcm", "MR_small_jp2klossless.dcm", "MR_small_RLE.dcm",
                  "MR_small_bigendian.dcm", "MR_small_jpeg_ls_lossless.dcm", "image_dfl.dcm", "SC_rgb_jpeg_dcmtk.dcm",
                  "SC_rgb_jpeg_lossy_gdcm.dcm")


def with_new_uids(data: bytes) -> bytes:
    """The same file (same transfer syntax and pixel bytes) under new UIDs: several of pydicom's files share
    their SOPInstanceUID, and the shared test Orthanc keeps the first one it was sent."""
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


@pytest.mark.parametrize("name", PYDICOM_CODECS)
def test_pydicoms_files_are_fetched_as_stored_and_decoded_here(name, orthanc, orthanc_admin, testdata_file):
    data = with_new_uids(testdata_file(name))
    local = pydicom.dcmread(io.BytesIO(data))
    stored = orthanc_admin.post_instance(data)
    assert stored["Status"] in ("Success", "AlreadyStored")
    header = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    datasets, skipped = fetch.fetch_readable(get_client(), str(header.StudyInstanceUID),
                                             {str(header.SeriesInstanceUID): header})
    assert skipped == []
    mine = next(d for d in datasets if d.SOPInstanceUID == header.SOPInstanceUID)
    assert mine.file_meta.TransferSyntaxUID == local.file_meta.TransferSyntaxUID  # not transcoded
    assert np.array_equal(mine.pixel_array, local.pixel_array)


def test_a_series_orthanc_will_not_deliver_is_left_out_with_its_reason(orthanc, orthanc_admin, testdata_file):
    data = testdata_file("MR_small.dcm")
    orthanc_admin.post_instance(data)
    header = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    client = get_client()
    with pytest.raises(OrthancRefused):
        client.retrieve_series(str(header.StudyInstanceUID), "1.2.3.4.5.6.7.404")
    wanted = {str(header.SeriesInstanceUID): header, "1.2.3.4.5.6.7.404": pydicom.Dataset()}
    datasets, skipped = fetch.fetch_readable(client, str(header.StudyInstanceUID), wanted)
    assert len(datasets) == 1 and len(skipped) == 1 and "Orthanc answered HTTP" in skipped[0]
    from spinefm.results import UnsupportedStudy

    with pytest.raises(UnsupportedStudy, match="no series could be read"):
        fetch.fetch_readable(client, str(header.StudyInstanceUID), {"1.2.3.4.5.6.7.404": header})


def test_undecodable_pixels_leave_the_series_out_with_the_syntax_named(orthanc, orthanc_admin, testdata_file):
    ds = pydicom.dcmread(io.BytesIO(testdata_file("MR_small_jp2klossless.dcm")))
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    fragments = bytearray(ds.PixelData)
    fragments[40:200] = b"\x00" * 160  # a garbled codestream inside a valid encapsulation
    ds.PixelData = bytes(fragments)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    orthanc_admin.post_instance(buffer.getvalue())
    from spinefm.results import UnsupportedStudy

    with pytest.raises(UnsupportedStudy) as refused:
        fetch.fetch_readable(get_client(), str(ds.StudyInstanceUID), {str(ds.SeriesInstanceUID): ds})
    assert "pixels could not be decoded (JPEG 2000 Image Compression (Lossless Only)" in str(refused.value)


def test_an_outage_is_not_a_refusal(orthanc, settings):
    from backend.devstack.services import free_port
    from backend.errors import ServiceUnavailable

    settings.ORTHANC_URL = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ServiceUnavailable):
        get_client().retrieve_series("1.2.3", "4.5.6")
