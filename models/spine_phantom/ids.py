"""Deterministic identifiers, dates and the train/val/test split, all derived from (seed, index).

No wall clock and no uuid4: the same seed must give byte-identical files.
UIDs are 2.25.<int> UIDs (the UUID-derived root) whose 128-bit integer is a
SHA-256 hash of the inputs instead of a random UUID.
"""

from __future__ import annotations

import datetime as _dt
import hashlib

# The fixed evaluation split: every study generated with this seed is "test".
EVAL_SEED = 7
EVAL_STUDIES = 40


def uid(seed: int, index: int, *parts: object) -> str:
    key = "/".join(["spine_phantom", str(seed), str(index), *map(str, parts)])
    return "2.25." + str(int.from_bytes(hashlib.sha256(key.encode()).digest()[:16], "big"))


def _hash01(*parts: object) -> float:
    h = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def study_datetime(seed: int, index: int) -> tuple[str, str]:
    """(StudyDate YYYYMMDD, StudyTime HHMMSS) spread over 2019-2024, working hours."""
    u = _hash01("date", seed, index)
    day = _dt.date(2019, 1, 1) + _dt.timedelta(days=int(u * 6 * 365))
    minutes = 7 * 60 + int(_hash01("time", seed, index) * 12 * 60)
    return day.strftime("%Y%m%d"), f"{minutes // 60:02d}{minutes % 60:02d}00"


def split_of(seed: int, index: int) -> str:
    """Patient-level split (one study per patient). Seed 7 is the fixed eval set: all "test".

    Other seeds: 80% train, 10% val, 10% test by a hash of (seed, index).
    """
    if seed == EVAL_SEED:
        return "test"
    u = _hash01("split", seed, index)
    return "train" if u < 0.8 else ("val" if u < 0.9 else "test")


def patient_id(seed: int, index: int) -> str:
    return f"PHANTOM-S{seed}-{index:04d}"


def patient_name(seed: int, index: int) -> str:
    return f"PHANTOM^{index:04d}"
