"""DICOM C-STORE is closed to strangers (issue 17, finding 2), tried with a real DICOM client (pynetdicom).

An Orthanc of its own is started with an allowlist of two modalities: ``MR_ALLOWED`` from this host, and
``MR_ELSEWHERE`` registered on another address (127.0.0.2), plus a malformed entry that must be skipped.
Only the first may store; an unknown AE title, the right AE title from the wrong host, and a wrong called AE
title are all refused, and Orthanc's instance count shows it. Admins see the list as Orthanc enforces it.
"""

from __future__ import annotations

import pytest
import requests

pytestmark = [pytest.mark.security, pytest.mark.services, pytest.mark.django_db]

ALLOWLIST = "MR_ALLOWED@127.0.0.1:11112, elsewhere=MR_ELSEWHERE@127.0.0.2:104, BROKEN@@nowhere, TOO_LONG_AE_TITLE_X@h:1"


@pytest.fixture
def guarded_orthanc(services, tmp_path, settings):
    from backend.devstack.services import OrthancProcess, OrthancSettings, free_port, orthanc_plugins_available

    if not orthanc_plugins_available():
        pytest.fail("Orthanc with its DICOMweb and Python plugins is required: run scripts/setup.sh")
    proc = OrthancProcess(OrthancSettings(data_dir=tmp_path / "orthanc", http_port=free_port(),
                                          dicom_port=free_port(), password="cstore-test-secret", announce=False,
                                          aet="SPINEAGENT_T", dicom_modalities=ALLOWLIST)).start()
    settings.ORTHANC_URL, settings.ORTHANC_PASSWORD = proc.settings.url, proc.settings.password
    yield proc
    proc.stop()


def count(proc) -> int:
    s = proc.settings
    return requests.get(s.url + "/statistics", auth=(s.username, s.password), timeout=10).json()["CountInstances"]


def store(proc, calling: str, called: str, dataset, bind: str = "127.0.0.1"):
    """(association established, C-STORE status or None)."""
    from pynetdicom import AE

    ae = AE(ae_title=calling)
    ae.add_requested_context(dataset.SOPClassUID, dataset.file_meta.TransferSyntaxUID)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    assoc = ae.associate("127.0.0.1", proc.settings.dicom_port, ae_title=called, bind_address=(bind, 0))
    if not assoc.is_established:
        return False, None
    try:
        status = assoc.send_c_store(dataset)
        return True, (int(status.Status) if status and "Status" in status else None)
    finally:
        if assoc.is_established:
            assoc.release()


@pytest.fixture
def mr_dataset():
    import pydicom
    from pydicom.data import get_testdata_file

    return pydicom.dcmread(get_testdata_file("MR_small.dcm"))


def test_only_registered_modalities_may_store(guarded_orthanc, mr_dataset):
    called = "SPINEAGENT_T"
    assert count(guarded_orthanc) == 0
    # A stranger: association may open, the store is refused.
    _, status = store(guarded_orthanc, "STRANGER", called, mr_dataset)
    assert status != 0x0000 and count(guarded_orthanc) == 0
    # The registered AE title from another host than its registered one.
    _, status = store(guarded_orthanc, "MR_ELSEWHERE", called, mr_dataset)
    assert status != 0x0000 and count(guarded_orthanc) == 0
    # The right AE title calling the wrong AE title of ours.
    established, _ = store(guarded_orthanc, "MR_ALLOWED", "NOT_OUR_AET", mr_dataset)
    assert not established and count(guarded_orthanc) == 0
    # The registered modality from its registered host.
    assert store(guarded_orthanc, "MR_ALLOWED", called, mr_dataset) == (True, 0x0000)
    assert count(guarded_orthanc) == 1


def test_the_allowlist_is_registered_exactly_and_shown_to_admins(guarded_orthanc, client_for):
    response = client_for("admin").get("/api/dicom/modalities")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["ae_title"], body["port"]) == ("SPINEAGENT_T", guarded_orthanc.settings.dicom_port)
    assert body["modalities"] == [
        {"name": "MR_ALLOWED", "ae_title": "MR_ALLOWED", "host": "127.0.0.1", "port": 11112, "may_store": True},
        {"name": "elsewhere", "ae_title": "MR_ELSEWHERE", "host": "127.0.0.2", "port": 104, "may_store": True},
    ]  # the malformed entries were skipped, not half-registered
    for role in ("radiologist", "annotator", "nobody"):
        assert client_for(role).get("/api/dicom/modalities").status_code == 403
    log = (guarded_orthanc.settings.data_dir / "orthanc.log").read_text(errors="replace")
    assert "DICOM modality entry skipped, 'BROKEN@@nowhere'" in log


def test_an_empty_allowlist_lets_nobody_store(services, tmp_path, mr_dataset):
    from backend.devstack.services import OrthancProcess, OrthancSettings, free_port

    proc = OrthancProcess(OrthancSettings(data_dir=tmp_path / "o", http_port=free_port(), dicom_port=free_port(),
                                          announce=False)).start()
    try:
        _, status = store(proc, "ANY_SCANNER", "SPINEAGENT", mr_dataset)
        assert status != 0x0000 and count(proc) == 0
    finally:
        proc.stop()
