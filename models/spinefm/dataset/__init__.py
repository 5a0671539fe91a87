"""The one on-disk dataset every training stage reads (``--dataset DIR``), whatever the studies came from.

Layout::

    dataset.json    format, preprocess config, sources (what was read, whether synthetic),
                    one entry per study (case file, patient, split, source, synthetic), counts
    cases/*.npz     one preprocessed study each (spinefm.data.save_record: uint8 crops, series, vendor;
                    for phantoms also the generator's truth): the expensive part, never redone
    cases/*.json    its annotation from the tables (report, labels, findings, split, patient):
                    recomputed on every build, so a rerun after fixing a table only re-reads the tables
    errors.json     per study: why it is not in the dataset (the build never stops for one study)
    progress.jsonl  the build's journal (studies done or failed), so a rerun resumes

Splits are by patient: a patient's studies share one split (a ``split`` column in the
reports table, else a hash of the PatientID). A dataset whose splits put one patient in
two splits is refused, at build and at open. ``synthetic`` is recorded per study (phantoms,
or DICOM that says it is a synthetic phantom) and the bundle manifest's
``synthetic_training`` and data description are derived from it, never from a flag.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..data import CaseRecord, cache_key, load_record, save_record
from ..preprocess import PreprocessConfig

FORMAT = "spinefm-dataset/1"
MANIFEST, ERRORS, JOURNAL, CASES = "dataset.json", "errors.json", "progress.jsonl", "cases"
SPLITS = ("train", "val", "test")


class DatasetError(RuntimeError):
    """A dataset directory is missing, malformed, leaks a patient across splits, or was preprocessed otherwise."""


@dataclass
class StudyEntry:
    case_id: str
    file: str                  # relative to the dataset directory
    patient_id: str
    split: str
    source: str                # e.g. "dicom:/data/archive", "phantom:seed=0"
    synthetic: bool
    key: str = ""              # the source's own id of the study (StudyInstanceUID, phantom seed/index)
    accession: str = ""
    n_series: int = 0
    report: bool = False       # a report was matched
    labels: str = ""           # where the labels came from ("report rules", "labels table", "phantom truth", "")
    n_findings: int = 0
    order: int = 0             # position in the build's sources (training sees studies in this order)
    facts: dict = field(default_factory=dict)  # what annotation needs from the headers / truth (resume)


DEFAULT_RATIOS = {"train": 0.7, "val": 0.15, "test": 0.15}


def split_group(patient_id: str, study_instance_uid: str) -> str:
    """The unit that never spans splits: the patient, or the study when the patient is unknown."""
    patient = (patient_id or "").strip()
    return f"patient:{patient}" if patient else f"study:{study_instance_uid}"


def split_of_group(group: str, seed: int = 0, ratios: dict[str, float] = DEFAULT_RATIOS) -> str:
    """The platform's rule (backend/training/datasets.split_of): sha256(seed, group) against cumulative
    ratios, so a study lands in the same split here as in the platform's dataset versions."""
    u = int.from_bytes(hashlib.sha256(f"spineagent-split\x00{seed}\x00{group}".encode()).digest()[:8], "big") / 2**64
    edge = 0.0
    for split in SPLITS:
        edge += ratios[split]
        if u < edge:
            return split
    return SPLITS[-1]


def is_synthetic_header(ds) -> bool:
    """A phantom says so (spine_phantom writes PHANTOM- patient ids and SYNTHETIC in its descriptions)."""
    patient = str(ds.get("PatientID", "") or "").upper()
    words = " ".join(str(ds.get(k, "") or "") for k in ("StudyDescription", "ImageComments", "PatientComments")).upper()
    return patient.startswith("PHANTOM-") or "SYNTHETIC" in words


def leaked_patients(entries) -> dict[str, list[str]]:
    """{patient: splits} for every patient whose studies sit in more than one split."""
    splits = defaultdict(set)
    for e in entries:
        splits[e.patient_id].add(e.split)
    return {p: sorted(s) for p, s in splits.items() if len(s) > 1}


def check_no_leak(entries) -> None:
    leaks = leaked_patients(entries)
    if leaks:
        shown = "; ".join(f"{p}: {', '.join(s)}" for p, s in sorted(leaks.items())[:5])
        raise DatasetError(f"{len(leaks)} patient(s) have studies in more than one split ({shown}); "
                           "a patient's studies must share one split (fix the split column or drop it)")


def case_file(case_id: str) -> str:
    return f"{CASES}/{hashlib.sha256(case_id.encode()).hexdigest()[:24]}.npz"


def pseudonymous_id(study_instance_uid: str) -> str:
    """A study's case id in the dataset and in a bundle's retrieval index: not its UID (the UID stays in
    dataset.json at the site, as the study's key)."""
    return "study-" + hashlib.sha256(f"spinefm-case/{study_instance_uid}".encode()).hexdigest()[:16]


def annotation_file(file: str) -> str:
    return file[:-len(".npz")] + ".json"


ANNOTATION_KEYS = ("report", "labels", "findings", "split", "patient")


def describe(sources: list[dict], entries) -> tuple[bool, str]:
    """(synthetic_training, data description) from what the studies are."""
    n = len(entries)
    n_syn = sum(1 for e in entries if e.synthetic)
    kinds = sorted({s["kind"] for s in sources if s.get("kind") in ("phantom", "dicom-folder", "dicomweb", "rsna-2024", "spider")})
    if n and n_syn == n:
        return True, f"SYNTHETIC phantoms ({n} studies; sources: {', '.join(kinds)})"
    if n_syn:
        return True, f"mixed: {n - n_syn} real and {n_syn} SYNTHETIC studies (sources: {', '.join(kinds)})"
    return False, f"real studies ({n}; sources: {', '.join(kinds)})"


class DatasetWriter:
    """Builds a dataset directory study by study; a rerun skips what the journal says is done."""

    def __init__(self, root: str | Path, preprocess: PreprocessConfig, resume: bool = True):
        self.root = Path(root)
        self.preprocess = preprocess
        self.done: dict[str, StudyEntry] = {}
        self.errors: dict[str, dict] = {}
        self.warnings: dict[str, list[dict]] = {}
        (self.root / CASES).mkdir(parents=True, exist_ok=True)
        journal = self.root / JOURNAL
        old = self.root / MANIFEST
        if old.exists():
            prev = json.loads(old.read_text())
            if prev.get("preprocess") and cache_key(PreprocessConfig.from_dict(prev["preprocess"])) != cache_key(preprocess):
                raise DatasetError(f"{self.root} holds a dataset preprocessed with {prev['preprocess']}; "
                                   "build into another directory for another image size")
        if resume and journal.exists():
            for line in journal.read_text().splitlines():
                try:
                    item = json.loads(line)
                except ValueError:
                    continue  # a line cut by an interrupted build
                if "error" in item:
                    self.errors[item["key"]] = item
                elif "warning" not in item:
                    entry = StudyEntry(**item)
                    if (self.root / entry.file).exists():
                        self.done[entry.key] = entry
                        self.errors.pop(entry.key, None)
        elif journal.exists():
            journal.unlink()

    def has(self, key: str) -> bool:
        return key in self.done

    def _log(self, item: dict) -> None:
        with open(self.root / JOURNAL, "a") as f:
            f.write(json.dumps(item) + "\n")

    def save_pixels(self, rec: CaseRecord) -> str:
        """Cache one study's preprocessed record (before annotation); returns its file."""
        file = case_file(rec.case_id)
        save_record(rec, self.root / file)
        return file

    def bare(self, key: str) -> CaseRecord:
        return load_record(self.root / self.done[key].file)

    def add(self, rec: CaseRecord, entry: StudyEntry) -> None:
        """Record a study's annotation (its json beside the cached pixels) and journal the entry if it changed."""
        entry.file = case_file(rec.case_id)
        path = self.root / annotation_file(entry.file)
        text = json.dumps({k: getattr(rec, k) for k in ANNOTATION_KEYS})
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        old = self.done.get(entry.key)
        self.done[entry.key] = entry
        self.errors.pop(entry.key, None)
        if old is None or asdict(old) != asdict(entry):
            self._log(asdict(entry))

    def warn(self, key: str, source: str, reason: str) -> None:
        """A study kept in the dataset with a problem (no report matched, a label outside the schema);
        recomputed with the annotation on every build, so not journalled."""
        self.warnings.setdefault(key, []).append({"key": key, "source": source, "warning": reason})

    def clear_warnings(self, key: str) -> None:
        self.warnings.pop(key, None)

    def error(self, key: str, source: str, reason: str, **extra) -> None:
        item = {"key": key, "source": source, "error": reason, **extra}
        self.errors[key] = item
        self.done.pop(key, None)  # not in this build's dataset (a cached study stays cached for the next run)
        self._log(item)

    def finish(self, sources: list[dict], notes: list[dict] | None = None) -> dict:
        """Check the splits, write dataset.json and errors.json; returns the manifest."""
        entries = sorted(self.done.values(), key=lambda e: e.order)
        check_no_leak(entries)
        ids = [e.case_id for e in entries]
        if len(set(ids)) != len(ids):
            raise DatasetError("two studies share a case id")
        synthetic, description = describe(sources, entries)
        warnings = [w for e in entries for w in self.warnings.get(e.key, [])] + list(notes or [])
        errors = sorted(self.errors.values(), key=lambda e: e["key"]) + warnings
        manifest = {
            "format": FORMAT, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "preprocess": self.preprocess.to_dict(), "sources": sources,
            "synthetic": synthetic, "description": description,
            "counts": {"studies": len(entries), **{s: sum(e.split == s for e in entries) for s in SPLITS},
                       "patients": len({e.patient_id for e in entries}),
                       "synthetic": sum(e.synthetic for e in entries), "with_report": sum(e.report for e in entries),
                       "with_labels": sum(bool(e.labels) for e in entries),
                       "failed": len(self.errors), "unreadable_files": sum("error" in n for n in notes or []),
                       "warnings": sum("warning" in w for w in warnings)},
            "studies": [asdict(e) for e in entries],
        }
        (self.root / ERRORS).write_text(json.dumps(errors, indent=1))
        (self.root / MANIFEST).write_text(json.dumps(manifest, indent=1))
        return manifest


class Dataset:
    """An opened dataset directory: its record of sources and the cases of chosen splits."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        path = self.root / MANIFEST
        if not path.is_file():
            raise DatasetError(f"{self.root} is not a dataset (no {MANIFEST}; build one with `spinefm dataset build`)")
        try:
            self.manifest = json.loads(path.read_text())
        except ValueError as exc:
            raise DatasetError(f"{path}: not JSON ({exc})") from None
        if self.manifest.get("format") != FORMAT:
            raise DatasetError(f"{path}: format {self.manifest.get('format')!r}, expected {FORMAT!r}")
        self.entries = [StudyEntry(**e) for e in self.manifest["studies"]]
        check_no_leak(self.entries)
        self.preprocess = PreprocessConfig.from_dict(self.manifest["preprocess"])

    @property
    def synthetic(self) -> bool:
        return bool(self.manifest["synthetic"])

    @property
    def description(self) -> str:
        return str(self.manifest["description"])

    @property
    def sources(self) -> list[dict]:
        return list(self.manifest["sources"])

    def summary(self) -> dict:
        """What a bundle manifest records about its training data."""
        return {"path": str(self.root.resolve()), "description": self.description, "synthetic": self.synthetic,
                "sources": self.sources, "counts": self.manifest["counts"], "created": self.manifest["created"]}

    def check_preprocess(self, cfg: PreprocessConfig) -> None:
        if cache_key(cfg) != cache_key(self.preprocess):
            raise DatasetError(f"{self.root} was preprocessed at {cache_key(self.preprocess)} but the model wants "
                               f"{cache_key(cfg)}; rebuild the dataset with the model's --img-size "
                               f"(spinefm dataset build --img-size {cfg.crop}) or train at "
                               f"--img-size {self.preprocess.crop}")

    def cases(self, splits=None, cfg: PreprocessConfig | None = None) -> list[CaseRecord]:
        """Case records of the given splits (None or "all": every study), in case-id order."""
        if cfg is not None:
            self.check_preprocess(cfg)
        wanted = None if splits is None else set(splits)
        out = []
        for e in self.entries:
            if wanted is None or "all" in wanted or e.split in wanted:
                rec = load_record(self.root / e.file)
                ann = self.root / annotation_file(e.file)
                if ann.exists():
                    for k, v in json.loads(ann.read_text()).items():
                        setattr(rec, k, v)
                rec.split, rec.patient = e.split, e.patient_id
                out.append(rec)
        return out


def open_dataset(root: str | Path) -> Dataset:
    return Dataset(root)
