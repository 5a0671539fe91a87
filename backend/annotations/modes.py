"""Blind or assisted annotation: whether an open task's extraction is shown before the annotator decides.

``SPINEAGENT_ANNOTATION_MODE`` (backend/settings.py, read at call time):

* ``blind`` (default): nothing is preset and the server withholds the extraction (suggested values,
  evidence highlights, flags, the model's calls, other annotators' labels) until the annotator has
  fixed a complete first pass (a :class:`~backend.annotations.models.Reveal`) or submitted.
  Presetting every toggle makes one click confirm the labeler's errors; blind labels measure the
  labeler instead of echoing it.
* ``assisted``: toggles preset to the preferred extraction (faster where the labeler is trusted);
  the page marks rows the annotator changed.

An unknown value is logged and read as ``blind``: a typo must not quietly turn anchoring back on.
"""

from __future__ import annotations

import logging

from django.conf import settings

from .models import Annotation

log = logging.getLogger(__name__)

SETTING = "SPINEAGENT_ANNOTATION_MODE"
BLIND, ASSISTED = Annotation.BLIND, Annotation.ASSISTED
MODES = (BLIND, ASSISTED)
DEFAULT = BLIND


def current() -> str:
    value = str(settings.SPINEAGENT_ANNOTATION_MODE or DEFAULT).strip().lower()
    if value not in MODES:
        log.error("%s=%r is not one of %s; using %s", SETTING, value, ", ".join(MODES), DEFAULT)
        return DEFAULT
    return value
