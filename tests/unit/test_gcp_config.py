"""``[gcp]`` of astro.toml: typed settings, errors that name the key to fix."""

from __future__ import annotations

import pytest
from helpers import write_config

from include.config import load_settings
from include.errors import ConfigError
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
