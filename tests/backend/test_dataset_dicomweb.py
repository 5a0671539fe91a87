"""spinefm dataset build from a real Orthanc over DICOMweb (QIDO-RS + WADO-RS, with credentials): the same
records as the phantom source; a wrong password fails the source, not silently."""

from __future__ import annotations

import numpy as np
import pytest

from spinefm.cli import main
from spinefm.dataset import Dataset

from .conftest import _phantom_study_files


@pytest.fixture
def stored(orthanc_admin):
    for _, data in _phantom_study_files(31, 0):
        orthanc_admin.post_instance(data)
    return orthanc_admin


def test_dicomweb_source_reads_studies_from_orthanc(orthanc, stored, tmp_path, monkeypatch):
    import spine_phantom

    uid = spine_phantom.generate_study(31, 0).study_instance_uid
    monkeypatch.setenv("TEST_ORTHANC_PASSWORD", orthanc.settings.gateway_password)
    out = tmp_path / "ds"
    assert main(["dataset", "build", "--out", str(out), "--dicomweb", orthanc.settings.url + "/dicom-web",
                 "--user", orthanc.settings.gateway_username, "--password-env", "TEST_ORTHANC_PASSWORD",
                 "--study", uid, "--img-size", "32", "--no-progress"]) == 0
    ds = Dataset(out)
    assert [e.key for e in ds.entries] == [uid] and ds.synthetic  # the phantom's DICOM says so
    assert ds.sources[0]["kind"] == "dicomweb"
    ref_out = tmp_path / "ph"
    assert main(["dataset", "build", "--out", str(ref_out), "--phantom", "1", "--phantom-seed", "31",
                 "--phantom-start", "0", "--phantom-config", "{}", "--img-size", "32", "--no-progress"]) == 0
    (rec,), (ref,) = ds.cases(None), Dataset(ref_out).cases(None)
    assert [s.series_instance_uid for s in rec.series] == [s.series_instance_uid for s in ref.series]
    for a, b in zip(rec.series, ref.series):  # only the series inference reads were retrieved (no axial)
        assert a.sop_instance_uids == b.sop_instance_uids and np.array_equal(a.pixels, b.pixels)


def test_dicomweb_with_a_wrong_password_is_a_listed_failure(orthanc, stored, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TEST_ORTHANC_PASSWORD", "wrong")
    out = tmp_path / "ds"
    with pytest.raises(SystemExit, match="401"):
        main(["dataset", "build", "--out", str(out), "--dicomweb", orthanc.settings.url + "/dicom-web",
              "--user", orthanc.settings.gateway_username, "--password-env", "TEST_ORTHANC_PASSWORD",
              "--img-size", "32", "--no-progress"])
    assert not (out / "dataset.json").exists()
