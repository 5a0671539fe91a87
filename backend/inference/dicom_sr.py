"""An InferenceResult as a DICOM Comprehensive 3D SR (TID 1500 Measurement Report) for other PACS.

One planar ROI group per box: the box as a closed 5-point POLYLINE on the referenced
image, the finding as a local code (99SPINEAGENT, condition key), the spinal level as
the finding site (SNOMED where a code exists), the probability as a numeric measurement,
the model's call as the presence evaluation (Present, Equivocal for a hedged call, Absent;
none for a condition its bundle did not validate). Present and possible findings without
a box become image-free groups. UIDs derive from the study and
result id, so building twice gives the same SOPInstanceUID (STOW redelivery is a no-op).
The SR says it is AI-generated and, for our phantom models, synthetic-trained.
"""

from __future__ import annotations

import logging
import uuid

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes

from spinefm.conditions import get_condition
from spinefm.results import AnalysisResult, Call

from .analysis import analysis_of, prediction_for

log = logging.getLogger(__name__)

SCHEME = "99SPINEAGENT"
CODING_SCHEME = {"designator": SCHEME, "name": "SpineAgent local codes", "responsible": "SpineAgent project"}
SERIES_NUMBER = 990
_NAMESPACE = uuid.UUID("5b1c3c4e-9a57-4f0e-9d43-6f2b1e0d7a11")
_ORDINALS = ("First", "Second", "Third", "Fourth", "Fifth", "Sixth", "Seventh", "Eighth", "Ninth", "Tenth",
             "Eleventh", "Twelfth")
_REGIONS = {"C": "Cervical", "T": "Thoracic", "L": "Lumbar"}

PROBABILITY = codes.DCM.Probability
BOX_SCORE = hd.sr.CodedConcept("box_score", SCHEME, "Localization confidence")
PRESENCE = hd.sr.CodedConcept("presence", SCHEME, "AI finding presence")
# The model's call per condition (spinefm.results STATUSES); "not_assessed" carries no presence claim.
PRESENCE_CODES = {Call.PRESENT: codes.SCT.Present, Call.POSSIBLE: codes.SCT.Equivocal, Call.ABSENT: codes.SCT.Absent}
DRAFT_TEXT = hd.sr.CodedConcept("draft_text", SCHEME, "AI draft report text")
DRAFTER = hd.sr.CodedConcept("drafter", SCHEME, "AI draft written by")
NOTICE = hd.sr.CodedConcept("ai_notice", SCHEME, "AI-generated content notice")
PROCEDURE = hd.sr.CodedConcept("mr_spine", SCHEME, "MRI of spine")
NO_UNITS = hd.sr.CodedConcept("1", "UCUM", "no units")


def derived_uid(*parts) -> str:
    """A stable 2.25 UID from the given parts (same parts, same UID)."""
    return "2.25." + str(uuid.uuid5(_NAMESPACE, "/".join(str(p) for p in parts)).int)


def sr_uids(result) -> tuple[str, str]:
    """(SeriesInstanceUID, SOPInstanceUID) of the SR for this result."""
    study_uid = result.study.study_instance_uid
    return derived_uid(study_uid, result.pk, "sr-series"), derived_uid(study_uid, result.pk, "sr-instance")


def finding_code(condition: str) -> hd.sr.CodedConcept:
    try:
        meaning = get_condition(condition).display_name
    except KeyError:
        meaning = condition.replace("_", " ")
    return hd.sr.CodedConcept(condition, SCHEME, meaning)


def level_code(level: str) -> hd.sr.CodedConcept:
    """SNOMED vertebra or disc (the disc below the upper vertebra) where pydicom knows it, else a local code."""
    head = level.split("-")[0]
    name = None
    if "-" not in level:
        name = f"{head}Vertebra"
    elif head[:1] in _REGIONS and head[1:].isdigit() and 1 <= int(head[1:]) <= len(_ORDINALS):
        name = f"IntervertebralDiscStructureOf{_ORDINALS[int(head[1:]) - 1]}{_REGIONS[head[0]]}Vertebra"
    if name and name in codes.SCT.dir():
        code = getattr(codes.SCT, name)
        meaning = code.meaning.removesuffix(" (body structure)")[:64]
        return hd.sr.CodedConcept(code.value, code.scheme_designator, meaning)
    return hd.sr.CodedConcept(level, SCHEME, f"Spinal level {level}")


def _polyline(box, rows, columns) -> np.ndarray:
    """Closed rectangle (5 points, column/row) in SR image coordinates; x1/y1 exclusive = the far edge."""
    x0, y0, x1, y1 = (float(v) for v in box)
    if columns:
        x0, x1 = np.clip([x0, x1], 0, columns)
    if rows:
        y0, y1 = np.clip([y0, y1], 0, rows)
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]], dtype=float)


def _presence(call: str | None) -> list:
    """The qualitative evaluation a group carries: what the model called, nothing where it made no call
    (a box drawn for a condition its bundle did not validate is a location, not a finding)."""
    code = PRESENCE_CODES.get(call)
    return [hd.sr.QualitativeEvaluation(PRESENCE, code)] if code is not None else []


def _groups(analysis: AnalysisResult, headers: dict[str, pydicom.Dataset], result_key: str, algorithm):
    groups, referenced, boxed = [], {}, set()
    for i, box in enumerate(analysis.boxes):
        ref = headers.get(box.sop_instance_uid)
        if ref is None:
            log.warning("SR: box %d refers to %s, not in the study; left out", i, box.sop_instance_uid)
            continue
        referenced[str(ref.SOPInstanceUID)] = ref
        condition, level = box.condition, box.level
        boxed.add((condition, level))
        measurements = [hd.sr.Measurement(name=BOX_SCORE, value=float(box.score), unit=NO_UNITS,
                                          algorithm_id=algorithm)]
        prediction = prediction_for(analysis, condition, level)
        if prediction is not None:
            measurements.insert(0, hd.sr.Measurement(name=PROBABILITY, value=float(prediction.probability),
                                                     unit=NO_UNITS, algorithm_id=algorithm))
        region = hd.sr.ImageRegion(
            graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
            graphic_data=_polyline(box.box, ref.get("Rows"), ref.get("Columns")),
            source_image=hd.sr.SourceImageForRegion(str(ref.SOPClassUID), str(ref.SOPInstanceUID)))
        groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(
                uid=derived_uid(result_key, "box", i), identifier=f"{condition} {level or ''} box {i}".strip()),
            referenced_region=region, finding_type=finding_code(condition), algorithm_id=algorithm,
            finding_sites=[hd.sr.FindingSite(level_code(level))] if level else None,
            measurements=measurements,
            qualitative_evaluations=_presence(prediction.call if prediction else None) or None))
    for i, c in enumerate(analysis.conditions):
        key, level = c.condition, c.level
        if c.call not in (Call.PRESENT, Call.POSSIBLE) or (key, level) in boxed:
            continue
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(
                uid=derived_uid(result_key, "condition", i), identifier=f"{key} {level or ''}".strip()),
            finding_type=finding_code(key), algorithm_id=algorithm,
            finding_sites=[hd.sr.FindingSite(level_code(level))] if level else None,
            measurements=[hd.sr.Measurement(name=PROBABILITY, value=float(c.probability), unit=NO_UNITS,
                                            algorithm_id=algorithm)],
            qualitative_evaluations=_presence(c.call)))
    return groups, list(referenced.values())


# Type 2 attributes of the Patient and General Study modules that the SR copies from its evidence. Real
# exports often leave them out (de-identified studies, some scanners); present-but-empty is what DICOM asks.
TYPE2_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                "ReferringPhysicianName", "StudyID", "AccessionNumber")


def _evidence_header(ds: pydicom.Dataset) -> pydicom.Dataset:
    """A copy of an evidence header with every Type 2 attribute the SR copies present (empty if absent)."""
    header = pydicom.Dataset()
    header.update(ds)
    for keyword in TYPE2_COPIED:
        if keyword not in header or header[keyword].value is None:
            setattr(header, keyword, "")
    return header


def series_description(synthetic: bool) -> str:
    return "SpineAgent AI results" + (" (synthetic-trained model)" if synthetic else "")


def build_sr(result, headers: list[pydicom.Dataset]) -> hd.sr.Comprehensive3DSR | None:
    """The SR for ``result`` given the study's instance headers (Orthanc metadata); None if nothing to report."""
    analysis = analysis_of(result)
    synthetic = bool(analysis.synthetic_training)
    model_name, model_version = str(analysis.model_name or "unknown"), str(analysis.model_version or "?")
    by_uid = {str(ds.SOPInstanceUID): ds for ds in headers if str(ds.get("Modality", "")) != "SR"}
    algorithm = hd.sr.AlgorithmIdentification(name=model_name[:64], version=model_version[:64])
    series_uid, sop_uid = sr_uids(result)
    groups, referenced = _groups(analysis, by_uid, f"{result.study.study_instance_uid}/{result.pk}", algorithm)
    if not groups:
        return None
    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=derived_uid("device", model_name, model_version), name="SpineAgent",
            manufacturer_name="SpineAgent (open source)", model_name=f"{model_name} {model_version}"[:64]))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=device),
        procedure_reported=PROCEDURE, imaging_measurements=groups)
    notice = ("AI-generated by SpineAgent; not reviewed by a radiologist."
              + (" The model was trained on synthetic phantoms only: not for clinical use." if synthetic else ""))
    report[0].ContentSequence.append(hd.sr.TextContentItem(
        name=NOTICE, value=notice, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS))
    if (draft := (analysis.draft_text or "").strip()):
        report[0].ContentSequence.append(hd.sr.TextContentItem(
            name=DRAFT_TEXT, value=draft, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS))
        drafter = str(analysis.draft_backend or "unknown")
        if analysis.draft_fallback:
            drafter += f"; fallback because {analysis.draft_fallback}"
        report[0].ContentSequence.append(hd.sr.TextContentItem(
            name=DRAFTER, value=drafter[:1024], relationship_type=hd.sr.RelationshipTypeValues.CONTAINS))
    # Box-free results still need one evidence image (the SR's study and patient come from it).
    evidence = [_evidence_header(ds) for ds in (referenced or list(by_uid.values())[:1])]
    if not evidence:
        return None
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence, content=report[0], series_instance_uid=series_uid, series_number=SERIES_NUMBER,
        sop_instance_uid=sop_uid, instance_number=1, manufacturer="SpineAgent", is_complete=True,
        is_final=False, is_verified=False)
    sr.SeriesDescription = series_description(synthetic)
    coding = pydicom.Dataset()
    coding.CodingSchemeDesignator = SCHEME
    coding.CodingSchemeName = CODING_SCHEME["name"]
    coding.CodingSchemeResponsibleOrganization = CODING_SCHEME["responsible"]
    schemes = list(sr.get("CodingSchemeIdentificationSequence", []))
    sr.CodingSchemeIdentificationSequence = [*schemes, coding]
    return sr


def to_part10(sr: pydicom.Dataset) -> bytes:
    import io

    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, sr, enforce_file_format=True)
    return buffer.getvalue()
