"""Sample data (File > Open Sample > napari-dcm)."""

from __future__ import annotations

import os

SAMPLE_STUDY = os.path.join(os.path.dirname(__file__), "data", "sample_study")


def sample_study():
    """The bundled synthetic CT head study (generated, no patient data)."""
    from .api import read

    return read(SAMPLE_STUDY)
