"""Every SageMaker name the AWS provider builds is valid for every model name the settings accept.

The rules (maximum length, pattern) are read from botocore's model of the SageMaker API, the
same one the service validates against, not copied by hand.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from helpers import write_config

from core.config import load_settings
from core.errors import ConfigError
from lifecycle.train import _job_name
from providers import get_provider
from providers.aws.names import MAX_LENGTH, NAME_PATTERN, is_valid, sagemaker_name
from providers.aws.registry import group_name
from providers.aws.training import attempt_name
from providers.base import ModelVersion

# the longest model name [project] model_name accepts (^[a-z][a-z0-9_]{0,62}$), with underscores
LONGEST = "m" + "_x" * 31
MODEL_NAMES = [
    "model",
    "churn_model",
    "a",
    "a_",  # ends with an underscore: a trailing hyphen if only replaced
    "b__c",
    "x" * 63,
    LONGEST,
    LONGEST[:-1] + "_",
    "m" * 40 + "_" * 22 + "z",
]
WEEKS = ["2026-W05", "2026-W53"]


def _rule(operation: str, member: str) -> tuple[int, re.Pattern[str]]:
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    shape = model.operation_model(operation).input_shape.members[member]
    return shape.metadata["max"], re.compile(shape.metadata["pattern"])


RULES = {
    "training job": _rule("CreateTrainingJob", "TrainingJobName"),
    "transform job": _rule("CreateTransformJob", "TransformJobName"),
    "model": _rule("CreateModel", "ModelName"),
    "endpoint": _rule("CreateEndpoint", "EndpointName"),
    "endpoint config": _rule("CreateEndpointConfig", "EndpointConfigName"),
    "model package group": _rule("CreateModelPackageGroup", "ModelPackageGroupName"),
    "model package group (in a package)": _rule("CreateModelPackage", "ModelPackageGroupName"),
}


def _assert_valid(kind: str, name: str) -> None:
    kinds = [k for k in RULES if k.startswith(kind)]
    assert kinds, kind
    for key in kinds:
        maximum, pattern = RULES[key]
        assert 1 <= len(name) <= maximum, (key, name, len(name))
        assert pattern.fullmatch(name), (key, name)


def _version(model_name: str, number: int) -> ModelVersion:
    sha = f"{number:02d}" * 32
    return ModelVersion(model_name, str(number), "s3://b/k/model.tar.gz", sha, f"key-{number}")


class _FakeS3:
    def head_object(self, Bucket: str, Key: str) -> dict[str, str]:  # noqa: N803 (boto's names)
        return {"ETag": '"0123456789abcdef"'}


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    return write_config(tmp_path_factory.mktemp("aws_names"), aws={"region": "eu-west-1"})


def _provider(config, model_name: str):
    settings = load_settings(config)
    settings = settings.__class__(**{**settings.__dict__, "model_name": model_name})
    provider = get_provider(settings.with_overrides(provider="aws"))
    provider.storage.__dict__["hook"] = SimpleNamespace(conn=_FakeS3())  # no S3 call for the ETag
    return provider


def test_the_pattern_and_length_are_sagemakers():
    names = [rule for kind, rule in RULES.items() if "(in a package)" not in kind]  # that one allows an ARN
    assert {maximum for maximum, _ in names} == {MAX_LENGTH}
    for name in ["a", "a-b", "a--b", "A9", "x" * 63, "a-", "-a", "a_b", "x" * 64, ""]:
        expected = all(len(name) <= maximum and pattern.fullmatch(name) for maximum, pattern in names)
        assert is_valid(name) == expected, name
        assert bool(NAME_PATTERN.fullmatch(name) and len(name) <= MAX_LENGTH) == expected, name


@pytest.mark.parametrize("model_name", MODEL_NAMES)
def test_every_name_is_valid_for_every_accepted_model_name(config, model_name):
    provider = _provider(config, model_name)
    assert provider.details["region"] == "eu-west-1"
    # training jobs: the stage's name, then the retries' names
    for week in WEEKS:
        job = _job_name(model_name, week, "fingerprint")
        assert re.fullmatch(r"[a-z0-9-]{1,63}", job)  # the job_name Param of evaluate/register
        for attempt in (1, 2, 3):
            _assert_valid("training job", attempt_name(job, attempt))
        assert len({attempt_name(job, n) for n in (1, 2, 3)}) == 3
    # the registry, the endpoint, its configs and models, batch transform jobs
    _assert_valid("model package group", group_name(model_name))
    endpoint = provider.endpoint
    _assert_valid("endpoint", endpoint.endpoint_name(model_name))
    aws = endpoint.aws
    _assert_valid("endpoint", aws.endpoint)
    models, configs, transforms = set(), set(), set()
    for number in (1, 2, 10, 123456789):
        version = _version(model_name, number)
        model = endpoint.sagemaker_model_name(version)
        _assert_valid("model", model)
        config_name = endpoint._config_name(model)
        _assert_valid("endpoint config", config_name)
        base = provider.batch.job_name(version, "predictions/input.parquet")
        _assert_valid("transform job", base)
        for attempt in (2, 3):
            _assert_valid("transform job", sagemaker_name(base, f"a{attempt}"))
        models.add(model)
        configs.add(config_name)
        transforms.add(base)
    # a version never gets the name of another (a long name is cut, never to a common head)
    assert len(models) == len(configs) == len(transforms) == 4


def test_the_stage_job_name_of_two_long_model_names_differs():
    first, second = LONGEST, LONGEST[:-1] + "y"
    assert _job_name(first, "2026-W05", "fp") != _job_name(second, "2026-W05", "fp")
    assert sagemaker_name(first) != sagemaker_name(second)


def test_names_that_fit_are_unchanged():
    # resources created before this helper keep their names
    assert group_name("churn_model") == "churn-model"
    assert group_name("b__c") == "b--c"
    assert sagemaker_name("mlops-churn_model") == "mlops-churn-model"
    assert sagemaker_name("churn-model", "v3-abcdef12") == "churn-model-v3-abcdef12"
    assert _job_name("churn_model", "2026-W05", "fp").startswith("churn-model-2026-w05-")
    assert attempt_name("churn-model-2026-w05-0123456789", 2) == "churn-model-2026-w05-0123456789-a2"


def test_a_long_name_keeps_its_suffix_and_never_ends_with_a_hyphen():
    name = sagemaker_name("a" * 59 + "_" * 10, "a2")
    assert len(name) == MAX_LENGTH
    assert name.endswith("-a2")
    assert is_valid(name)
    for base in ("x_", "x__", "_x", "x" * 62 + "_"):
        assert is_valid(sagemaker_name(base)), base
        assert is_valid(sagemaker_name(base, "a2")), base
    assert sagemaker_name("x_") != sagemaker_name("x")  # two model names, two names


def test_an_invalid_endpoint_name_is_a_config_error(tmp_path):
    path = write_config(tmp_path, aws={"region": "eu-west-1", "endpoint_name": "my_endpoint"})
    with pytest.raises(ConfigError, match=r"\[aws\] endpoint_name"):
        get_provider(load_settings(path).with_overrides(provider="aws"))
