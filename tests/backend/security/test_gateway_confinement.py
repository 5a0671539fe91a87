"""The DICOMweb gateway cannot be walked out of (issue 17, finding 1), attacked the way the outside probe did.

Requests go over a real socket to the live server with the exact bytes of the request target (http.client
does not normalise ``..`` or decode ``%2e``), authenticated as an annotator, the least privileged role with
image access. Each variant must be refused before anything reaches Orthanc, and no answer may carry what
Orthanc's own REST API would have shown. Behind the gateway, the Orthanc account it uses is itself confined
to GET under /dicom-web/ (defence in depth), and every image read is audited with its study, series and
instance.
"""

from __future__ import annotations

import json

import pytest
import requests

pytestmark = [pytest.mark.security, pytest.mark.services, pytest.mark.django_db(transaction=True)]

@pytest.fixture
def world(live_server, orthanc, orthanc_admin, users, client_for, phantom_files, upload):
    from rest_framework.authtoken.models import Token

    from backend.dicomweb import access_cache

    access_cache.forget_all()
    body = upload(client_for("admin"), phantom_files(seed=1701)).json()
    study = body["studies"][0]["study_instance_uid"]
    lookup = orthanc_admin.get("/studies?expand").json()
    orthanc_study = next(s for s in lookup if s["MainDicomTags"]["StudyInstanceUID"] == study)
    series = orthanc_admin.get(f"/series/{orthanc_study['Series'][0]}").json()
    return {
        "base": live_server.url, "study": study, "orthanc_study": orthanc_study["ID"],
        "series": series["MainDicomTags"]["SeriesInstanceUID"], "orthanc_instance": series["Instances"][0],
        "sop": orthanc_admin.get(f"/instances/{series['Instances'][0]}").json()["MainDicomTags"]["SOPInstanceUID"],
        "token": Token.objects.create(user=users["annotator"]).key,
    }


def test_every_traversal_variant_is_refused_and_leaks_nothing(world, raw_get, traversal_variants, orthanc_markers):
    # The annotator really can read images through the gateway, so a refusal below is the grammar's doing.
    status, body = raw_get(world["base"], f"/dicom-web/studies/{world['study']}/series", world["token"])
    assert status == 200 and world["series"].encode() in body
    for target in traversal_variants(world["study"], world["series"], world["orthanc_instance"],
                                     world["orthanc_study"]):
        status, body = raw_get(world["base"], target, world["token"])
        assert status in (400, 404), f"{target} answered {status}"
        leaked = [m for m in orthanc_markers if m in body]
        assert not leaked, f"{target} leaked {leaked}"


def test_encoded_separators_in_the_raw_target_are_refused_even_when_the_decoded_path_parses(client_for, users):
    """gunicorn (the demo and compose) hands Django the raw target: an encoded slash or dot is refused
    even where decoding would yield a well-formed DICOMweb path."""
    client = client_for("annotator")
    decoded = "/dicom-web/studies/1.2.3/series/4.5.6"
    for raw in ("/dicom-web/studies/1.2.3%2Fseries%2F4.5.6", "/dicom-web/studies/1.2.3/series/4%2e5.6",
                "/dicom-web/studies/1.2.3/series/4.5.6%5c"):
        response = client.get(decoded, RAW_URI=raw)
        assert response.status_code == 404, raw


def test_the_gateways_orthanc_account_is_confined_to_dicomweb_reads(world, orthanc):
    """Defence in depth: even a request that reached Orthanc with the gateway's credentials gets no further."""
    s = orthanc.settings
    gateway = (s.gateway_username, s.gateway_password)
    get = lambda path, auth=gateway, **kw: requests.get(s.url + path, auth=auth, timeout=30, **kw)  # noqa: E731
    assert get(f"/dicom-web/studies/{world['study']}/series").status_code == 200
    for path in ("/system", "/statistics", "/patients", "/changes", "/plugins", "/modalities",
                 f"/instances/{world['orthanc_instance']}/file", f"/studies/{world['orthanc_study']}/archive",
                 "/app/explorer.html", "/dicom-web/servers", "/tools/lookup"):
        assert get(path).status_code == 403, path
    # Orthanc normalises dot segments before its filter: no spelling gets out.
    session = requests.Session()
    prepared = requests.Request("GET", s.url + "/dicom-web/studies/../../system", auth=gateway).prepare()
    prepared.url = s.url + "/dicom-web/studies/../../system"
    assert session.send(prepared, timeout=30).status_code == 403
    # Only reads: no STOW, no delete, through the gateway's account.
    assert requests.post(s.url + "/dicom-web/studies", auth=gateway, data=b"", timeout=30).status_code == 403
    assert requests.delete(s.url + f"/studies/{world['orthanc_study']}", auth=gateway, timeout=30).status_code == 403
    # The backend's own account is not confined (ingest and housekeeping need it).
    assert get("/system", auth=(s.username, s.password)).status_code == 200


def test_every_image_path_is_audited_with_its_uids(world, raw_get):
    from backend.audit.models import AuditEvent

    study, series, sop = world["study"], world["series"], world["sop"]
    paths = [f"/dicom-web/studies/{study}/metadata",
             f"/dicom-web/studies/{study}/series/{series}/metadata",
             f"/dicom-web/studies/{study}/series/{series}/instances/{sop}/frames/1",
             f"/dicom-web/series?StudyInstanceUID={study}"]
    for path in paths:
        status, _ = raw_get(world["base"], path, world["token"])
        assert status == 200, path
    rows = AuditEvent.objects.filter(target_type="images", username="annotator").order_by("pk")
    assert {r.target_id for r in rows} == {study}
    by_series = {r.detail.get("series"): r.detail for r in rows}
    assert None in by_series and by_series[None]["resource"] == "study/metadata"
    assert by_series[series]["resource"] == "series/metadata"  # the first read of that series in the window
    assert len(rows) == 2  # one row per study and series per window, not one per frame


def test_the_grammar_parses_what_ohif_asks_for():
    from backend.dicomweb.paths import parse

    s, r, i = "1.2.840.1", "1.2.840.2", "1.2.840.3"
    ok = {
        "studies": "search", f"studies/{s}": "study", f"studies/{s}/metadata": "study/metadata",
        f"studies/{s}/series": "study/series", f"studies/{s}/series/{r}/metadata": "series/metadata",
        f"studies/{s}/series/{r}/instances": "series/instances", f"studies/{s}/series/{r}/thumbnail": "series/thumbnail",
        f"studies/{s}/series/{r}/instances/{i}/frames/1,2,3": "instance/frames",
        f"studies/{s}/series/{r}/instances/{i}/frames/1/rendered": "instance/frames/rendered",
        f"studies/{s}/series/{r}/instances/{i}/bulk/7fe00010": "instance/bulk",
        f"studies/{s}/series/{r}/instances/{i}/bulk/00081111/0/7fe00010": "instance/bulk",
    }
    for path, resource in ok.items():
        parsed = parse(path)
        assert parsed is not None and parsed.resource == resource and parsed.upstream == path, path
    for bad in ("", "studies/", f"studies/{s}/", "studies/1..2", "studies/.1.2", "studies/1.2.", f"studies/{'1' * 65}",
                f"studies/{s}/archive", f"studies/{s}/series/{r}/instances/{i}/file",
                f"studies/{s}/series/{r}/instances/{i}/frames/0", f"studies/{s}/series/{r}/instances/{i}/bulk/7fe0",
                "servers", "system", "studies/1.2/../..", "studies/%2e%2e"):
        assert parse(bad) is None, bad
    assert json.dumps(parse(f"studies/{s}").segments) == json.dumps(["studies", s])
