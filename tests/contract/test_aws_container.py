"""The SageMaker container stand-ins run the scripts as the named container would.

A prebuilt image has the scikit-learn of its framework version; the stand-ins run the lock's.
A training or serving image of another version fails its job naming both versions, and the
serving stand-in refuses a model pickled by another scikit-learn (tests/sagemaker_container.py).
In both containers only the uploaded code folder is importable, not the project's checkout.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import joblib
import pytest
from emulators import ROLE_ARN, wait_for
from helpers import ROOT
from sagemaker_container import container_mismatch, locked_sklearn

from providers.aws.config import sklearn_image
from providers.aws.sourcedir import TRAIN_ENTRY, build_sourcedir
from providers.bundle import build_archive

OLD_IMAGE = sklearn_image("1.2-1", "us-east-1", "training")


def test_the_lock_and_the_default_image_agree() -> None:
    from providers.aws.config import AwsSettings

    assert locked_sklearn().startswith("1.9.")
    assert container_mismatch(sklearn_image(AwsSettings().sklearn_version, "us-east-1", "training")) is None
    message = container_mismatch(OLD_IMAGE)
    assert "scikit-learn 1.2," in message and f"scikit-learn {locked_sklearn()}" in message
    assert "only the prebuilt" in container_mismatch("example.com/my-own-image:1")


def _finished_training_job(server, name: str, image: str, **request) -> dict:
    client = server.client("sagemaker")
    client.create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": image, "TrainingInputMode": "File"},
        RoleArn=ROLE_ARN,
        OutputDataConfig={"S3OutputPath": f"s3://mlops-test/{name}/output"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
        **request,
    )
    done = lambda: client.describe_training_job(TrainingJobName=name)["TrainingJobStatus"] != "InProgress"  # noqa: E731
    wait_for(done, timeout=120)
    return client.describe_training_job(TrainingJobName=name)


def test_a_training_image_of_another_scikit_learn_fails_the_job_naming_both(aws_env) -> None:
    job = _finished_training_job(aws_env[0], f"sklearn-mismatch-{os.getpid()}", OLD_IMAGE)
    assert job["TrainingJobStatus"] == "Failed"
    assert "has scikit-learn 1.2" in job["FailureReason"] and locked_sklearn() in job["FailureReason"]


def test_the_training_container_imports_only_the_uploaded_code(aws_env) -> None:
    """An archive without the bundle fails, though the checkout next to the tests has core/."""
    server = aws_env[0]
    name = f"code-only-{os.getpid()}"
    s3 = server.client("s3")
    s3.put_object(
        Bucket="mlops-test", Key=f"{name}/code.tar.gz", Body=build_archive({"train.py": TRAIN_ENTRY})
    )
    s3.put_object(Bucket="mlops-test", Key=f"{name}/train/data.parquet", Body=b"unused")
    image = sklearn_image("1.9-0", "us-east-1", "training")
    channel = {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://mlops-test/{name}/train/"}}
    job = _finished_training_job(
        server, name, image,
        InputDataConfig=[{"ChannelName": "train", "DataSource": channel}],
        HyperParameters={"sagemaker_program": json.dumps("train.py"),
                         "sagemaker_submit_directory": json.dumps(f"s3://mlops-test/{name}/code.tar.gz")},
    )  # fmt: skip
    assert job["TrainingJobStatus"] == "Failed"
    assert "No module named 'core'" in job["FailureReason"]


def _doctored_model(folder: Path, version: str) -> str:
    """A model.joblib as pickled by scikit-learn ``version``; its sha256."""
    import sklearn.base
    from sklearn.preprocessing import StandardScaler

    real = sklearn.base.__version__
    sklearn.base.__version__ = version  # what BaseEstimator.__getstate__ records
    try:
        joblib.dump(StandardScaler().fit([[0.0], [1.0]]), folder / "model.joblib")
    finally:
        sklearn.base.__version__ = real
    return hashlib.sha256((folder / "model.joblib").read_bytes()).hexdigest()


def _serve(tmp_path: Path, code: Path, model: Path, digest: str) -> subprocess.CompletedProcess:
    """One request through the serving stand-in (tests/sagemaker_container.py)."""
    (tmp_path / "in").write_text('{"rows": [{"x": 1}]}')
    return subprocess.run(
        [sys.executable, str(ROOT / "tests" / "sagemaker_container.py"), "--code", str(code),
         "--model-dir", str(model), "--content-type", "application/json", "--accept", "application/json",
         str(tmp_path / "in"), str(tmp_path / "out")],
        env={**os.environ, "MODEL_SHA256": digest}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_serving_container_imports_only_the_uploaded_code(tmp_path) -> None:
    code, model = tmp_path / "code", tmp_path / "model"
    code.mkdir()
    model.mkdir()
    (code / "sagemaker_inference.py").write_bytes(
        (ROOT / "providers/aws/sagemaker_inference.py").read_bytes()
    )
    result = _serve(tmp_path, code, model, "0" * 64)
    assert result.returncode != 0 and "No module named 'core'" in result.stderr


@pytest.mark.parametrize("version", ["1.2.1", None])
def test_the_serving_stand_in_refuses_a_model_of_another_scikit_learn(tmp_path, version) -> None:
    import sklearn

    code, model = tmp_path / "code", tmp_path / "model"
    model.mkdir()
    with tarfile.open(fileobj=io.BytesIO(build_sourcedir(None))) as tar:
        tar.extractall(code, filter="data")
    result = _serve(tmp_path, code, model, _doctored_model(model, version or sklearn.__version__))
    assert result.returncode != 0
    if version:  # refused while loading, naming both versions
        assert "trained with another scikit-learn" in result.stderr
        assert (
            "from version 1.2.1 when using version" in result.stderr and sklearn.__version__ in result.stderr
        )
    else:  # the same scikit-learn loads; the file is then refused for not being a TrainedModel
        assert "not a TrainedModel" in result.stderr and "another scikit-learn" not in result.stderr
