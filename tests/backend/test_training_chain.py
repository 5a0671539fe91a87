"""Training runs that execute the stage chain (``chain`` heads / align+heads, backend/training/chain.py) on
images fetched from the real test Orthanc over DICOMweb, on a real Celery worker of the ``training`` queue:
candidate registered and loadable, every stage in the run's log, candidate and active model scored on the
same test-split images, the promotion gate applied to them; a failing stage fails the run, registers nothing.

Everything here is SYNTHETIC (phantom studies, phantom-trained base model): the numbers only show the chain
works, not that the model is any good.
"""

from __future__ import annotations

import hashlib

import pytest
import spine_phantom
from django.test.utils import override_settings

from backend.annotations.models import LabelTask, VerifiedLabels
from backend.inference.models import ModelVersion
from backend.studies.models import Study
from backend.training import datasets, runs
from backend.training.models import TrainingRun
from spinefm.bundle import load_bundle, read_manifest

PHANTOM_SEED, N_STUDIES = 83, 8
RATIOS = {"train": 0.4, "val": 0.3, "test": 0.3}
SMALL = {"steps": 40, "seg_steps": 5, "align_steps": 2, "n_boot": 20}  # a test-size run (docs/training.md)
STAGES = ("dataset", "heads", "calibrate", "compare", "build-bundle")


@pytest.fixture
def training_worker(data_dir, start_worker):
    return start_worker("chain", queues="training")


def add_verified(uid: str, patient: str, labels: dict, text: str = "", description: str = "SYNTHETIC phantom") -> None:
    study = Study.objects.create(study_instance_uid=uid, patient_id=patient, modalities="MR",
                                 study_description=description)
    task = LabelTask.objects.create(study=study, study_instance_uid=uid, patient_id=patient,
                                    source=LabelTask.IMPORTED, text=text or f"report of {uid}",
                                    text_sha256=hashlib.sha256(uid.encode()).hexdigest(), status=LabelTask.DONE)
    VerifiedLabels.objects.create(task=task, labels=labels, method=VerifiedLabels.SINGLE)


def phantoms_in_orthanc(orthanc_admin, phantom_files, n: int = N_STUDIES) -> list:
    """Phantom studies stored in the test Orthanc (as a modality would), each with verified labels."""
    studies = [spine_phantom.generate_study(seed=PHANTOM_SEED, index=i) for i in range(n)]
    for i, p in enumerate(studies):
        if not orthanc_admin.has_study(p.study_instance_uid):
            for _name, data in phantom_files(PHANTOM_SEED, i):
                orthanc_admin.post_instance(data)
        add_verified(p.study_instance_uid, p.patient_id, p.truth["labels"], p.truth["report"]["text"])
    return studies


def split_seed(studies) -> int:
    """The first split seed giving train >= 3, val >= 2, test >= 2 patients (calibrate needs val cases)."""
    for seed in range(2000):
        splits = [datasets.split_of(datasets.split_group(p.patient_id, p.study_instance_uid), seed, RATIOS)
                  for p in studies]
        if splits.count("train") >= 3 and splits.count("val") >= 2 and splits.count("test") >= 2:
            return seed
    raise AssertionError("no seed splits these patients")


def wait_run(wait_until, pk: int, timeout: float = 240) -> TrainingRun:
    wait_until(lambda: TrainingRun.objects.get(pk=pk).status in (TrainingRun.SUCCEEDED, TrainingRun.FAILED),
               timeout=timeout, what=f"training run {pk} to finish")
    return TrainingRun.objects.select_related("candidate").get(pk=pk)


def test_heads_chain_on_the_training_worker(training_worker, data_dir, active_model, users, client_for,
                                            orthanc_admin, phantom_files, wait_until):
    studies = phantoms_in_orthanc(orthanc_admin, phantom_files)
    ds = datasets.snapshot("chain", seed=split_seed(studies), ratios=RATIOS)
    admin = client_for("admin")

    r = admin.post("/api/training/runs/", {"dataset": ds.pk, "options": {"chain": "heads", **SMALL}}, format="json")
    assert r.status_code == 201, r.content
    assert r.json()["chain"] == "heads" and r.json()["options"]["chain"] == "heads"
    run = wait_run(wait_until, r.json()["id"])
    assert run.status == TrainingRun.SUCCEEDED, run.error + "\n" + run.log[-3000:]

    # each stage ran as its own spinefm command, its output in the run's log; no align in a heads chain
    for stage in STAGES:
        assert f"$ spinefm {stage}" in run.log, stage
        assert f"  {stage}: " in run.log, stage
    assert "$ spinefm align" not in run.log
    assert "--password" in run.log and "test-orthanc-secret" not in run.log  # the password never on a command line
    detail = admin.get(f"/api/training/runs/{run.pk}/").json()
    assert (detail["progress"], detail["stage"]) == (100, "succeeded") and detail["log"] == run.log

    # the candidate: registered, loadable, derived from the base on this dataset version
    candidate = ModelVersion.objects.get(pk=detail["candidate"]["id"])
    assert candidate.state == ModelVersion.CANDIDATE and candidate.version == f"{active_model.version}-r{run.pk}"
    assert candidate.path.startswith(str(data_dir / "bundles")) and candidate.synthetic_training
    bundle = load_bundle(candidate.path)
    assert bundle.manifest["training"]["dataset"]["counts"]["studies"] == N_STUDIES
    assert bundle.manifest["operating_points"]["splits"] == "val"  # calibrate's record survives build-bundle
    assert candidate.metrics["candidate"] == run.metrics["candidate"]
    assert not (data_dir / "training-runs" / f"run-{run.pk}" / "bundle").exists()  # moved, not copied

    # candidate and base (the active version) scored on the same test-split images
    m = run.metrics
    n_test = [i["split"] for i in ds.items].count("test")
    assert m["chain"] == "heads" and m["n_test"] == n_test == len(m["test_case_ids"])
    assert m["n_train"] + m["n_val"] + m["n_test"] == N_STUDIES and m["label"].startswith("SYNTHETIC")
    for cond, row in m["candidate"]["per_condition"].items():
        assert row["n"] == m["base"]["per_condition"][cond]["n"] <= n_test
    assert set(m["stage_seconds"]) == set(STAGES)
    cmp = admin.get(f"/api/training/runs/{run.pk}/comparison").json()
    assert cmp["active"]["id"] == active_model.pk and cmp["candidate"]["id"] == candidate.pk
    assert "test split's images" in cmp["active_metrics_source"]
    assert cmp["mean_auroc"] == {"candidate": m["candidate"]["mean_auroc"], "active": m["base"]["mean_auroc"]}

    # the gate, unchanged: the shipped bundle validates conditions on its own held-out studies, the candidate's
    # val split (a few cases) validates none, so promotion is refused without a written reason
    validated = [p["condition"] for p in read_manifest(active_model.path)["operating_points"]["points"]
                 if p["validated"]]
    g = admin.get(f"/api/training/runs/{run.pk}/gate").json()["gate"]
    assert g["passed"] is False
    assert {x.split(":")[0] for x in g["reasons"] if "not for the candidate" in x} == set(validated)
    r = admin.post(f"/api/training/runs/{run.pk}/promote", {}, format="json")
    assert r.status_code == 409 and "refused by the gate" in r.json()["detail"]
    # the admin's run page: the stages, each stage's output in the log, the comparison
    page = admin.get(f"/training/runs/{run.pk}").content.decode()
    assert '<strong id="run-chain">heads</strong>' in page and 'id="comparison"' in page
    assert "$ spinefm heads --init" in page and "  calibrate: " in page
    active_model.refresh_from_db()
    assert active_model.state == ModelVersion.ACTIVE


def test_chain_option_is_validated(db, active_model, client_for):
    add_verified("1.2.826.0.1.3680043.10.999.83.1", "TC001", {"canal": 1})
    ds = datasets.snapshot("chain-bad")
    admin = client_for("admin")
    for bad in ("everything", "", 3, None, ["heads"]):
        r = admin.post("/api/training/runs/", {"dataset": ds.pk, "options": {"chain": bad}}, format="json")
        assert r.status_code == 400 and r.json()["field"] == "options.chain", (bad, r.content)
    r = admin.post("/api/training/runs/", {"dataset": ds.pk, "options": {"chain": "heads", "align_steps": 0}},
                   format="json")
    assert r.status_code == 400 and r.json()["field"] == "options.align_steps"
    assert TrainingRun.objects.count() == 0
    assert runs.parse_options({})["chain"] == "probes"  # today's behaviour stays the default
    assert runs.parse_options({"chain": "align+heads"})["chain"] == "align+heads"


def executed(ds, base: ModelVersion, options: dict) -> TrainingRun:
    """The Celery task's body in-process (the worker path is covered above)."""
    run = TrainingRun.objects.create(dataset=ds, base_model=base, options=runs.parse_options(options))
    runs.execute(run.pk)
    return TrainingRun.objects.select_related("candidate").get(pk=run.pk)


def test_a_failing_stage_fails_the_run_and_registers_nothing(data_dir, active_model, orthanc_admin,
                                                             phantom_files):
    studies = phantoms_in_orthanc(orthanc_admin, phantom_files, n=3)
    missing = "1.2.826.0.1.3680043.10.999.83.404"  # verified, never stored in Orthanc
    add_verified(missing, "PHANTOM-MISSING", {k: 0 for k in studies[0].truth["labels"]})
    ds = datasets.snapshot("chain-missing", ratios={"train": 0.4, "val": 0.3, "test": 0.3})

    run = executed(ds, active_model, {"chain": "align+heads", **SMALL})
    assert run.status == TrainingRun.FAILED and run.candidate is None
    assert "1 of 4 studies of dataset chain-missing v1 could not be built from Orthanc" in run.error
    assert missing in run.error and "not found on the DICOMweb server" in run.error
    assert "$ spinefm dataset build" in run.log and "$ spinefm align" not in run.log  # stopped at the failure

    with override_settings(ORTHANC_URL="http://127.0.0.1:9"):  # nothing listens there
        run = executed(ds, active_model, {"chain": "heads", **SMALL})
    assert run.status == TrainingRun.FAILED and run.candidate is None
    assert "stage dataset exited with status" in run.error and "DICOMweb http://127.0.0.1:9/dicom-web" in run.error
    assert ModelVersion.objects.count() == 1 and not (data_dir / "bundles").exists()


def test_align_heads_chain_changes_the_encoders_and_compares_on_the_same_images(data_dir, active_model,
                                                                                 orthanc_admin, phantom_files):
    studies = phantoms_in_orthanc(orthanc_admin, phantom_files)
    ds = datasets.snapshot("chain-align", seed=split_seed(studies), ratios=RATIOS)
    run = executed(ds, active_model, {"chain": "align+heads", **SMALL})
    assert run.status == TrainingRun.SUCCEEDED, run.error + "\n" + run.log[-3000:]
    assert "$ spinefm align" in run.log and "--max-steps 2" in run.log and "  align: " in run.log
    assert run.log.index("$ spinefm align") < run.log.index("$ spinefm heads")
    base, cand = read_manifest(active_model.path), read_manifest(run.candidate.path)
    assert cand["files"]["encoders.safetensors"] != base["files"]["encoders.safetensors"]  # align trained them
    assert "CLIP fine-tuned" in cand["encoder_init"]
    m = run.metrics
    assert m["chain"] == "align+heads" and set(m["stage_seconds"]) == {"align", *STAGES}
    assert m["base"]["per_condition"].keys() == m["candidate"]["per_condition"].keys()
    assert m["base"]["n_cases"] == m["candidate"]["n_cases"] == m["n_test"]


def test_a_chain_run_compares_with_the_version_active_when_it_ran(db, active_model):
    """The comparison of a chain run when another version is active (written-out metrics of the chain's shape:
    one function under test): the run's own measurement of that version on the images, or null with the
    reason once yet another version is active; the gate refuses a worse candidate either way."""
    from backend.inference import registry
    from backend.training import comparison, promotion

    add_verified("1.2.826.0.1.3680043.10.999.83.2", "TC002", {"canal": 1})
    ds = datasets.snapshot("chain-active")
    other = ModelVersion.objects.create(name="other", version="1", path=active_model.path)
    third = ModelVersion.objects.create(name="third", version="1", path=active_model.path)
    cand = ModelVersion.objects.create(name="cand", version="1", path=active_model.path,
                                       state=ModelVersion.CANDIDATE)

    def scored(auroc, lo):
        return {"per_condition": {"canal": {"auroc": auroc, "auroc_ci95": [lo, 0.99], "n": 6, "n_pos": 3}},
                "mean_auroc": auroc}

    run = TrainingRun.objects.create(
        dataset=ds, base_model=active_model, candidate=cand, status=TrainingRun.SUCCEEDED,
        options=runs.parse_options({"chain": "heads"}),
        metrics={"chain": "heads", "candidate": scored(0.8, 0.6), "base": scored(0.7, 0.5), "n_test": 6,
                 "active_at_run": {"id": other.pk, "metrics": scored(0.85, 0.7)}, "reference_errors": {}})
    registry.promote(other)
    cmp = comparison.compare(run)
    assert cmp["active"]["id"] == other.pk and cmp["mean_auroc"] == {"candidate": 0.8, "active": 0.85}
    assert "evaluated by the run on the test split's images" in cmp["active_metrics_source"]
    g = promotion.gate(cmp)
    assert not g["passed"] and "mean AUROC lower bound 0.600 < active 0.700" in g["reasons"][0]

    registry.promote(third)  # not measured by the run: no stored embeddings to fall back on
    cmp = comparison.compare(run)
    assert cmp["conditions"][0]["active"] is None and "start a new run" in cmp["active_metrics_source"]
    assert "could not be scored" in promotion.gate(cmp)["reasons"][0]


def test_the_comparison_puts_the_models_levels_side_by_side(db, active_model):
    """Per-level agreement as the chain's compare stage writes it (spinefm compare ``levels``), checked by hand:
    candidate 3 of 4 verified levels (herniation 2/2, canal 1/2), base (the active version) 1 of 4
    (herniation 0/2, canal 1/2): +0.5 overall, +1.0 herniation, 0 canal. A probes run has no level figures."""
    from backend.training import comparison

    add_verified("1.2.826.0.1.3680043.10.999.83.3", "TC003", {"canal": 1})
    ds = datasets.snapshot("chain-levels")
    cand = ModelVersion.objects.create(name="cand", version="1", path=active_model.path,
                                       state=ModelVersion.CANDIDATE)

    def scored(herniation, canal):
        exact = [1.0] * herniation + [0.0] * (2 - herniation) + [1.0] * canal + [0.0] * (2 - canal)
        return {"per_condition": {"canal": {"auroc": 0.7, "auroc_ci95": [0.5, 0.9], "n": 6, "n_pos": 3}},
                "mean_auroc": 0.7,
                "levels": {"n_findings": 4, "n_studies": 3,
                           "accuracy": {"value": sum(exact) / 4, "ci95": [0.0, 1.0], "n": 4, "n_groups": 3},
                           "within_one": {"value": 1.0, "ci95": [1.0, 1.0], "n": 4, "n_groups": 3},
                           "per_condition": {"herniation": {"n": 2, "accuracy": herniation / 2},
                                             "canal": {"n": 2, "accuracy": canal / 2}}}}

    metrics = {"chain": "heads", "candidate": scored(2, 1), "base": scored(0, 1), "n_test": 6, "reference_errors": {}}
    run = TrainingRun.objects.create(dataset=ds, base_model=active_model, candidate=cand, metrics=metrics,
                                     status=TrainingRun.SUCCEEDED, options=runs.parse_options({"chain": "heads"}))
    levels = comparison.compare(run)["levels"]
    assert levels["n_findings"] == 4 and levels["delta_accuracy"] == 0.75 - 0.25
    assert levels["candidate"]["accuracy"]["value"] == 0.75 and levels["active"]["accuracy"]["value"] == 0.25
    assert levels["conditions"] == [
        {"condition": "canal", "candidate": {"n": 2, "accuracy": 0.5}, "active": {"n": 2, "accuracy": 0.5},
         "delta_accuracy": 0.0},
        {"condition": "herniation", "candidate": {"n": 2, "accuracy": 1.0}, "active": {"n": 2, "accuracy": 0.0},
         "delta_accuracy": 1.0}]

    probes = {"candidate": {k: v for k, v in scored(2, 1).items() if k != "levels"}, "n_test": 6}
    probes["base"] = probes["candidate"]
    run.metrics, run.options = probes, runs.parse_options({})
    run.save()
    assert comparison.compare(run)["levels"] is None


def test_verified_levels_refit_the_level_prior_in_a_heads_chain(data_dir, active_model, orthanc_admin,
                                                                phantom_files):
    """Verified per-level labels (here the phantoms' own finding levels) add the ``levels`` stage to the chain:
    the candidate's level prior is refit where the training split names levels (its position net is the
    base's), and candidate and base are scored on the same verified test levels."""
    import torch

    studies = phantoms_in_orthanc(orthanc_admin, phantom_files)
    for p in studies:
        present = {}
        for f in p.truth["findings"]:
            if f.get("label") == 1 and f.get("level"):
                present.setdefault(f["condition"], {})[f["level"]] = 1
        VerifiedLabels.objects.filter(task__study_instance_uid=p.study_instance_uid).update(
            level_labels={k: present.get(k) or {"study": v} for k, v in p.truth["labels"].items()})
    ds = datasets.snapshot("chain-levels", seed=split_seed(studies), ratios=RATIOS)
    trained = {k for i in ds.items if i["split"] == "train" for k, _ in datasets.present_levels(i)}
    assert trained, "the phantoms name no level in the training split"

    run = executed(ds, active_model, {"chain": "heads", **SMALL})
    assert run.status == TrainingRun.SUCCEEDED, run.error + "\n" + run.log[-3000:]
    assert "$ spinefm levels --init" in run.log and "--level-fit prior --level-centres predicted" in run.log
    assert run.log.index("$ spinefm heads") < run.log.index("$ spinefm levels") < run.log.index("$ spinefm calibrate")
    m = run.metrics
    assert set(m["stage_seconds"]) == {"levels", *STAGES}
    base, cand = load_bundle(active_model.path).model.level, load_bundle(run.candidate.path).model.level
    assert all(torch.equal(a, b) for a, b in zip(cand.net.parameters(), base.net.parameters()))
    moved = {c for i, c in enumerate(base.conditions) if not torch.equal(cand.prior[i], base.prior[i])}
    assert moved and moved <= trained
    assert m["candidate"]["levels"]["n_findings"] == m["base"]["levels"]["n_findings"]
    assert m["level_training"]["level_fit"] == "prior" and m["level_training"]["level_conditions"] == sorted(moved)
    assert read_manifest(run.candidate.path)["metrics"]["level_training"] == m["level_training"]
