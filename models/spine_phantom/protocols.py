"""Per-vendor series naming and acquisition parameters.

Why per vendor: real archives name the same sequence differently (Siemens
``t2_tirm_sag``, GE ``SAG STIR``, Philips ``STIR SAG``...), and the backend's
sequence typing (``spinefm.sequences``) must cope; cross-vendor tests need the
variety. Every description here is checked against ``classify_sequence`` in the
tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .physics import Protocol


@dataclass(frozen=True)
class VendorStyle:
    manufacturer: str
    models: tuple[str, ...]
    names: dict            # (kind, plane) -> SeriesDescription
    gain: float            # typical brightest-tissue value in 12-bit


VENDOR_STYLES = {
    "SIEMENS": VendorStyle("SIEMENS", ("Aera", "Avanto_fit", "Skyra"), {
        ("T1", "sagittal"): "t1_tse_sag", ("T2", "sagittal"): "t2_tse_sag",
        ("STIR", "sagittal"): "t2_tirm_sag", ("T2", "axial"): "t2_tse_tra",
        ("DIXON", "sagittal"): "t2_tse_dixon_sag_W", ("OTHER", "sagittal"): "t1_tse_fs_sag_post",
        ("LOCALIZER", "sagittal"): "localizer",
    }, 2400.0),
    "GE MEDICAL SYSTEMS": VendorStyle("GE MEDICAL SYSTEMS", ("SIGNA Explorer", "Optima MR450w", "SIGNA Premier"), {
        ("T1", "sagittal"): "SAG T1 FSE", ("T2", "sagittal"): "SAG T2 FSE",
        ("STIR", "sagittal"): "SAG STIR", ("T2", "axial"): "AX T2 FSE",
        ("DIXON", "sagittal"): "SAG T2 FLEX WATER", ("OTHER", "sagittal"): "SAG T1 FS POST GAD",
        ("LOCALIZER", "sagittal"): "3-Plane Loc",
    }, 3000.0),
    "Philips": VendorStyle("Philips", ("Ingenia", "Achieva", "Ingenia Elition X"), {
        ("T1", "sagittal"): "T1W_TSE SAG", ("T2", "sagittal"): "T2W_TSE SAG",
        ("STIR", "sagittal"): "STIR SAG", ("T2", "axial"): "T2W_TSE TRA",
        ("DIXON", "sagittal"): "T2W_mDIXON SAG WATER", ("OTHER", "sagittal"): "T1W_TSE SPIR SAG +C",
        ("LOCALIZER", "sagittal"): "Survey",
    }, 2000.0),
    "CANON_MEC": VendorStyle("CANON_MEC", ("Vantage Orian", "Vantage Galan 3T"), {
        ("T1", "sagittal"): "Sag T1 FSE", ("T2", "sagittal"): "Sag T2 FSE",
        ("STIR", "sagittal"): "Sag STIR", ("T2", "axial"): "Ax T2 FSE",
        ("DIXON", "sagittal"): "Sag T2 DIXON Water", ("OTHER", "sagittal"): "Sag T1 FS post contrast",
        ("LOCALIZER", "sagittal"): "Locator",
    }, 2800.0),
}


def protocol_for(sequence: str, plane: str, rng: np.random.Generator) -> Protocol:
    """Sequence parameters drawn within typical clinical ranges."""
    if sequence == "T1":
        return Protocol("T1", "se", float(rng.integers(45, 70) * 10), float(rng.integers(8, 15)),
                        echo_train=int(rng.integers(3, 5)), flip=150.0)
    if sequence == "T2":
        return Protocol("T2", "se", float(rng.integers(30, 50) * 100), float(rng.integers(85, 115)),
                        echo_train=int(rng.integers(14, 24)), flip=150.0)
    if sequence == "STIR":
        tr = float(rng.integers(35, 50) * 100)
        # the inversion time that nulls fat (T1 260 ms) for this TR, as the vendors tune it
        t1_fat = 260.0
        ti = -t1_fat * np.log((1 + np.exp(-tr / t1_fat)) / 2)
        return Protocol("STIR", "stir", tr, float(rng.integers(40, 70)), ti=float(round(ti)), echo_train=12, flip=150.0)
    if sequence == "DIXON":
        return Protocol("DIXON", "dixon_water", float(rng.integers(30, 45) * 100), float(rng.integers(80, 100)),
                        echo_train=16, flip=150.0)
    if sequence == "OTHER":
        return Protocol("OTHER", "t1_post_fs", float(rng.integers(45, 70) * 10), float(rng.integers(8, 14)),
                        echo_train=3, flip=150.0, contrast=True)
    if sequence == "LOCALIZER":  # fast gradient echoes: spoiled (FLASH / FGRE) or balanced (TrueFISP / FIESTA)
        if rng.random() < 0.5:
            return Protocol("LOCALIZER", "gre", float(rng.uniform(6.0, 12.0)), float(rng.uniform(2.5, 5.0)),
                            flip=float(rng.integers(15, 30)))
        return Protocol("LOCALIZER", "ssfp", float(rng.uniform(3.5, 5.0)), float(rng.uniform(1.5, 2.5)),
                        flip=float(rng.integers(45, 70)))
    raise ValueError(sequence)
