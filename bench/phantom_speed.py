"""How fast is the phantom generator? Prints seconds per study and a ratio to plain pydicom writing.

Usage: .venv/bin/python bench/phantom_speed.py [--studies 5] [--seed 1]

Measures, on one core (numpy is single-threaded here), for lumbar studies with
the four standard series (sag T1, sag T2, sag STIR, axial T2; ~60-70 slices):
  generate  generate_study(): anatomy, findings, label maps, four sequences, truth, report
  write     + datasets() and pydicom.dcmwrite of every slice to a temp folder
  reference pydicom.dcmwrite alone of the same number of slices of the same size
            (a minimal MR dataset per slice, pixels already in memory)
Both CPU time (process_time, robust on a shared machine) and wall time are shown;
the ratio uses CPU time measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage

from spine_phantom import PhantomConfig, generate_study, write_study


def _clock():
    return time.process_time(), time.perf_counter()


def _since(t0):
    c, w = _clock()
    return c - t0[0], w - t0[1]


def _reference_write(n_slices: int, rows: int, cols: int, out: Path) -> None:
    """Minimal valid MR files written with pydicom alone: the floor for any DICOM writer."""
    px = np.random.default_rng(0).integers(0, 4095, (rows, cols), dtype=np.uint16).tobytes()
    for i in range(n_slices):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = f"1.2.3.{i + 1}"
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = f"1.2.3.{i + 1}"
        ds.Modality = "MR"
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = px
        pydicom.dcmwrite(out / f"{i}.dcm", ds, enforce_file_format=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--studies", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    cfg = PhantomConfig(regions=("lumbar",), include_other_sequence=False)
    generate_study(args.seed, 10_000, cfg)  # warm-up (imports, caches)
    gen_c = gen_w = wr_c = wr_w = ref_c = ref_w = 0.0
    slices = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.studies):
            t0 = _clock()
            study = generate_study(args.seed, i, cfg)
            c, w = _since(t0)
            gen_c, gen_w = gen_c + c, gen_w + w
            t0 = _clock()
            write_study(study, Path(tmp) / "phantom")
            c, w = _since(t0)
            wr_c, wr_w = wr_c + c, wr_w + w
            n = sum(s.pixels.shape[0] for s in study.series)
            slices += n
            rows, cols = study.series[0].pixels.shape[1:]
            ref_dir = Path(tmp) / f"ref{i}"
            ref_dir.mkdir()
            t0 = _clock()
            _reference_write(n, rows, cols, ref_dir)
            c, w = _since(t0)
            ref_c, ref_w = ref_c + c, ref_w + w
    k = args.studies
    print(f"spine_phantom speed: {k} lumbar studies, 4 series, {slices / k:.0f} slices/study, "
          f"256x256, 1 process, load avg {os.getloadavg()[0]:.1f}")
    print(f"  generate_study      : {gen_c / k:.3f} s CPU/study ({gen_w / k:.3f} s wall)")
    print(f"  + datasets + write  : {(gen_c + wr_c) / k:.3f} s CPU/study ({(gen_w + wr_w) / k:.3f} s wall)")
    print(f"  reference dcmwrite  : {ref_c / k:.3f} s CPU/study ({ref_w / k:.3f} s wall) for the same slices")
    print(f"  ratio generate/reference = {gen_c / ref_c:.2f}; (generate+write)/reference = {(gen_c + wr_c) / ref_c:.2f}")


if __name__ == "__main__":
    main()
