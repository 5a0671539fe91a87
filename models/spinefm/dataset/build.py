"""``spinefm dataset build``: studies from any source + a site's tables -> a dataset directory.

    spinefm dataset build --out DS --dicom /archive --reports reports.csv [--labels-csv labels.csv]
                          [--findings-csv boxes.csv] [--img-size 112]
    spinefm dataset build --out DS --dicomweb http://orthanc:8042/dicom-web --user U --password-env ORTHANC_PASSWORD
    spinefm dataset build --out DS --phantom 240 --phantom-seed 0
    spinefm dataset build --out DS --rsna /data/rsna-2024     (or --spider /data/spider: public layouts,
                                                               spinefm.dataset.public)
    spinefm dataset show DS

Every study goes the way inference goes (spinefm.intake: MR, spine, the series the bundle
reads; spinefm.data.record_from_study_input: the same sequence typing and preprocessing)
and is cached as it finishes; a rerun resumes. A study that fails is listed with its reason
in errors.json and the build goes on; the counts are printed at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from ..data import CaseRecord, record_from_study_input
from ..intake import check_supported, series_to_fetch
from ..model import nano_config
from ..results import UnsupportedStudy
from ..study import StudyInput
from . import (DEFAULT_RATIOS, SPLITS, Dataset, DatasetError, DatasetWriter, StudyEntry, is_synthetic_header,
               pseudonymous_id, split_group, split_of_group)
from . import tables as T
from .sources import StudySource, dicomweb_client, dicomweb_studies, phantom_studies, scan_folder

log = logging.getLogger("spinefm.dataset")


class StudyFailed(Exception):
    """One study cannot enter the dataset; the message is the reason listed in errors.json."""


def study_record(datasets: list, cfg, case_id: str = "") -> CaseRecord:
    """A study's datasets -> CaseRecord without labels, by inference's rules; StudyFailed says why not."""
    if not datasets:
        raise StudyFailed("no instances")
    try:
        check_supported(datasets)
    except UnsupportedStudy as exc:
        raise StudyFailed(f"no usable series: {exc}") from None
    keep = series_to_fetch(datasets)
    study = StudyInput.from_datasets([d for d in datasets if str(d.SeriesInstanceUID) in keep])
    try:
        rec = record_from_study_input(study, cfg)
    except Exception as exc:  # pixel data that does not decode, a broken series
        raise StudyFailed(f"unreadable pixels: {type(exc).__name__}: {exc}") from None
    if not rec.series:
        raise StudyFailed("no usable series: no sagittal T1/T2/STIR/Dixon/other MR series after typing")
    rec.case_id = case_id or pseudonymous_id(study.study_instance_uid)
    rec.vendor = str(datasets[0].get("Manufacturer", "") or "")
    return rec


class Tables:
    """The site's tables for one build, matched per study."""

    def __init__(self, args):
        self.problems: list[str] = []
        self.reports = T.read_reports(args.reports) if args.reports else None
        self.labels = T.read_labels(args.labels_csv) if args.labels_csv else None
        self.platform = None
        if args.platform_export:
            self.platform = _platform_table(args.platform_export)
        self.findings_uid, self.findings_acc = {}, {}
        if args.findings_csv:
            self.findings_uid, self.findings_acc, problems = T.read_findings(args.findings_csv)
            self.problems += problems
        for t in (self.reports, self.labels, self.platform):
            if t is not None:
                self.problems += t.problems
        self.labeler = report_labeler(args)
        self.rules = self.labeler is not None

    def unmatched(self) -> list[dict]:
        out = []
        for name, t in (("report", self.reports), ("labels", self.labels), ("platform export", self.platform)):
            for row in (t.unmatched() if t is not None else []):
                out.append({"key": row["_uid"] or row["_accession"], "source": t.path, "warning":
                            f"{name} row {row['_row']} matches no study of the build"})
        return out

    def rule_labels(self, text: str) -> tuple[dict[str, int], str]:
        """Labels of a report text by the build's labeler, and where they came from."""
        out = self.labeler.label_set(text)
        # the LLM labeler falls back to the rules itself when it cannot trust the answer: say which answered
        source = f", {out.source}" if self.labeler.kind == "llm" else ""
        return self.labeler.labels_of(out), f"report ({self.labeler.name}{source})"


def report_labeler(args):
    """The labeler of report texts: the LLM one with --llm-url, else the rules; None with --no-label-reports.
    Found by name among the installed labelers (spinefm.report.labels), never imported: without one the build
    refuses --llm-url and otherwise leaves report-only studies unlabelled, saying so."""
    from ..report.labels import LabelerUnavailable, load_labeler

    if args.llm_url:
        key = os.environ.get(args.llm_api_key_env, "") if args.llm_api_key_env else None
        try:
            return load_labeler("llm", base_url=args.llm_url, model=args.llm_model, api_key=key or None)
        except LabelerUnavailable as exc:
            raise SystemExit(f"--llm-url: {exc}") from None
    if not args.label_reports:
        return None
    try:
        return load_labeler("rules")
    except LabelerUnavailable as exc:
        log.warning("reports are not labelled: %s", exc)
        return None


def _platform_table(path) -> T.Table:
    """A dataset version exported by the platform (export.json): verified labels (per condition and per level),
    patient and split per study."""
    table = T.Table(str(path))
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        table.problems.append(f"{path}: unreadable ({exc})")
        return table
    for i, item in enumerate(doc.get("items", []), start=1):
        uid = str(item.get("study_instance_uid", ""))
        if not uid:
            table.problems.append(f"{path} item {i}: no study_instance_uid")
            continue
        row = {T._norm(k): str(v) for k, v in (item.get("labels") or {}).items()}
        row.update({"_row": i, "_uid": uid, "_accession": "", "_split": item.get("split", ""),
                    "patientid": str(item.get("patient_id", "")), "_synthetic": bool(item.get("synthetic")),
                    "_level_labels": item.get("level_labels") or {}})
        table.by_uid.setdefault(uid, row)
    return table


def facts_of(datasets: list, src: StudySource, truth: dict) -> dict:
    """What annotation needs from a study's headers and truth, kept so a rerun can re-annotate without them."""
    first = datasets[0]
    return {"study_instance_uid": str(first.get("StudyInstanceUID", "")) or src.study_instance_uid,
            "accession": src.accession or str(first.get("AccessionNumber", "") or ""),
            "patient": src.patient_id or str(first.get("PatientID", "") or ""),
            "synthetic": bool(truth.get("synthetic")) or is_synthetic_header(first),
            "truth_split": truth.get("split", "") if truth else "", "phantom": bool(truth),
            # a public set's loader says where its labels came from and what it could not use
            "truth_labels_from": truth.get("labels_from", "phantom truth") if truth else "",
            "truth_warnings": list(truth.get("warnings", [])) if truth else []}


def apply_truth(rec: CaseRecord, truth: dict) -> None:
    """The generator's truth as the record's report, labels and findings (cached with the pixels)."""
    report = truth.get("report", {})
    rec.report = report.get("text", "") if isinstance(report, dict) else str(report)
    rec.labels = {k: int(v) for k, v in truth.get("labels", {}).items()}
    rec.findings = T.attach_slice_indices(list(truth.get("findings", [])), rec.series)


def annotate(rec: CaseRecord, src: StudySource, facts: dict, tables: Tables, args) -> tuple[StudyEntry, list[str]]:
    """Report, labels, findings, patient and split of one study (``rec`` as cached: phantoms carry their
    truth, other studies nothing yet); returns its entry and warnings."""
    warnings = []
    uid, accession, patient = facts["study_instance_uid"], facts["accession"], facts["patient"]
    truth = facts.get("phantom", False)
    if not truth:
        rec.report, rec.labels, rec.findings = "", {}, []
    split, labels_from = "", ""
    report_row = tables.reports.match(uid, accession) if tables.reports else None
    labels_row = tables.labels.match(uid, accession) if tables.labels else None
    platform_row = tables.platform.match(uid, accession) if tables.platform else None
    if truth:  # phantom truth: what the generator drew
        split, labels_from = facts.get("truth_split", ""), facts.get("truth_labels_from") or "phantom truth"
        warnings += list(facts.get("truth_warnings", []))
    if report_row is not None:
        rec.report = report_row["_text"] or rec.report
        split = report_row["_split"] or split
        patient = report_row.get("patientid") or patient
        if not report_row["_text"]:
            warnings.append("the matched report row has no text")
    elif tables.reports is not None and not truth:
        warnings.append(f"no report matches StudyInstanceUID {uid}" + (f" or AccessionNumber {accession}" if accession else ""))
    for row, name in ((platform_row, "platform export"), (labels_row, "labels table")):
        if row is None:
            continue
        labels, bad = T.labels_of(row)
        if bad:
            warnings.append(f"{name}: values outside the schema (1, 0, -1) dropped: {', '.join(bad)}")
        if labels:
            rec.labels, labels_from = labels, name
        split = row.get("_split") or split
        patient = row.get("patientid") or patient
    if not labels_from and rec.report and tables.rules:
        rec.labels, labels_from = tables.rule_labels(rec.report)
    if not labels_from:
        warnings.append("no labels (no labels row, no report to label)")
    found = tables.findings_uid.get(uid) or (tables.findings_acc.get(accession) if accession else None)
    if found:
        rec.findings = T.attach_slice_indices([json.loads(json.dumps(f)) for f in found], rec.series)
        for f in rec.findings:
            if rec.labels.get(f["condition"]) == 0:
                warnings.append(f"finding {f['condition']} at {f['level'] or '?'} but the labels say absent")
    if platform_row is not None:  # verified present levels: level-agent targets (tables.verified_level_findings)
        rec.findings = rec.findings + T.verified_level_findings(platform_row["_level_labels"], rec.findings)
    group = split_group(patient, uid)
    split = split or split_of_group(group, args.split_seed, args.ratios)
    synthetic = facts["synthetic"] or bool(platform_row and platform_row.get("_synthetic"))
    entry = StudyEntry(rec.case_id, "", patient or group, split, src.source, synthetic, src.key, accession,
                       len(rec.series), bool(rec.report), labels_from, len(rec.findings), facts=facts)
    rec.split, rec.patient = split, patient or group
    return entry, warnings


def gather_sources(args) -> tuple[list[StudySource], list[dict], list[dict]]:
    """(studies, file errors, source records) of every --dicom, --dicomweb and --phantom source."""
    studies, errors, records = [], [], []
    for path in (args.reports, args.labels_csv, args.findings_csv, args.platform_export):
        if path and not Path(path).is_file():
            raise SystemExit(f"dataset build: {path} is not a file")
    for folder in args.dicom or []:
        if not Path(folder).is_dir():
            raise SystemExit(f"dataset build: --dicom {folder} is not a directory")
        found, errs = scan_folder(folder, progress=not args.no_progress)
        studies += found
        errors += errs
        records.append({"kind": "dicom-folder", "path": str(Path(folder).resolve()), "studies": len(found),
                        "unreadable_files": len(errs)})
    if args.dicomweb:
        password = os.environ.get(args.password_env, "") if args.password_env else None
        token = os.environ.get(args.token_env, "") if args.token_env else None
        client = dicomweb_client(args.dicomweb, args.user, password, token)
        try:
            found = dicomweb_studies(client, f"dicomweb:{args.dicomweb}", args.study or None)
        except Exception as exc:  # the server as a whole: unreachable, refused credentials
            raise SystemExit(f"dataset build: DICOMweb {args.dicomweb}: {type(exc).__name__}: {exc}") from None
        studies += found
        records.append({"kind": "dicomweb", "url": args.dicomweb, "studies": len(found)})
    if getattr(args, "rsna", None) or getattr(args, "spider", None):
        from .public import gather_public

        found, notes, public = gather_public(args)
        studies += found
        errors += notes
        records += public
    if args.phantom:
        config = json.loads(args.phantom_config) if args.phantom_config else None
        import spine_phantom

        studies += phantom_studies(args.phantom_seed, range(args.phantom_start, args.phantom_start + args.phantom),
                                   config)
        records.append({"kind": "phantom", "generator": f"spine_phantom {spine_phantom.__version__}",
                        "seed": args.phantom_seed, "indices": [args.phantom_start, args.phantom_start + args.phantom],
                        "config": config, "synthetic": True})
    for name, path in (("reports", args.reports), ("labels", args.labels_csv), ("findings", args.findings_csv),
                       ("platform-export", args.platform_export)):
        if path:
            records.append({"kind": f"{name}-table", "path": str(Path(path).resolve())})
    if args.label_reports and args.reports:
        labeler = report_labeler(args)
        records.append({"kind": "report-labeler", "labeler": "none installed" if labeler is None else
                        f"{labeler.name} at {args.llm_url}" if args.llm_url else labeler.name})
    return studies, errors, records


def build(args) -> dict:
    cfg = nano_config(img_size=args.img_size).preprocess
    studies, file_errors, records = gather_sources(args)
    tables = Tables(args)
    writer = DatasetWriter(args.out, cfg, resume=not args.no_resume)
    seen, todo, duplicates = set(), [], []
    for s in studies:
        if s.key in seen:
            duplicates.append({"key": s.key, "source": s.source,
                               "warning": "the same study is in two sources; the first is kept"})
            continue
        seen.add(s.key)
        todo.append(s)
    it = todo
    if not args.no_progress:
        from tqdm import tqdm

        it = tqdm(todo, desc="studies", dynamic_ncols=True)
    for order, src in enumerate(it):
        if writer.has(src.key):  # cached: only the annotation is redone (the tables may have changed)
            rec, facts = writer.bare(src.key), writer.done[src.key].facts
        else:
            try:
                datasets, truth = src.load()
                rec = study_record(datasets, cfg, src.case_id)
                facts = facts_of(datasets, src, truth)
                if truth:
                    apply_truth(rec, truth)
                writer.save_pixels(rec)
            except StudyFailed as exc:
                writer.error(src.key, src.source, str(exc))
                continue
            except Exception as exc:  # a source that cannot deliver this study: listed, the build goes on
                writer.error(src.key, src.source, f"could not read the study: {type(exc).__name__}: {exc}")
                continue
        writer.clear_warnings(src.key)
        try:
            entry, warnings = annotate(rec, src, facts, tables, args)
        except Exception as exc:  # e.g. a labeler endpoint that fails for this report
            writer.error(src.key, src.source, f"could not label the study: {type(exc).__name__}: {exc}")
            continue
        entry.order = order
        writer.add(rec, entry)
        for w in warnings:
            writer.warn(src.key, src.source, w)
    notes = [dict(e) for e in file_errors]  # unreadable files (errors) and a public set's table problems (warnings)
    notes += [{"key": "", "source": "tables", "warning": p} for p in tables.problems] + tables.unmatched() + duplicates
    return writer.finish(records, notes)


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    b = sub.add_parser("build", help="build (or resume) a dataset directory from DICOM, DICOMweb or phantoms")
    b.add_argument("--out", required=True, help="dataset directory (created; an existing one is resumed)")
    b.add_argument("--dicom", action="append", help="folder of DICOM files, any nesting (repeatable)")
    b.add_argument("--dicomweb", default=None, help="DICOMweb root, e.g. http://orthanc:8042/dicom-web")
    b.add_argument("--user", default=None, help="DICOMweb HTTP basic user")
    b.add_argument("--password-env", default=None, help="environment variable holding the DICOMweb password")
    b.add_argument("--token-env", default=None, help="environment variable holding a DICOMweb bearer token")
    b.add_argument("--study", action="append", help="DICOMweb: only this StudyInstanceUID (repeatable)")
    b.add_argument("--rsna", action="append", help="RSNA 2024 Lumbar Spine folder as released (train.csv, "
                   "train_label_coordinates.csv, train_series_descriptions.csv, train_images/) (repeatable)")
    b.add_argument("--rsna-prefix", default="train", help="RSNA file prefix (train: train.csv, train_images/ ...)")
    b.add_argument("--spider", action="append", help="SPIDER folder as released (images/, masks/, overview.csv, "
                   "radiological_gradings.csv) (repeatable)")
    b.add_argument("--spider-sequences", default="t1,t2,t2_SPACE", help="SPIDER series to read (comma-separated)")
    b.add_argument("--phantom", type=int, default=0, help="add N spine_phantom studies (SYNTHETIC)")
    b.add_argument("--phantom-seed", type=int, default=0)
    b.add_argument("--phantom-start", type=int, default=0)
    b.add_argument("--phantom-config", default='{"include_axial": false, "acquisition": "varied"}',
                   help="spine_phantom.PhantomConfig JSON (default: as bundles >= 0.4.0 train)")
    b.add_argument("--reports", default=None, help="reports CSV/JSON keyed by StudyInstanceUID or AccessionNumber")
    b.add_argument("--labels-csv", default=None, help="labels CSV (one column per condition: 1/0/-1), e.g. verified")
    b.add_argument("--findings-csv", default=None, help="finding boxes / levels CSV (see spinefm.dataset.tables)")
    b.add_argument("--platform-export", default=None,
                   help="a dataset version exported by the platform (export.json): verified labels and splits")
    b.add_argument("--no-label-reports", dest="label_reports", action="store_false",
                   help="do not label report texts with spine_labels' rules where no labels row exists")
    b.add_argument("--llm-url", default=None,
                   help="label reports with spine_labels' LLM labeler at this OpenAI-compatible endpoint")
    b.add_argument("--llm-model", default=None, help="the LLM labeler's model name")
    b.add_argument("--llm-api-key-env", default=None, help="environment variable holding the endpoint's API key")
    b.add_argument("--img-size", type=int, default=112, help="preprocessed crop size (the model's --img-size)")
    b.add_argument("--split-seed", type=int, default=0, help="seed of the patient hash split (as the platform's)")
    b.add_argument("--ratios", type=json.loads, default=DEFAULT_RATIOS, help='JSON, e.g. {"train":0.8,"val":0.1,"test":0.1}')
    b.add_argument("--no-resume", action="store_true", help="rebuild every study")
    b.add_argument("--no-progress", action="store_true")
    s = sub.add_parser("show", help="print a dataset's sources, counts and errors")
    s.add_argument("path")


def _print_summary(manifest: dict, root: Path) -> None:
    c = manifest["counts"]
    print(f"{root}: {c['studies']} studies of {c['patients']} patients "
          f"(train {c['train']}, val {c['val']}, test {c['test']}); {c['with_report']} with a report, "
          f"{c['with_labels']} with labels, {c['synthetic']} synthetic; {c['failed']} studies failed, {c.get('unreadable_files', 0)} files unreadable, "
          f"{c['warnings']} warnings (see {root / 'errors.json'})")
    print(f"data: {manifest['description']}")


def run(args) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.action == "show":
        ds = Dataset(args.path)
        _print_summary(ds.manifest, ds.root)
        return 0
    if not (args.dicom or args.dicomweb or args.phantom or args.rsna or args.spider):
        raise SystemExit("dataset build needs a source: --dicom DIR, --dicomweb URL, --rsna DIR, --spider DIR "
                         "or --phantom N")
    if args.llm_url and not args.llm_model:
        raise SystemExit("--llm-url needs --llm-model")
    if set(args.ratios) != set(SPLITS) or abs(sum(args.ratios.values()) - 1) > 1e-6:
        raise SystemExit(f"--ratios must give {', '.join(SPLITS)} summing to 1")
    try:
        manifest = build(args)
    except DatasetError as exc:
        print(f"spinefm dataset build: refused: {exc}", file=sys.stderr)
        return 2
    _print_summary(manifest, Path(args.out))
    return 0
