"""Storage on AWS: S3 objects under ``s3://<bucket>/<prefix>/``, through the Airflow S3Hook.

An S3 PUT is atomic (a reader sees the old object or the new one, never half of one), so a
write is one PUT and a re-run simply overwrites the same key. A conditional write is one PUT
with ``If-Match: <ETag>`` (or ``If-None-Match: *`` to create only): S3 checks and writes in one
step, so the object's version is its ETag.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

from providers.base import PreconditionFailedError
from providers.bucket import BucketStore

# refused conditional PUTs: 412, 409 (a concurrent conditional write), 404 (If-Match, no object)
_PRECONDITION_CODES = ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "404")


class S3ObjectStore(BucketStore):
    """Objects ``<prefix>/<key>`` in one bucket; credentials from the Airflow Connection ``conn_id``."""

    def __init__(self, conn_id: str, bucket: str, prefix: str = "") -> None:
        super().__init__(conn_id, prefix)
        self.bucket = bucket

    @cached_property
    def hook(self) -> Any:
        """The S3Hook (created on first use)."""
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return S3Hook(aws_conn_id=self.conn_id)

    @property
    def client(self) -> Any:
        """The boto3 S3 client of the hook."""
        return self.hook.conn

    @property
    def bucket_uri(self) -> str:
        """``s3://bucket``."""
        return f"s3://{self.bucket}"

    def _write(self, name: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=name, Body=data)

    def _upload(self, name: str, path: Path) -> None:
        # multipart for large files: S3 makes the object visible only when complete
        self.hook.load_file(str(path), name, bucket_name=self.bucket, replace=True)

    def _read(self, name: str) -> tuple[bytes, str]:
        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=name)
        except self.client.exceptions.NoSuchKey:
            raise FileNotFoundError(name) from None
        return obj["Body"].read(), obj["ETag"]  # one GET: the ETag belongs to exactly these bytes

    def _download(self, name: str, path: Path) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.download_file(self.bucket, name, str(path))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                raise FileNotFoundError(name) from None
            raise

    def _exists(self, name: str) -> bool:
        return bool(self.hook.check_for_key(name, bucket_name=self.bucket))  # a HEAD request

    def _names(self, prefix: str) -> list[str]:
        return self.hook.list_keys(bucket_name=self.bucket, prefix=prefix) or []

    def _remove(self, name: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=name)  # a DELETE of a missing key succeeds

    def put_if_match(self, key: str, data: bytes, expected_version: str | None) -> str:
        """PUT only if the object's ETag is ``expected_version`` (None: only if it is missing).

        Raises:
            PreconditionFailedError: S3 refused the PUT (412, 409 or 404); nothing was written.
        """
        from providers.aws.hooks import error_code

        condition = {"IfMatch": expected_version} if expected_version else {"IfNoneMatch": "*"}
        try:
            response = self.client.put_object(
                Bucket=self.bucket, Key=self.object_name(key), Body=data, **condition
            )
        except Exception as exc:
            code = error_code(exc)
            if code in _PRECONDITION_CODES:
                raise PreconditionFailedError(
                    f"{self.uri(key)} is not at version {expected_version or '(missing)'} ({code}): "
                    "another writer changed it; read it again"
                ) from None
            raise
        return str(response["ETag"])


def split_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into (bucket, key)."""
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"{uri!r} is not an s3://bucket/key URI")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key
