"""Fixtures for the model library: tiny DICOM studies, a tiny untrained bundle, phantoms when present."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

SAG = [0, 1, 0, 0, 0, -1]
AX = [1, 0, 0, 0, 1, 0]


def make_series(study_uid: str, description: str, n: int = 5, size: tuple[int, int] = (64, 80),
                orientation=SAG, modality: str = "MR", slope: float = 1.0, intercept: float = 0.0,
                series_number: int = 1, seed: int = 0, tr: float | None = None, te: float | None = None,
                body_part: str = "LSPINE") -> list[Dataset]:
    rng = np.random.default_rng(seed)
    series_uid = generate_uid()
    out = []
    for k in range(n):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
        ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.Modality, ds.SeriesDescription, ds.SeriesNumber, ds.InstanceNumber = modality, description, series_number, k + 1
        ds.Manufacturer = "TEST"
        ds.BodyPartExamined = body_part  # noise images: the tags must say spine (a blank part needs a real spine)
        ds.ImageOrientationPatient = orientation
        normal = np.cross(orientation[:3], orientation[3:])
        ds.ImagePositionPatient = [float(v) for v in normal * (k * 4.0)]
        if tr is not None:
            ds.RepetitionTime, ds.EchoTime = tr, te
        ds.Rows, ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        img = rng.integers(0, 4095, size=size, dtype=np.uint16)
        img[size[0] // 4: size[0] // 2, size[1] // 4: size[1] // 2] = 4000
        ds.PixelData = img.tobytes()
        out.append(ds)
    return out


def make_study(kinds=("T1", "T2", "STIR", "AXT2"), modality: str = "MR", **kw):
    """Noise-image series of the given kinds; ``body_part=""`` leaves BodyPartExamined blank."""
    from spinefm.study import StudyInput

    uid = generate_uid()
    descriptions = {"T1": ("SAG T1 FSE", SAG), "T2": ("SAG T2 FSE", SAG), "STIR": ("SAG STIR", SAG),
                    "AXT2": ("AX T2 FSE", AX), "DIXON": ("SAG T2 DIXON W", SAG), "POST": ("SAG T1 FS +C", SAG)}
    datasets = []
    for i, k in enumerate(kinds):
        desc, ori = descriptions[k]
        datasets += make_series(uid, desc, orientation=ori, modality=modality, series_number=i + 1, seed=i, **kw)
    return StudyInput.from_datasets(datasets)


@pytest.fixture(scope="package", autouse=True)
def one_cpu_thread():
    """The CI box has 2 shared cores: 1 intra-op thread avoids spin-waiting (often 10x faster here)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def study_factory():
    return make_study


@pytest.fixture(scope="session")
def tiny_cfg():
    from spinefm.model import nano_config

    cfg = nano_config(img_size=32, proj_dim=16, depth=2, hidden=16)
    cfg.preprocess.max_slices = 4
    return cfg


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, tiny_cfg):
    """An untrained tiny model saved as a bundle with a 3-case retrieval index."""
    import torch

    from spinefm.bundle import save_bundle
    from spinefm.model import SpineFM
    from spinefm.retrieval import EmbeddingIndex

    torch.manual_seed(0)
    model = SpineFM(tiny_cfg)
    d = tiny_cfg.clip.proj_dim
    index = EmbeddingIndex(torch.randn(3, d), torch.randn(3, d), ["a", "b", "c"], ["report a", "report b", "report c"])
    path = tmp_path_factory.mktemp("bundle") / "tiny"
    save_bundle(model, path, name="tiny", version="0.0.1", synthetic_training=True, index=index)
    return path


@pytest.fixture
def train_align():
    """Train a ``spinefm.train.align.AlignStep`` on toy cases; returns (first, last) of one loss term and the last output."""
    import torch

    def run(step, cases, text, key: str, steps: int = 40, lr: float = 1e-2):
        opt = torch.optim.AdamW(step.parameters(), lr=lr)  # parts without a gradient are skipped
        step.train()
        first = last = out = None
        for _ in range(steps):
            out = step(cases, text)
            opt.zero_grad()
            out["loss"].backward()
            opt.step()
            first = out[key].item() if first is None else first
            last = out[key].item()
        return first, last, out

    return run
