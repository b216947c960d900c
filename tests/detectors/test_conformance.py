"""Every detector registered under ``mlpulse.detectors`` runs through the same checks."""

from __future__ import annotations

import pytest

from detectors.checks import yield_checks
from detectors.registry import detector_class, names

TF_DETECTORS = {"conv_ae", "global_conv_ae", "lstm_forecaster", "ensemble"}  # ensemble: its test config holds a conv_ae


def _cases():
    for name in names():
        cls = detector_class(name)
        marks = [pytest.mark.slow] if name in TF_DETECTORS else []
        for check in yield_checks(cls):
            label = check.__name__.removeprefix("check_")
            yield pytest.param(cls, check, id=f"{name}:{label}", marks=marks)


def test_every_known_detector_is_covered():
    assert {"robust_z", "ewma", "conv_ae", "global_conv_ae", "lstm_forecaster", "ensemble"} <= set(names())


@pytest.mark.parametrize("cls,check", list(_cases()))
def test_conformance(cls, check):
    check(cls)
