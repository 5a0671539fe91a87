"""STOW-RS through ``/dicom-web/studies`` (issue 18, item 7), with a real DICOMweb client (dicomweb-client)
against the live server: the same validation and truthfulness as the upload API, all or nothing."""

from __future__ import annotations

import io

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient

from backend.inference.models import InferenceJob
from backend.studies.models import Study

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def stow_client(live_server, orthanc, users):
    from rest_framework.authtoken.models import Token

    def make(role: str) -> DICOMwebClient:
        token = Token.objects.get_or_create(user=users[role])[0].key
        # Django's test server does not decode chunked bodies (gunicorn and nginx do: test_chunked_... below),
        # so this client sends a Content-Length.
        return DICOMwebClient(f"{live_server.url}/dicom-web", headers={"Authorization": f"Token {token}"},
                              chunk_size=1 << 30)

    return make


def datasets(files) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(io.BytesIO(data)) for _, data in files]


def test_stow_stores_indexes_and_queues_like_an_upload(stow_client, phantom_files, orthanc_admin):
    files = phantom_files(seed=1803)
    before = orthanc_admin.count_instances()
    answer = stow_client("admin").store_instances(datasets(files))
    assert len(answer.ReferencedSOPSequence) == len(files)
    study_uid = str(datasets(files[:1])[0].StudyInstanceUID)
    assert answer.RetrieveURL.endswith(f"/dicom-web/studies/{study_uid}")
    assert orthanc_admin.count_instances() == before + len(files)
    study = Study.objects.get(study_instance_uid=study_uid)
    assert study.num_instances == len(files) and InferenceJob.objects.filter(study=study).count() == 1
    # Again: idempotent, nothing new anywhere.
    stow_client("admin").store_instances(datasets(files), study_instance_uid=study_uid)
    assert orthanc_admin.count_instances() == before + len(files) and Study.objects.count() == 1


def test_stow_is_for_uploaders_only(stow_client, phantom_files, orthanc_admin):
    before = orthanc_admin.count_instances()
    for role in ("radiologist", "annotator"):
        with pytest.raises(requests.HTTPError) as refused:
            stow_client(role).store_instances(datasets(phantom_files(seed=1804)[:2]))
        assert refused.value.response.status_code == 403
    assert orthanc_admin.count_instances() == before


def test_one_bad_instance_stores_nothing_and_says_why(stow_client, phantom_files, orthanc_admin):
    good = datasets(phantom_files(seed=1805)[:4])
    bad = good.pop()
    bad.SeriesInstanceUID = "1.2.840 113619"  # a UID with a space: refused before anything is stored
    before = orthanc_admin.count_instances()
    with pytest.raises(requests.HTTPError) as refused:
        stow_client("admin").store_instances([*good, bad])
    response = refused.value.response
    assert response.status_code == 409
    failed = response.json()["00081198"]["Value"]
    assert [f["00081155"]["Value"][0] for f in failed] == [str(bad.SOPInstanceUID)]
    assert [f["00081197"]["Value"][0] for f in failed] == [0xC000]
    assert "part 4: SeriesInstanceUID '1.2.840 113619' is not a valid DICOM UID" in response.headers["Warning"]
    assert orthanc_admin.count_instances() == before  # the three stored first were deleted again
    assert not Study.objects.filter(study_instance_uid=str(good[0].StudyInstanceUID)).exists()


def test_instances_of_another_study_are_refused_on_the_study_url(stow_client, phantom_files, orthanc_admin):
    files = datasets(phantom_files(seed=1806)[:2])
    before = orthanc_admin.count_instances()
    with pytest.raises(requests.HTTPError) as refused:
        stow_client("admin").store_instances(files, study_instance_uid="1.2.3.4")
    assert refused.value.response.status_code == 409 and "not 1.2.3.4" in refused.value.response.headers["Warning"]
    assert orthanc_admin.count_instances() == before


def test_malformed_bodies_are_refused_cleanly(live_server, users, orthanc):
    from rest_framework.authtoken.models import Token

    headers = {"Authorization": f"Token {Token.objects.create(user=users['admin']).key}"}
    url = f"{live_server.url}/dicom-web/studies"
    related = 'multipart/related; type="application/dicom"; boundary=xyz'
    cases = [
        ("application/dicom", b"DICM", 415),
        ('multipart/related; type="application/dicom"', b"--xyz--", 415),  # no boundary
        (related, b"--xyz\r\nContent-Type: application/dicom\r\n\r\nnot dicom at all", 409),  # no close
        (related, b"x" * 100_000, 409),  # no part where the boundary says
        (related, b"--xyz\r\nContent-Type: application/dicom\r\n\r\n" + b"\0" * 200 + b"\r\n--xyz--\r\n", 409),
    ]
    for content_type, body, status in cases:
        response = requests.post(url, data=body, headers={**headers, "Content-Type": content_type}, timeout=30)
        assert response.status_code == status, (content_type, body[:40], response.content[:200])


def test_chunked_stow_through_gunicorn(orthanc, users, phantom_files, tmp_path, orthanc_admin):
    """A DICOMweb client that chunks its body (dicomweb-client does above 1 MB) against gunicorn, which the demo
    runs: read to the end; Django's own test server, which cannot decode chunks, answers 411 instead."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from django.db import connection
    from rest_framework.authtoken.models import Token

    from backend.devstack.services import free_port, port_open, wait_for

    db = connection.settings_dict
    port = free_port()
    env = dict(os.environ, DATABASE_URL=f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
               ORTHANC_URL=orthanc.settings.url, ORTHANC_PASSWORD=orthanc.settings.password,
               ORTHANC_GATEWAY_PASSWORD=orthanc.settings.gateway_password, SPINEAGENT_AUTO_QUEUE_INFERENCE="false")
    root = Path(__file__).resolve().parents[2]
    web = subprocess.Popen([sys.executable, "-m", "gunicorn", "backend.wsgi", "-b", f"127.0.0.1:{port}", "-k", "gthread",
                            "--threads", "4", "--log-level", "warning"], cwd=root, env=env)
    try:
        wait_for(lambda: port_open("127.0.0.1", port), "gunicorn", timeout=60)
        token = Token.objects.create(user=users["admin"]).key
        client = DICOMwebClient(f"http://127.0.0.1:{port}/dicom-web", headers={"Authorization": f"Token {token}"},
                                chunk_size=64 * 1024)
        files = datasets(phantom_files(seed=1807))
        answer = client.store_instances(files)
        assert len(answer.ReferencedSOPSequence) == len(files)
        assert Study.objects.filter(study_instance_uid=str(files[0].StudyInstanceUID)).exists()
    finally:
        web.terminate()
        web.wait(timeout=20)


def test_a_chunked_body_the_server_cannot_decode_is_a_411(live_server, users, orthanc):
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=users["admin"]).key
    response = requests.post(f"{live_server.url}/dicom-web/studies", data=iter([b"--xyz\r\n", b"--xyz--"]), timeout=30,
                             headers={"Authorization": f"Token {token}",
                                      "Content-Type": 'multipart/related; type="application/dicom"; boundary=xyz'})
    assert response.status_code == 411 and "Content-Length" in response.json()["detail"]
