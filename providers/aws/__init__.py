"""The AWS provider: S3, SageMaker (training, Model Registry, endpoints, batch transform), Redshift.

Everything goes through the Airflow amazon provider's hooks with the credentials of the Airflow
Connection named in ``[aws] conn_id`` of astro.toml (the warehouse: ``[aws] warehouse_conn_id``).
Cloud SDKs are imported inside methods only, so loading this package is cheap.

Layout in the bucket, under ``[aws] prefix``:

    <storage keys>                  the same keys as the local provider (raw/, validated/, training/ ...)
    _sagemaker/code/<hash>/sourcedir.tar.gz    the training/inference scripts (script mode)
    _sagemaker/registry/<model>/...            registered artifacts (and registration claims)
    _registry/aliases/<model>/<alias>.json     the alias ledger (providers/ledger.py)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from providers.base import Provider

if TYPE_CHECKING:
    from core.config import Settings


def build_provider(settings: Settings) -> Provider:
    """Build the AWS provider from the ``[aws]`` section and the ``aws`` hardware profiles.

    Raises:
        ConfigError: a setting is invalid, or no region is set (``[aws] region`` or the
            connection's ``region_name``).
    """
    from providers.aws.batch import SageMakerBatchScorer
    from providers.aws.config import AwsSettings
    from providers.aws.endpoint import SageMakerEndpoint
    from providers.aws.hooks import region_of
    from providers.aws.registry import SageMakerModelRegistry
    from providers.aws.storage import S3ObjectStore
    from providers.aws.training import SageMakerTrainingJobs
    from providers.aws.warehouse import build_warehouse

    aws = AwsSettings.from_settings(settings)
    region = region_of(aws.conn_id, aws.region)  # a missing region fails here, saying what to set
    storage = S3ObjectStore(aws.conn_id, aws.bucket, aws.prefix)
    registry = SageMakerModelRegistry(aws, storage)
    endpoint = SageMakerEndpoint(aws, storage, registry, settings.dataset)
    return Provider(
        name="aws",
        storage=storage,
        training=SageMakerTrainingJobs(aws, storage),
        registry=registry,
        endpoint=endpoint,
        batch=SageMakerBatchScorer(aws, storage, endpoint, settings.dataset),
        warehouse=build_warehouse(aws),
        details={"bucket": aws.bucket, "prefix": aws.prefix, "region": region},
    )
