"""Similar cases from the site's own signed reports (issue 20, item 4).

The bank is built from real signed reports and the case embeddings the worker stored, with the shipped
bundle's real text tower; the worker's real runner then serves it for a phantom study fetched from the real
Orthanc. Identifiers never reach the bank; a site that has not allowed it keeps the bundle's cases.
"""

from __future__ import annotations

import json
import re

import pytest
import redis
import torch
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from backend.audit.models import AuditEvent
from backend.inference import analyzers, registry, runner
from backend.inference.models import InferenceJob, InferenceResult
from backend.reports.models import Report, ReportVersion
from backend.studies.models import Study
from backend.training import site_index
from backend.errors import Conflict
from spinefm import site_index as bank_format

pytestmark = [pytest.mark.django_db]

PATIENT = dict(patient_id="MRN-77321", patient_name="DOE^JANE^Q", accession_number="ACC99812",
               patient_birth_date="19610405")


def signed_study(i: int, model, text: str, embedding: list | None, **ids) -> Study:
    study = Study.objects.create(study_instance_uid=f"1.2.826.0.1.3680043.8.498.{9000 + i}", **(ids or {}))
    if embedding is not None:
        job = InferenceJob.objects.create(study=study, model_version=model, status=InferenceJob.SUCCEEDED)
        InferenceResult.objects.create(job=job, study=study, model_version=model, data={"embedding": embedding})
    report = Report.objects.create(study=study, status=Report.SIGNED, signed_number=1, current_number=1,
                                   signed_at=timezone.now(), radpeer_score="1")
    ReportVersion.objects.create(report=report, number=0, text="AI draft", source=ReportVersion.AI)
    ReportVersion.objects.create(report=report, number=1, text=text, source=ReportVersion.RADIOLOGIST)
    return study


def test_scrub_removes_the_studys_identifiers_dates_and_uids_and_keeps_the_findings():
    study = Study(**PATIENT)
    text = ("Patient Jane Doe (MRN-77321), accession ACC99812, born 19610405, compared with 2024-03-02 and "
            "study 1.2.840.113619.2.55.3 of 03.02.2024. L4-L5: disc herniation with moderate canal stenosis. "
            "Dr Janet reviewed.")
    out = site_index.scrub(text, study)
    for identifier in ("Jane", "Doe", "MRN-77321", "ACC99812", "19610405", "2024-03-02", "03.02.2024",
                       "1.2.840.113619.2.55.3"):
        assert not re.search(rf"(?<![\w.-]){re.escape(identifier)}(?![\w.-])", out), identifier
    assert "L4-L5: disc herniation with moderate canal stenosis." in out
    assert "Dr Janet reviewed." in out  # a word that merely starts like a name part stays


@override_settings(SPINEAGENT_SITE_INDEX="signed")
def test_rebuild_indexes_signed_reports_without_identifiers_and_the_bundle_serves_them(active_model, tmp_path):
    with override_settings(SPINEAGENT_SITE_INDEX_DIR=tmp_path):
        dim = site_index.embeddings.embedding_dim(active_model)
        g = torch.Generator().manual_seed(0)
        vectors = [torch.randn(dim, generator=g).tolist() for _ in range(3)]
        texts = ["L4-L5: broad-based disc herniation. Jane Doe MRN-77321.",
                 "C5-C6: foraminal stenosis on the left.",
                 "T11-T12: hemangioma, no fracture."]
        for i, (vec, text) in enumerate(zip(vectors, texts)):
            signed_study(i, active_model, text, vec, **PATIENT)
        signed_study(3, active_model, "L5-S1: synovial cyst.", None)       # never analysed: skipped
        signed_study(4, active_model, "Spondylolisthesis L4.", [0.5] * 3)  # another model's embedding size

        summary = site_index.rebuild(via="test")
        assert summary.cases == 3
        assert summary.skipped == {"no stored case embedding from this model's encoders": 2}

        files = list(bank_format.directory_for(tmp_path, site_index.embeddings.key_of(active_model)).iterdir())
        raw = b"".join(p.read_bytes() for p in files)
        for identifier in (b"9000", b"MRN-77321", b"Jane", b"Doe", b"1.2.826.0.1.3680043"):
            assert identifier not in raw, identifier
        meta = json.loads((files[0].parent / bank_format.META).read_text())
        assert meta["case_ids"] == ["site case 1", "site case 2", "site case 3"]
        assert meta["reports"][0].startswith("L4-L5: broad-based disc herniation. [removed] [removed] [removed].")

        event = AuditEvent.objects.get(target_type="site-index")
        assert event.action == AuditEvent.ADMIN and event.detail["cases"] == 3

        # The worker's bundle serves the bank: its image side is the stored embeddings, its report side the
        # signed texts as the bundle's own text tower embeds them (a query with case 2's words finds case 2).
        bundle = analyzers.load_analyzer(active_model.path, active_model.manifest_sha256)
        analyzers.attach_site_index(bundle)
        try:
            assert bundle.index_source.startswith("site: 3 signed reports")
            assert torch.allclose(bundle.index.image, torch.nn.functional.normalize(torch.tensor(vectors), dim=-1))
            query = bank_format.embed_reports(bundle, ["C5-C6: foraminal stenosis on the left."])[0]
            top = bundle.index.image_to_report(query, k=1)[0]
            assert (top.case_id, top.report, round(top.score, 4)) == (
                "site case 2", "C5-C6: foraminal stenosis on the left.", 1.0)
        finally:
            with override_settings(SPINEAGENT_SITE_INDEX="off"):
                analyzers.attach_site_index(bundle)
        assert bundle.index_source == "bundle" and "site case 1" not in bundle.index.case_ids


def test_rebuild_refuses_when_off_or_nothing_qualifies_and_keeps_the_previous_bank(active_model, tmp_path):
    with override_settings(SPINEAGENT_SITE_INDEX_DIR=tmp_path):
        with pytest.raises(Conflict, match="SPINEAGENT_SITE_INDEX=off"):
            site_index.rebuild(via="test")
        with override_settings(SPINEAGENT_SITE_INDEX="signed"):
            with pytest.raises(CommandError, match="no signed report can be indexed .no signed reports yet"):
                call_command("rebuild_site_index")
            with pytest.raises(CommandError, match="no model version with id 987654"):
                call_command("rebuild_site_index", "--model-version", "987654")
            dim = site_index.embeddings.embedding_dim(active_model)
            signed_study(0, active_model, "L3-L4: disc bulge.", [0.1] * dim)
            call_command("rebuild_site_index")
            key = site_index.embeddings.key_of(active_model)
            before = bank_format.read(tmp_path, key)
            Report.objects.all().update(status=Report.IN_REVIEW)  # nothing signed any more: refused
            with pytest.raises(Conflict):
                site_index.rebuild(via="test")
            assert bank_format.read(tmp_path, key).reports == before.reports == ["L3-L4: disc bulge."]
        assert not AuditEvent.objects.filter(target_type="site-index", detail__via="test").exists()


def test_a_damaged_bank_is_reported_and_the_bundles_cases_are_served(active_model, tmp_path, caplog):
    key = site_index.embeddings.key_of(active_model)
    target = bank_format.directory_for(tmp_path, key)
    target.mkdir(parents=True)
    (target / bank_format.META).write_text(json.dumps({"format": bank_format.FORMAT, "embedding_key": "other"}))
    bundle = analyzers.load_analyzer(active_model.path, active_model.manifest_sha256)
    with override_settings(SPINEAGENT_SITE_INDEX="signed", SPINEAGENT_SITE_INDEX_DIR=tmp_path):
        analyzers.attach_site_index(bundle)
    assert bundle.index_source == "bundle"
    assert "not a site index for this model" in caplog.text


@pytest.mark.services
@override_settings(SPINEAGENT_SITE_INDEX="signed")
def test_the_worker_drafts_with_the_sites_cases_and_promotion_queues_a_rebuild(
        orthanc, users, client_for, phantom_files, upload, active_model, tmp_path, django_capture_on_commit_callbacks):
    with override_settings(SPINEAGENT_SITE_INDEX_DIR=tmp_path):
        dim = site_index.embeddings.embedding_dim(active_model)
        signed_study(0, active_model, "L4-L5: disc herniation.", [0.2] * dim)
        site_index.rebuild(via="test")

        response = upload(client_for("admin"), phantom_files(seed=2041))
        assert response.status_code == 201, response.content
        study = Study.objects.get(study_instance_uid=response.json()["studies"][0]["study_instance_uid"])
        data, _ = runner.run(InferenceJob.objects.get(study=study))
        assert data["similar_source"].startswith("site: 1 signed reports")
        assert [c["case_id"] for c in data["similar_cases"]] == ["site case 1"]

        broker = redis.Redis.from_url(__import__("os").environ["CELERY_BROKER_URL"])
        before = broker.llen("training")
        with django_capture_on_commit_callbacks(execute=True):
            registry.promote(active_model)
        messages = [json.loads(m) for m in broker.lrange("training", 0, -1)]
        assert broker.llen("training") == before + 1
        assert messages[0]["headers"]["task"] == "backend.training.tasks.rebuild_site_index"
        broker.delete("training")
