"""Fixtures of the driver tests."""

from __future__ import annotations

import pytest


@pytest.fixture(params=[1, 100, 5000], ids=lambda n: f"N={n}")
def n_samples(request) -> int:
    """The three read sizes whose transaction counts must agree."""
    return request.param
