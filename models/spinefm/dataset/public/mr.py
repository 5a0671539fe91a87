"""A volume with its geometry -> one pydicom MR dataset per sagittal slice, so a public set that ships
MetaImage volumes enters the dataset by the same path as a DICOM study (intake, sequence typing,
preprocessing), and its findings can name the slices by SOPInstanceUID.

Slices are laid out as a scanner lays out a sagittal series (and as spine_phantom does): rows run
head to feet, columns anterior to posterior; ImageOrientationPatient / ImagePositionPatient /
PixelSpacing are computed from the volume's header, never assumed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .metaimage import Volume


class GeometryError(ValueError):
    """A volume whose axes do not make a sagittal stack."""


@dataclass
class SagittalStack:
    pixels: np.ndarray              # [slice, row, col]
    orientation: list[float]        # ImageOrientationPatient: row direction (along a row), column direction
    positions: list[list[float]]    # ImagePositionPatient per slice
    pixel_spacing: list[float]      # [between rows, between columns] (DICOM order)
    thickness: float


def sagittal_stack(vol: Volume, tolerance: float = 0.7) -> SagittalStack:
    """Reorder a volume's axes into sagittal slices: the index axis closest to patient left-right is
    the slice axis, the one closest to head-feet runs down the rows (flipped to point to the feet),
    the last runs along a row (flipped to point posterior)."""
    d = np.asarray(vol.direction, dtype=float)   # row i: LPS direction of index axis i (x, y, z)
    s = int(np.argmax(np.abs(d[:, 0])))
    if abs(d[s, 0]) < tolerance:
        raise GeometryError(f"no index axis runs left-right (direction {d.round(3).tolist()}): not a sagittal volume")
    rest = [i for i in range(3) if i != s]
    vert = max(rest, key=lambda i: abs(d[i, 2]))
    horiz = next(i for i in rest if i != vert)
    arr = np.moveaxis(vol.array, [2 - s, 2 - vert, 2 - horiz], [0, 1, 2])
    origin = np.asarray(vol.origin, dtype=float)
    sp = [float(v) for v in vol.spacing]
    dv, dh = d[vert].copy(), d[horiz].copy()
    if dv[2] > 0:  # rows should run towards the feet (LPS z points to the head)
        arr = arr[:, ::-1, :]
        origin = origin + (arr.shape[1] - 1) * sp[vert] * dv
        dv = -dv
    if dh[1] < 0:  # columns should run towards the back (LPS y points posterior)
        arr = arr[:, :, ::-1]
        origin = origin + (arr.shape[2] - 1) * sp[horiz] * dh
        dh = -dh
    positions = [(origin + k * sp[s] * d[s]).tolist() for k in range(arr.shape[0])]
    return SagittalStack(np.ascontiguousarray(arr), [*dh.tolist(), *dv.tolist()], positions,
                         [sp[vert], sp[horiz]], sp[s])


def axis_warning(stack: SagittalStack) -> str:
    """A reason to doubt the header's directions: sagittal series are thickest across their slices
    (2-D T1/T2 about 3-5 mm against < 1 mm in plane; 3-D SPACE 0.9 against 0.47 mm). Empty if fine."""
    inplane = max(stack.pixel_spacing)
    if stack.thickness < 0.5 * inplane:
        return (f"the header's left-right axis is {stack.thickness:g} mm apart but {inplane:g} mm in plane: "
                "check its direction matrix (TransformMatrix); the slices may not be sagittal")
    return ""


def to_uint16(pixels: np.ndarray) -> np.ndarray:
    """Stored values for MONOCHROME2 16-bit: integers shifted to start at 0, floats scaled to 0-4095
    (windowing downstream is by percentiles, so neither changes what the model sees)."""
    a = np.asarray(pixels)
    if a.size == 0:
        return a.astype(np.uint16)
    if np.issubdtype(a.dtype, np.floating):
        lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
        scaled = (np.nan_to_num(a, nan=lo) - lo) / (hi - lo) * 4095 if hi > lo else np.zeros_like(a)
        return np.round(scaled).astype(np.uint16)
    lo = int(a.min())
    a = a.astype(np.int64) - min(lo, 0)
    hi = int(a.max())
    if hi > 65535:
        a = a * 65535 // hi
    return a.astype(np.uint16)


def _fmt(v: float) -> str:
    s = f"{v:.6f}".rstrip("0").rstrip(".")
    return s if s not in ("-0", "") else "0"


def slice_datasets(stack: SagittalStack, *, study_uid: str, series_uid: str, sop_uids: list[str],
                   series_number: int, series_description: str, patient_id: str, study_description: str,
                   body_part: str = "LSPINE", extra: dict | None = None) -> list:
    """One MR dataset (with file meta, explicit VR little endian) per slice of the stack."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, MRImageStorage

    pixels = to_uint16(stack.pixels)
    out = []
    for k in range(pixels.shape[0]):
        ds = Dataset()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = sop_uids[k]
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds.file_meta = meta
        ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = sop_uids[k]
        ds.Modality = "MR"
        ds.PatientID = patient_id
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.StudyDescription = study_description
        ds.SeriesDescription = series_description
        ds.BodyPartExamined = body_part
        ds.SeriesNumber = series_number
        ds.InstanceNumber = k + 1
        ds.ImageOrientationPatient = [_fmt(v) for v in stack.orientation]
        ds.ImagePositionPatient = [_fmt(v) for v in stack.positions[k]]
        ds.PixelSpacing = [_fmt(v) for v in stack.pixel_spacing]
        ds.SliceThickness = _fmt(stack.thickness)
        ds.Rows, ds.Columns = int(pixels.shape[1]), int(pixels.shape[2])
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        for keyword, value in (extra or {}).items():
            setattr(ds, keyword, value)
        ds.PixelData = np.ascontiguousarray(pixels[k], dtype="<u2").tobytes()
        out.append(ds)
    return out
