"""Files are standard DICOM that pydicom, Orthanc and OHIF accept, and typed right by spinefm."""

import numpy as np
import pydicom
from pydicom.uid import UID, ExplicitVRLittleEndian, MRImageStorage

from spinefm.sequences import classify_sequence, describe_sequence, plane_from_orientation
from spinefm.study import StudyInput
from spine_phantom import write_study
from spine_phantom.protocols import VENDOR_STYLES

REQUIRED = ["PatientName", "PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID",
            "Modality", "StudyDate", "StudyTime", "SeriesNumber", "InstanceNumber", "Rows", "Columns",
            "PixelSpacing", "SliceThickness", "ImagePositionPatient", "ImageOrientationPatient",
            "FrameOfReferenceUID", "PhotometricInterpretation", "WindowCenter", "WindowWidth",
            "RepetitionTime", "EchoTime", "ScanningSequence", "SequenceVariant", "Manufacturer",
            "BodyPartExamined", "SeriesDescription", "StudyDescription", "ImageComments", "PatientComments"]


def test_written_files_read_back(lumbar_study, tmp_path):
    folder = write_study(lumbar_study, tmp_path)
    files = sorted(folder.rglob("*.dcm"))
    assert len(files) == sum(s.pixels.shape[0] for s in lumbar_study.series)
    datasets = []
    for f in files:
        raw = f.read_bytes()
        assert raw[128:132] == b"DICM"
        ds = pydicom.dcmread(f)  # not force: must be a proper Part 10 file
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert ds.file_meta.MediaStorageSOPClassUID == MRImageStorage == ds.SOPClassUID
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        for kw in REQUIRED:
            assert kw in ds, kw
        assert ds.Modality == "MR" and ds.PhotometricInterpretation == "MONOCHROME2"
        assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (16, 12, 11, 0)
        assert "SYNTHETIC" in ds.StudyDescription and "SYNTHETIC" in ds.ImageComments
        assert "SYNTHETIC" in ds.PatientComments
        assert str(ds.PatientName).startswith("PHANTOM^")
        assert ds.BodyPartExamined == "LSPINE"
        for u in (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, ds.FrameOfReferenceUID):
            assert UID(u).is_valid and len(u) <= 64
        arr = ds.pixel_array
        assert arr.dtype == np.uint16 and arr.shape == (ds.Rows, ds.Columns) and int(arr.max()) <= 4095
        datasets.append(ds)
    study = StudyInput.from_datasets(datasets)
    by_uid = {s.series_instance_uid: s for s in lumbar_study.series}
    assert len(study.series) == len(lumbar_study.series)
    for s in study.series:
        ours = by_uid[s.series_instance_uid]
        assert s.sequence == ours.sequence, (s.description, s.sequence_rule)
        assert s.plane == ours.plane
        # a reader's sort by position reproduces our slice order (truth slice_index), pixels round-trip
        sops = [str(d.SOPInstanceUID) for d in s.datasets]
        assert sops == ours.sop_instance_uids
        assert [int(d.InstanceNumber) for d in s.datasets] == list(range(1, len(sops) + 1))
        for d in s.datasets:
            i = ours.sop_instance_uids.index(str(d.SOPInstanceUID))
            assert np.array_equal(d.pixel_array, ours.pixels[i])


def test_sequence_parameters_match_physics(loaded_studies):
    for _, study in loaded_studies:
        for s in study.series:
            ds = s.datasets()[0]
            assert classify_sequence(ds)[0] == s.sequence
            assert plane_from_orientation(ds.ImageOrientationPatient) == s.plane
            tr, te = float(ds.RepetitionTime), float(ds.EchoTime)
            if s.sequence == "T1" or s.sequence == "OTHER":
                assert tr < 1000 and te < 30
            if s.sequence in ("T2", "DIXON"):
                assert tr >= 1500 and te >= 60
            if s.sequence == "STIR":
                assert "IR" in list(ds.ScanningSequence) and 80 <= float(ds.InversionTime) <= 250
            if s.sequence == "OTHER":
                assert "ContrastBolusAgent" in ds


def test_all_vendor_descriptions_classify():
    from pydicom.dataset import Dataset
    for style in VENDOR_STYLES.values():
        for (seq, plane), name in style.names.items():
            ds = Dataset()
            ds.Modality = "MR"
            ds.SeriesDescription = name
            if seq == "LOCALIZER":  # typed by ImageType as the phantom writes it (Canon's "Locator" names no rule)
                ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
                assert describe_sequence(ds).detail == "localizer", name
                continue
            assert classify_sequence(ds)[0] == seq, name


def test_vendors_vary():
    from spine_phantom import generate_study, PhantomConfig
    cfg = PhantomConfig(image_size=(64, 64), include_axial=False)
    vendors = {generate_study(21, i, cfg).vendor for i in range(12)}
    assert len(vendors) >= 3
