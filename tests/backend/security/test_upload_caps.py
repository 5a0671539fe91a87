"""Uploads are streamed to disk with caps (issue 17): a zip bomb is refused after at most the cap's worth of
bytes and never expanded in memory; too many entries, one file too large, a request too large: 413 with the
file named, nothing stored. Member names cannot write outside the upload's folder."""

from __future__ import annotations

import io
import tracemalloc
import zipfile

import pytest

pytestmark = [pytest.mark.security, pytest.mark.services, pytest.mark.django_db]


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_a_zip_bomb_is_refused_without_expanding_it_in_memory(orthanc, orthanc_admin, client_for, upload, settings):
    settings.SPINEAGENT_UPLOAD_MAX_FILE_BYTES = 64 * 1024 * 1024
    settings.SPINEAGENT_UPLOAD_MAX_EXPANDED_BYTES = 32 * 1024 * 1024
    bomb = zipped({f"slice{i}.dcm": b"\0" * (16 * 1024 * 1024) for i in range(40)})  # 640 MB from a few hundred KB
    assert len(bomb) < 1024 * 1024
    before = orthanc_admin.count_instances()
    admin = client_for("admin")
    assert upload(admin, []).status_code == 400  # loads every view module first: imports are not the upload's
    tracemalloc.start()
    try:
        response = upload(admin, [("bomb.zip", bomb)])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 413, response.content
    body = response.json()
    assert body["error"] == "too_large" and body["detail"] == "nothing was stored"
    assert body["files"][0]["file"].startswith("bomb.zip/") and "expands to more than" in body["files"][0]["reason"]
    assert peak < 24 * 1024 * 1024, f"the upload held {peak / 2**20:.0f} MiB in Python memory"
    assert orthanc_admin.count_instances() == before


def test_too_many_entries_and_too_large_members_are_refused(orthanc, client_for, upload, settings, phantom_files):
    settings.SPINEAGENT_UPLOAD_MAX_FILES = 5
    files = phantom_files(seed=1703)[:6]
    response = upload(client_for("admin"), [("many.zip", zipped(dict(files)))])
    assert response.status_code == 413 and "more than 5 files" in response.json()["files"][0]["reason"]
    settings.SPINEAGENT_UPLOAD_MAX_FILES = 100
    settings.SPINEAGENT_UPLOAD_MAX_FILE_BYTES = 1000
    response = upload(client_for("admin"), [("big.zip", zipped({"a.dcm": b"\0" * 5000}))])
    assert response.status_code == 413 and response.json()["files"] == [
        {"file": "big.zip/a.dcm", "reason": "larger than 1000 bytes"}]
    response = upload(client_for("admin"), [files[0]])  # a plain file above the per-file cap
    assert response.status_code == 413


def test_a_request_declared_too_large_is_refused_before_it_is_read(client_for, settings):
    settings.SPINEAGENT_MAX_UPLOAD_BYTES = 1000
    response = client_for("admin").generic("POST", "/api/studies/upload", b"x" * 10,
                                           CONTENT_TYPE="multipart/form-data; boundary=x", CONTENT_LENGTH="50000")
    assert response.status_code == 413 and "at most 1000 bytes" in response.json()["detail"]


def test_member_names_never_choose_where_files_are_written(tmp_path, phantom_files):
    from backend.studies.dicom_files import UploadWorkspace, read_upload

    name, data = phantom_files(seed=1704)[0]
    archive = zipped({"../../../../tmp/escaped.dcm": data, "/etc/absolute.dcm": data, "ok/../../x.dcm": data})
    with UploadWorkspace() as workspace:
        instances = read_upload([("evil.zip", archive)], workspace)
        assert [i.name for i in instances] == ["evil.zip/../../../../tmp/escaped.dcm", "evil.zip//etc/absolute.dcm",
                                               "evil.zip/ok/../../x.dcm"]  # names for messages only
        assert all(i.path.parent == workspace.root for i in instances)
        root = workspace.root
    assert not root.exists()  # the workspace is gone with the upload
