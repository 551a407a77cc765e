"""The AWS stand-ins refuse what the real services refuse, by the services' own models.

moto's server checks each request against botocore's model of its service before moto sees
it (tests/service_rules.py): required members, types, enums, string lengths and patterns,
numeric ranges, list and blob sizes - what botocore's client leaves to the service. Every
request of the AWS suite goes through the same check (tests/conftest.py fails a test whose
request was refused), so the suite passing shows the provider's requests are valid.
"""

from __future__ import annotations

import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from emulators import ROLE_ARN
from service_rules import compiled_pattern, summary, violations

# the issue's example: each value breaks a rule of SageMaker's model, none is caught by botocore
BAD_TRAINING_JOB = {
    "TrainingJobName": "churn_model_" + "x" * 67,  # 79 characters, with underscores
    "AlgorithmSpecification": {"TrainingImage": "example.com/sklearn:1", "TrainingInputMode": "file"},
    "RoleArn": ROLE_ARN,
    "InputDataConfig": [
        {
            "ChannelName": "train",
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": "s3://mlops-test/rules/train",
                    "S3DataDistributionType": "Replicated",
                }
            },
        }
    ],
    "OutputDataConfig": {"S3OutputPath": "s3://mlops-test/rules/output"},
    "ResourceConfig": {"InstanceType": "ml.m5.huge", "InstanceCount": 1, "VolumeSizeInGB": 10},
    "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
}


def _sagemaker_input(operation: str):
    model = botocore.session.get_session().get_service_model("sagemaker")
    return model.operation_model(operation).input_shape


def test_the_issues_training_job_is_refused_naming_each_rule(moto_server) -> None:
    server, stand_in = moto_server
    before = len(stand_in.requests_of("CreateTrainingJob"))
    client = server.client("sagemaker")
    with pytest.raises(ClientError) as refused:
        client.create_training_job(**BAD_TRAINING_JOB)
    error = refused.value.response["Error"]
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Code"] == "ValidationException"
    message = error["Message"]
    assert message.startswith("5 validation errors detected: "), message
    for rule in (
        "at 'trainingJobName' failed to satisfy constraint: Member must have length less than or equal to 63",
        "at 'trainingJobName' failed to satisfy constraint: Member must satisfy regular expression pattern",
        "Value 'file' at 'algorithmSpecification.trainingInputMode' failed to satisfy constraint: "
        "Member must satisfy enum value set: [Pipe, File, FastFile]",
        "Value 'Replicated' at 'inputDataConfig.1.member.dataSource.s3DataSource.s3DataDistributionType' "
        "failed to satisfy constraint: Member must satisfy enum value set: [FullyReplicated, ShardedByS3Key]",
        "Value 'ml.m5.huge' at 'resourceConfig.instanceType' failed to satisfy constraint: "
        "Member must satisfy enum value set: [ml.m4.xlarge",
    ):
        assert rule in message
    # moto never saw it: no job recorded, no container started
    assert len(stand_in.requests_of("CreateTrainingJob")) == before
    assert [(s, op) for s, op, _ in server.rules.take_refused()] == [("sagemaker", "CreateTrainingJob")]


def test_botocore_alone_lets_the_issues_request_through() -> None:
    """Why the check is needed: the client's own validation finds none of the five."""
    from botocore.validate import ParamValidator

    report = ParamValidator().validate(BAD_TRAINING_JOB, _sagemaker_input("CreateTrainingJob"))
    assert not report.has_errors(), report.generate_report()
    assert len(violations(_sagemaker_input("CreateTrainingJob"), BAD_TRAINING_JOB)) == 5


def test_the_corrected_request_is_accepted(aws_env) -> None:
    server = aws_env[0]
    good = {
        **{k: v for k, v in BAD_TRAINING_JOB.items() if k != "InputDataConfig"},
        "TrainingJobName": "rules-accepted",
        "AlgorithmSpecification": {"TrainingImage": "example.com/sklearn:1", "TrainingInputMode": "File"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
    }
    assert violations(_sagemaker_input("CreateTrainingJob"), good) == []
    # moto's own record only (no channel, so the stand-in's container fails the job; not asserted)
    arn = server.client("sagemaker").create_training_job(**good)["TrainingJobArn"]
    assert arn.endswith(":training-job/rules-accepted")


def test_numbers_counts_required_members_and_blobs_are_checked(moto_server) -> None:
    server, _ = moto_server
    shape = _sagemaker_input("CreateTrainingJob")
    broken = {**BAD_TRAINING_JOB, "TrainingJobName": "ok", "StoppingCondition": {"MaxRuntimeInSeconds": 0}}
    del broken["RoleArn"]
    found = violations(shape, broken)
    assert "Value null at 'roleArn' failed to satisfy constraint: Member must not be null" in found
    assert (
        "Value '0' at 'stoppingCondition.maxRuntimeInSeconds' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1" in found
    )
    tags = [{"Key": f"k{i}", "Value": "v"} for i in range(51)]
    assert any("at 'tags' failed to satisfy constraint: Member must have length less than or equal to 50"
               in f for f in violations(shape, {**BAD_TRAINING_JOB, "Tags": tags}))  # fmt: skip
    # a request body over InvokeEndpoint's 6 MB is refused by the service, not by the client
    runtime = server.client("sagemaker-runtime", config=Config(retries={"max_attempts": 1}))
    with pytest.raises(ClientError, match="Member must have length less than or equal to 6291456"):
        runtime.invoke_endpoint(EndpointName="rules-none", Body=b"x" * 6_291_457, ContentType="text/csv")
    assert [op for _, op, _ in server.rules.take_refused()] == ["InvokeEndpoint"]


def test_s3_and_data_api_requests_are_checked_too(aws_env) -> None:
    server = aws_env[0]
    counted = dict(server.rules.checked)
    server.client("s3").list_objects_v2(Bucket="mlops-test", Prefix="rules/")
    data_api = server.client("redshift-data")
    with pytest.raises(ClientError, match="at 'clusterIdentifier' failed to satisfy constraint: Member must "
                       "satisfy regular expression pattern"):  # fmt: skip
        data_api.execute_statement(Sql="SELECT 1", Database="dev", ClusterIdentifier="Cluster_1")
    assert server.rules.take_refused()[0][:2] == ("redshift-data", "ExecuteStatement")
    assert server.rules.checked["s3.ListObjectsV2"] == counted.get("s3.ListObjectsV2", 0) + 1
    assert server.rules.unmatched == []


def test_patterns_are_read_with_javas_meaning() -> None:
    # Java writes code points above U+FFFF as surrogate pairs inside a class
    pattern = compiled_pattern(r"[\u0020-\uD7FF\uE000-\uFFFD\uD800\uDC00-\uDBFF\uDFFF\t]*")
    assert pattern.fullmatch("table 😀\t") and not pattern.fullmatch("bell\x07")
    assert compiled_pattern(r"\p{L}+").fullmatch("Straße")
    assert summary(["a"]) == "1 validation error detected: a"
