"""Phantom studies shared by the phantom tests (generated once per session: the machine is small)."""

import pytest

from spinefm.conditions import CONDITION_KEYS
from spine_phantom import PhantomConfig, generate_study

ALL_ON = {k: 1.0 for k in CONDITION_KEYS}


@pytest.fixture(scope="session")
def lumbar_study():
    return generate_study(3, 5, PhantomConfig(regions=("lumbar",)))


@pytest.fixture(scope="session")
def loaded_studies():
    """Studies with every condition switched on, across regions, so all 17 conditions get drawn."""
    out = []
    for i, regions in enumerate([("lumbar",), ("cervical",), ("thoracic",)]):
        cfg = PhantomConfig(regions=regions, prevalence=ALL_ON, uncertain_fraction=0.0, other_sequence_probability=1.0,
                            image_size=(160, 160))
        out.append((cfg, generate_study(11, i, cfg)))
    return out
