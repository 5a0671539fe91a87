"""Optional de-identification of API uploads before anything is stored (``SPINEAGENT_DEIDENTIFY_ON_INGEST``).

dicognito 0.19 (checked with pydicom 3.0.2) applies the DICOM PS3.15 Basic
Application Level Confidentiality Profile to the header: names, IDs, birth
date, addresses, institution, accession number replaced by plausible fakes;
dates and times shifted per patient; every instance UID (study, series, SOP,
frame of reference, the file meta's) replaced; PatientIdentityRemoved=YES and
DeidentificationMethod set. We also drop private tags (the profile removes
them; dicognito keeps unknown ones).

One Anonymizer serves a whole upload, keyed by ``SPINEAGENT_DEIDENTIFY_KEY``
(default: derived from ``DJANGO_SECRET_KEY``): the same original UID always
becomes the same new UID, so the series of one study stay one study, and a
re-upload of the same files is idempotent like any other upload. Whoever holds
the key and the originals can recompute the mapping; the stored data alone
does not reveal it.

Not covered (see docs/security.md): pixels (an image whose header says
BurnedInAnnotation=YES is refused rather than stored), free-text descriptions
(series and study descriptions are kept: sequence typing reads them), and
studies that reach Orthanc directly by C-STORE (only API uploads pass here).
"""

from __future__ import annotations

import hashlib
import hmac

import pydicom
from dicognito.anonymizer import Anonymizer
from django.conf import settings

from .dicom_files import FileProblem, InvalidUpload, UploadedInstance

METHOD = "SPINEAGENT INGEST: PS3.15 BASIC PROFILE (DICOGNITO)"  # LO, at most 64 characters


def enabled() -> bool:
    return bool(settings.SPINEAGENT_DEIDENTIFY_ON_INGEST)


def _seed() -> str:
    key = settings.SPINEAGENT_DEIDENTIFY_KEY or ""
    if key:
        return key
    return hmac.new(settings.SECRET_KEY.encode(), b"spineagent-deidentify", hashlib.sha256).hexdigest()


def deidentify_instances(instances: list[UploadedInstance]) -> list[UploadedInstance]:
    """The same instances, de-identified: a new Part-10 file beside each and a matching header-only dataset."""
    anonymizer = Anonymizer(seed=_seed())
    problems, out = [], []
    for instance in instances:
        ds = pydicom.dcmread(instance.path)
        if str(ds.get("BurnedInAnnotation", "")).strip().upper() == "YES":
            problems.append(FileProblem(instance.name, "burned-in annotation: pixels cannot be de-identified"))
            continue
        ds.remove_private_tags()
        anonymizer.anonymize(ds)
        value = ds.get("DeidentificationMethod") or []
        methods = [value] if isinstance(value, str) else [str(m) for m in value]
        if METHOD not in methods:
            ds.DeidentificationMethod = [*methods, METHOD] if methods else METHOD
        path = instance.path.with_name(instance.path.stem + ".deid.dcm")
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
        if "PixelData" in ds:
            del ds.PixelData  # the index reads headers only, as read_instance leaves them
        out.append(UploadedInstance(name=instance.name, path=path, dataset=ds))
    if problems:
        raise InvalidUpload(problems)
    return out


def maybe_deidentify(instances: list[UploadedInstance]) -> list[UploadedInstance]:
    """The ingest hook: de-identify when the setting is on, else return the instances untouched."""
    return deidentify_instances(instances) if enabled() else instances
