"""Storage on AWS: S3 objects under ``s3://<bucket>/<prefix>/``, through the Airflow S3Hook.

An S3 PUT is atomic (a reader sees the old object or the new one, never half of one), so a
write is one PUT and a re-run simply overwrites the same key. A conditional write is one PUT
with ``If-Match: <ETag>`` (or ``If-None-Match: *`` to create only): S3 checks and writes in one
step, so the object's version is its ETag.
"""

from __future__ import annotations

import os
import tempfile
from functools import cached_property
from pathlib import Path
from typing import Any

from providers.base import PreconditionFailedError, check_key

# refused conditional PUTs: 412, 409 (a concurrent conditional write), 404 (If-Match, no object)
_PRECONDITION_CODES = ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "404")


class S3ObjectStore:
    """Objects ``<prefix>/<key>`` in one bucket; credentials from the Airflow Connection ``conn_id``."""

    def __init__(self, conn_id: str, bucket: str, prefix: str = "") -> None:
        self.conn_id = conn_id
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    @cached_property
    def hook(self) -> Any:
        """The S3Hook (created on first use)."""
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return S3Hook(aws_conn_id=self.conn_id)

    @property
    def client(self) -> Any:
        """The boto3 S3 client of the hook."""
        return self.hook.conn

    def object_key(self, key: str) -> str:
        """Return the S3 key that holds ``key``."""
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        """Return ``s3://bucket/prefix/key``."""
        return f"s3://{self.bucket}/{self.object_key(key)}"

    def put_bytes(self, key: str, data: bytes) -> str:
        """Write (overwrite) an object in one PUT."""
        self.client.put_object(Bucket=self.bucket, Key=self.object_key(key), Body=data)
        return self.uri(key)

    def put_file(self, key: str, path: Path) -> str:
        """Upload a local file (multipart for large files; S3 makes it visible only when complete)."""
        if not Path(path).is_file():
            raise FileNotFoundError(f"no local file {path} to upload to {self.uri(key)}")
        self.hook.load_file(str(path), self.object_key(key), bucket_name=self.bucket, replace=True)
        return self.uri(key)

    def get_bytes(self, key: str) -> bytes:
        """Read an object. Raises FileNotFoundError if it does not exist."""
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))["Body"].read()
        except self.client.exceptions.NoSuchKey:
            raise FileNotFoundError(f"no object {key!r} in {self._root()}") from None

    def get_with_version(self, key: str) -> tuple[bytes, str]:
        """Read an object and its ETag (one GET: the ETag belongs to exactly these bytes)."""
        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))
        except self.client.exceptions.NoSuchKey:
            raise FileNotFoundError(f"no object {key!r} in {self._root()}") from None
        return obj["Body"].read(), obj["ETag"]

    def put_if_match(self, key: str, data: bytes, expected_version: str | None) -> str:
        """PUT only if the object's ETag is ``expected_version`` (None: only if it is missing).

        Raises:
            PreconditionFailedError: S3 refused the PUT (412, 409 or 404); nothing was written.
        """
        from providers.aws.hooks import error_code

        condition = {"IfMatch": expected_version} if expected_version else {"IfNoneMatch": "*"}
        try:
            response = self.client.put_object(
                Bucket=self.bucket, Key=self.object_key(key), Body=data, **condition
            )
        except Exception as exc:
            code = error_code(exc)
            if code in _PRECONDITION_CODES:
                raise PreconditionFailedError(
                    f"{self.uri(key)} is not at version {expected_version or '(missing)'} ({code}): "
                    "another writer changed it; read it again"
                ) from None
            raise
        return response["ETag"]

    def get_file(self, key: str, path: Path) -> Path:
        """Download an object to ``path`` (through a temporary file, renamed when complete)."""
        from botocore.exceptions import ClientError

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            self.client.download_file(self.bucket, self.object_key(key), tmp)
            os.replace(tmp, path)
        except ClientError as exc:
            Path(tmp).unlink(missing_ok=True)
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                raise FileNotFoundError(f"no object {key!r} in {self._root()}") from None
            raise
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def exists(self, key: str) -> bool:
        """Tell whether an object exists (a HEAD request)."""
        return bool(self.hook.check_for_key(self.object_key(key), bucket_name=self.bucket))

    def list_keys(self, prefix: str = "") -> list[str]:
        """Return the keys under ``prefix`` (a string prefix, as S3 lists), sorted."""
        if prefix:
            check_key(prefix.rstrip("/"))
        root = f"{self.prefix}/" if self.prefix else ""
        keys = self.hook.list_keys(bucket_name=self.bucket, prefix=root + prefix) or []
        return sorted(k[len(root) :] for k in keys if k.startswith(root) and not k.endswith("/"))

    def delete(self, key: str) -> None:
        """Delete an object if it exists (S3 DELETE of a missing key succeeds)."""
        self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))

    def _root(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


def split_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into (bucket, key)."""
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"{uri!r} is not an s3://bucket/key URI")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key
