"""The training screens: login and permissions checked on the server, the dataset list and split summary,
the forms that post to the API with the CSRF token, and a snapshot refused cleanly when nothing is verified."""

import json
import re

import pytest

from backend.annotations.models import LabelTask, VerifiedLabels
from backend.studies.models import Study
from backend.training import datasets
from backend.training.models import DatasetVersion, TrainingRun

pytestmark = [pytest.mark.django_db]


def verified(i: int, patient: str, labels: dict) -> None:
    uid = f"1.2.826.0.1.3680043.10.999.79.{i}"
    study = Study.objects.create(study_instance_uid=uid, patient_id=patient, modalities="MR")
    task = LabelTask.objects.create(study=study, study_instance_uid=uid, patient_id=patient,
                                    source=LabelTask.IMPORTED, text=f"report {i}", text_sha256=f"{i:064d}",
                                    status=LabelTask.DONE)
    VerifiedLabels.objects.create(task=task, labels=labels, method=VerifiedLabels.SINGLE)


@pytest.fixture
def dataset(users):
    for i in range(12):
        verified(i, f"P{i // 2}", {"canal": i % 2, "fracture": -1 if i == 3 else 0})
    return datasets.snapshot("pages", user=users["admin"], seed=3)


PAGES = ("/training/", "/training/datasets/{ds}", "/training/runs/{run}")


def urls(ds, active_model):
    run = TrainingRun.objects.create(dataset=ds, base_model=active_model)
    return [p.format(ds=ds.pk, run=run.pk) for p in PAGES]


def test_anonymous_users_are_sent_to_login(client, dataset, active_model):
    for url in urls(dataset, active_model):
        r = client.get(url)
        assert r.status_code == 302 and r["Location"].startswith("/login?next="), url


def test_other_roles_get_403_and_no_nav_link(client_for, dataset, active_model):
    for role in ("radiologist", "annotator", "nobody"):
        client = client_for(role)
        for url in urls(dataset, active_model):
            assert client.get(url).status_code == 403, (role, url)
        if role != "nobody":
            assert 'data-page="training"' not in client.get("/").content.decode()
    assert 'data-page="training"' in client_for("admin").get("/analytics/").content.decode()


def test_home_lists_datasets_with_their_split_summary_and_the_forms(client_for, dataset, active_model):
    r = client_for("admin").get("/training/")
    assert r.status_code == 200
    html = r.content.decode()
    assert 'data-page="training" aria-current="page"' in html  # the shared nav bar, this page current
    row = re.search(rf'<tr data-dataset="{dataset.pk}">(.*?)</tr>', html, re.S).group(1)
    splits = dataset.counts["splits"]
    cells = re.findall(r'<td class="num">([^<]*)</td>', row)
    assert cells[:2] == ["12", "6"]
    assert cells[2:5] == [f'{splits[s]["items"]} ({splits[s]["patients"]} pat.)' for s in ("train", "val", "test")]
    for form in ("dataset-form", "run-form"):
        block = re.search(rf'<form[^>]*id="{form}".*?</form>', html, re.S).group(0)
        assert 'name="csrfmiddlewaretoken"' in block and 'data-api="/api/training/' in block
    assert f'<option value="{dataset.pk}" selected>' in html
    # the stages to run: probes (the default), heads, align + heads; and the chain's step caps
    run_form = re.search(r'<form[^>]*id="run-form".*?</form>', html, re.S).group(0)
    chain = re.search(r'<select name="options.chain".*?</select>', run_form, re.S).group(0)
    assert re.findall(r'<option value="([^"]+)"', chain) == ["probes", "heads", "align+heads"]
    assert '<option value="probes" selected>' in chain
    assert 'name="options.seg_steps"' in run_form and 'name="options.align_steps"' in run_form
    assert '<script type="module" src="/training/assets/training.js"></script>' in html
    assert client_for("admin").get("/training/assets/training.js").status_code == 200
    assert client_for("admin").get("/training/assets/../pages.py").status_code == 404


def test_dataset_page_shows_splits_and_per_condition_counts(client_for, dataset):
    html = client_for("admin").get(f"/training/datasets/{dataset.pk}").content.decode()
    for split, c in dataset.counts["splits"].items():
        assert re.search(rf'<tr data-split="{split}"><td>{split}</td><td class="num">{c["items"]}</td>'
                         rf'<td class="num">{c["patients"]}</td></tr>', html)
    fracture = re.search(r'<tr data-condition="fracture">(.*?)</tr>', html, re.S).group(1)
    cells = re.findall(r'<td class="num">(\d+) / (\d+) / (\d+)</td>', fracture)
    total = [sum(int(c[k]) for c in cells) for k in range(3)]
    assert total == [0, 11, 1]  # present / absent / uncertain over the three splits
    assert dataset.sha256 in html and f"/api/training/datasets/{dataset.pk}/export.csv" in html
    assert client_for("admin").get("/training/datasets/999999").status_code == 404


def test_queued_run_page_polls_its_status_endpoint(client_for, dataset, active_model):
    run = TrainingRun.objects.create(dataset=dataset, base_model=active_model)
    html = client_for("admin").get(f"/training/runs/{run.pk}").content.decode()
    assert '<section id="progress" data-status="queued">' in html and 'id="comparison"' not in html
    assert '<strong id="run-chain">probes</strong>' in html  # a run from before options.chain: probes
    config = json.loads(re.search(r'<script id="run-config" type="application/json">(.*?)</script>', html,
                                  re.S).group(1))
    assert config["status_url"] == f"/api/training/runs/{run.pk}/"
    status = client_for("admin").get(config["status_url"]).json()
    assert status["status"] == "queued" and status["log"] == "" and status["decision"] is None


def test_snapshot_with_no_verified_labels_is_refused_and_writes_nothing(client_for, users):
    admin = client_for("admin")
    assert "No verified labels yet" in admin.get("/training/").content.decode()
    r = admin.post("/api/training/datasets/", {"name": "empty"}, format="json")
    assert r.status_code == 409 and "no verified labels" in r.json()["detail"]
    assert not DatasetVersion.objects.exists()


def _scored(herniation: int, canal: int) -> dict:
    """A model's test metrics as a chain run's compare stage writes them, with per-level agreement: exact on
    ``herniation`` of 2 and ``canal`` of 2 verified levels, within one on all 4."""
    exact = (herniation + canal) / 4
    return {"per_condition": {"canal": {"auroc": 0.7, "auroc_ci95": [0.5, 0.9], "n": 6, "n_pos": 3}},
            "mean_auroc": 0.7,
            "levels": {"n_findings": 4, "n_studies": 3,
                       "accuracy": {"value": exact, "ci95": [exact / 2, 0.9], "n": 4, "n_groups": 3},
                       "within_one": {"value": 1.0, "ci95": [0.8, 1.0], "n": 4, "n_groups": 3},
                       "per_condition": {"herniation": {"n": 2, "accuracy": herniation / 2},
                                         "canal": {"n": 2, "accuracy": canal / 2}}}}


def _levels_table(html: str) -> dict[str, list[str]]:
    table = re.search(r'<table id="comparison-levels">(.*?)</table>', html, re.S).group(1)
    return {cond: [re.sub(r"\s+", " ", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", cells, re.S)]
            for cond, cells in re.findall(r'<tr data-condition="([^"]+)">(.*?)</tr>', table, re.S)}


def test_run_page_shows_the_comparisons_levels(client_for, dataset, active_model):
    """Candidate 3 of 4 verified levels (herniation 2/2, canal 1/2), the active version (the run's base) 1 of 4
    (herniation 0/2, canal 1/2): +0.5 overall, +1.0 herniation, 0 canal; then the comparison stored at the
    decision, and a probes run's line."""
    from backend.inference.models import ModelVersion
    from backend.training import comparison, promotion, runs

    cand = ModelVersion.objects.create(name="cand", version="1", path=active_model.path,
                                       state=ModelVersion.CANDIDATE)
    run = TrainingRun.objects.create(
        dataset=dataset, base_model=active_model, candidate=cand, status=TrainingRun.SUCCEEDED,
        options=runs.parse_options({"chain": "heads"}),
        metrics={"chain": "heads", "candidate": _scored(2, 1), "base": _scored(0, 1), "n_test": 6,
                 "reference_errors": {}})
    admin = client_for("admin")
    html = admin.get(f"/training/runs/{run.pk}").content.decode()
    rows = _levels_table(html)
    assert rows["herniation"] == ["herniation: exact", "1.000", "0.000", "1.000", "2 / 2"]
    assert rows["canal"] == ["canal: exact", "0.500", "0.500", "0.000", "2 / 2"]
    assert rows["all-exact"] == ["0.750 [0.375, 0.900]", "0.250 [0.125, 0.900]", "0.500", "4 / 4"]
    assert rows["all-within-one"][:2] == ["1.000 [0.800, 1.000]", "1.000 [0.800, 1.000]"]
    assert "4 findings in 3 studies" in html and 'id="comparison-levels-none"' not in html

    # decided: the page shows the comparison stored at the decision, not one made now
    cmp = comparison.compare(run)
    run.gate, run.decision = {**promotion.gate(cmp), "comparison": cmp}, TrainingRun.REJECTED
    run.metrics = {**run.metrics, "candidate": _scored(0, 0)}
    run.save()
    rows = _levels_table(admin.get(f"/training/runs/{run.pk}").content.decode())
    assert rows["herniation"][1] == "1.000" and rows["all-exact"][2] == "0.500"

    probes = TrainingRun.objects.create(
        dataset=dataset, base_model=active_model, candidate=cand, status=TrainingRun.SUCCEEDED,
        options=runs.parse_options({}),
        metrics={"candidate": {k: v for k, v in _scored(2, 1).items() if k != "levels"},
                 "base": {k: v for k, v in _scored(0, 1).items() if k != "levels"}, "n_test": 6})
    html = admin.get(f"/training/runs/{probes.pk}").content.decode()
    assert 'id="comparison"' in html and 'id="comparison-levels"' not in html
    assert ("no per-level labels in this dataset / probes run: level head unchanged"
            in re.search(r'<p class="meta" id="comparison-levels-none">(.*?)</p>', html, re.S).group(1))
