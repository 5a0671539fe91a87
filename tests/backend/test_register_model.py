"""manage.py register_model: a bundle registers with the manifest's own fingerprint; a directory that is not a
bundle, or whose manifest is damaged, is refused in one line naming the file and nothing is registered."""

from __future__ import annotations

import hashlib
import shutil

import pytest
from django.core.management import CommandError, call_command

from backend.inference.models import ModelVersion

pytestmark = [pytest.mark.django_db]


def test_register_records_the_manifest_sha256(settings):
    call_command("register_model", str(settings.SPINEAGENT_DEFAULT_BUNDLE))
    mv = ModelVersion.objects.get()
    raw = (settings.SPINEAGENT_DEFAULT_BUNDLE / "manifest.json").read_bytes()
    assert mv.manifest_sha256 == hashlib.sha256(raw).hexdigest() and mv.state == ModelVersion.CANDIDATE


def test_not_a_bundle_and_a_damaged_manifest_are_refused_in_one_line(settings, tmp_path):
    with pytest.raises(CommandError, match="is not a model bundle"):
        call_command("register_model", str(tmp_path))
    copy = tmp_path / "bundle"
    shutil.copytree(settings.SPINEAGENT_DEFAULT_BUNDLE, copy)
    (copy / "manifest.json").write_text('{"format": "spinefm-bundle/1"}')
    with pytest.raises(CommandError, match=r"manifest.json lacks"):
        call_command("register_model", str(copy))
    (copy / "manifest.json").write_text("{not json")
    with pytest.raises(CommandError, match="not valid JSON"):
        call_command("register_model", str(copy))
    assert not ModelVersion.objects.exists()
