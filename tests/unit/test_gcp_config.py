"""``[gcp]`` of astro.toml: typed settings, errors that name the key to fix."""

from __future__ import annotations

import pytest
from helpers import write_config

from core.config import load_settings
from core.errors import ConfigError
from providers.gcp.config import GcpSettings, prebuilt_sklearn_image


def gcp_of(tmp_path, **gcp) -> GcpSettings:
    return GcpSettings.from_settings(
        load_settings(write_config(tmp_path, project={"provider": "gcp"}, gcp=gcp))
    )


def test_the_shipped_section_reads(tmp_path):
    gcp = gcp_of(tmp_path)
    assert (gcp.conn_id, gcp.bucket, gcp.region, gcp.model_name) == (
        "google_cloud_default", "my-mlops-bucket", "europe-west1", "churn",
    )  # fmt: skip
    assert gcp.location == "europe-west1" and gcp.endpoint_display_name == "mlops-churn"
    assert gcp.image("training") == "europe-docker.pkg.dev/vertex-ai/training/sklearn-cpu.1-6:latest"


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"bucket": "Bad Bucket"}, "[gcp] bucket"),
        ({"prefix": "/abs"}, "[gcp] prefix"),
        ({"region": "Europe"}, "[gcp] region"),
        ({"project": "1bad"}, "[gcp] project"),
        ({"dataset": "my-dataset"}, "[gcp] dataset"),
        ({"vertex_api_endpoint": "http://x y"}, "[gcp] vertex_api_endpoint"),
        ({"monitoring_api_endpoint": "http://x y"}, "[gcp] monitoring_api_endpoint"),
        ({"poll_seconds": 0}, "[gcp] poll_seconds"),
        ({"poll_seconds": "30"}, "poll_seconds = '30' should be of type int"),
        ({"buckett": "x"}, "unknown key(s) ['buckett'] in [gcp]"),
        ({"model_name": "x"}, "set [project] model_name"),
    ],
)
def test_a_bad_value_names_its_key(tmp_path, values, says):
    with pytest.raises(ConfigError) as info:
        gcp_of(tmp_path, **values)
    assert says in str(info.value)


def test_prebuilt_images_follow_the_region():
    assert prebuilt_sklearn_image("prediction", "1.5", "us-central1").startswith("us-docker.pkg.dev/")
    assert prebuilt_sklearn_image("training", "1.6", "me-west1").startswith("us-docker.pkg.dev/")
    with pytest.raises(ValueError):
        prebuilt_sklearn_image("serving", "1.6", "us-central1")


def test_a_missing_project_is_reported_when_the_provider_is_built(tmp_path, monkeypatch):
    from emulators import gcp_connection_env

    from providers import get_provider

    conn = gcp_connection_env("gcp_noproject", project="")
    monkeypatch.setenv(*next(iter(conn.items())))
    settings = load_settings(
        write_config(tmp_path, project={"provider": "gcp"}, gcp={"conn_id": "gcp_noproject"})
    )
    with pytest.raises(ConfigError, match=r"set \[gcp\] project"):
        get_provider(settings)


def test_hardware_profiles_name_their_key(tmp_path):
    from providers.gcp.config import InferenceProfile, TrainingProfile

    assert TrainingProfile.from_mapping({"machine_type": "n1-standard-8", "spot": True}).spot
    for values, says in (
        ({"machine_typ": "x"}, "unknown key(s) ['machine_typ'] in [hardware.training.gcp]"),
        ({"accelerator_type": "NVIDIA_TESLA_T4"}, "accelerator_type and accelerator_count go together"),
        ({"accelerator_type": "GPU", "accelerator_count": 1}, "accelerator_type = 'GPU'"),
        ({"max_run_seconds": 5}, "max_run_seconds must be between"),
    ):
        with pytest.raises(ConfigError, match=None) as info:
            TrainingProfile.from_mapping(values)
        assert says in str(info.value)
    with pytest.raises(ConfigError, match=r"\[hardware.inference.gcp\] machine_type"):
        InferenceProfile.from_mapping({"machine_type": "big"})
