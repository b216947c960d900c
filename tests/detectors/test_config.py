"""The ``detectors:`` section through the real config loader: the documented sample loads, and
mistakes are reported with file, line and key."""

from __future__ import annotations

import textwrap

import pytest

import detectors.config
from mlpulse.config import ConfigError, loads_config


def sample() -> str:
    doc = detectors.config.__doc__
    return textwrap.dedent(doc.split("Example::", 1)[1])


def test_documented_sample_loads():
    cfg = loads_config(sample(), "sample.yaml").detectors
    job = cfg.job("gpu_util")
    assert job.type == "conv_ae" and job.detector_config().window == 32
    assert job.policy.coalesce == "latest" and job.policy.misfire_grace_time.total_seconds() == 300
    assert job.threshold.kind == "pot" and job.source.every.total_seconds() == 60
    assert job.scales == (1, 8)


def test_bad_scales_are_refused_with_file_and_key():
    text = sample().replace("scales: [1, 8]", "scales: [8, 1]")
    with pytest.raises(ConfigError) as err:
        loads_config(text, "mlpulse.yaml")
    message = str(err.value)
    assert "detectors.jobs[0].scales" in message and "strictly increasing" in message


def test_errors_name_file_line_and_key():
    text = sample().replace("type: conv_ae", "type: conv_autoenc").replace("every: 1m", "evry: 1m")
    with pytest.raises(ConfigError) as err:
        loads_config(text, "mlpulse.yaml")
    message = str(err.value)
    assert "mlpulse.yaml:" in message and "unknown detector 'conv_autoenc'" in message
    assert "detectors.jobs[0].source.evry was not used" in message


def test_duplicate_job_names_are_refused():
    one = sample().split("jobs:\n", 1)[1]
    text = sample() + one
    with pytest.raises(ConfigError, match="unique"):
        loads_config(text, "x.yaml")


def test_documented_global_job_loads_and_global_is_refused_for_other_detectors():
    cfg = loads_config(sample(), "sample.yaml").detectors
    assert cfg.job("gpu_util").model == "per_series" and cfg.job("gpu_util_fleet").model == "global"
    text = sample().replace("model: per_series", "model: global")  # on the conv_ae job
    with pytest.raises(ConfigError) as err:
        loads_config(text, "mlpulse.yaml")
    message = str(err.value)
    assert "detectors.jobs[0].model" in message and "model: global needs a detector" in message
    assert "global_conv_ae" in message
