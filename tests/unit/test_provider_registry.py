import dataclasses
from pathlib import Path

import pytest
from helpers import write_config

from include.config import load_settings
from include.errors import ConfigError, ProviderNotAvailableError
from providers import base
from providers.registry import PROVIDERS, get_provider


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("provider_registry")
    return load_settings(write_config(folder, local={"endpoint_port": 9999}))


def test_local_provider_satisfies_the_contract(settings):
    provider = get_provider(settings)
    assert isinstance(provider, base.Provider)
    assert provider.name == "local"
    assert isinstance(provider.storage, base.ObjectStore)
    assert isinstance(provider.training, base.TrainingJobs)
    assert isinstance(provider.registry, base.ModelRegistry)
    assert isinstance(provider.endpoint, base.OnlineEndpoint)
    assert isinstance(provider.batch, base.BatchScorer)
    assert isinstance(provider.warehouse, base.Warehouse)


def test_local_provider_uses_the_configured_root_and_port(settings):
    provider = get_provider(settings)
    root = settings.provider_sections["local"]["root"]
    assert provider.details["root"] == root
    assert provider.details["endpoint_url"] == "http://127.0.0.1:9999"
    assert provider.storage.root == Path(root) / "storage"
    assert provider.warehouse.path == Path(root) / "warehouse.duckdb"
    assert provider.registry.root == Path(root) / "mlflow"


def test_relative_local_root_is_relative_to_the_config_file(tmp_path):
    path = write_config(tmp_path, local={"root": "state"})
    provider = get_provider(load_settings(path))
    assert provider.details["root"] == str(tmp_path / "state")


def test_unknown_provider_names_the_known_ones(settings):
    bogus = dataclasses.replace(settings, provider="oracle")  # bypasses the settings check
    with pytest.raises(ProviderNotAvailableError) as info:
        get_provider(bogus)
    message = str(info.value)
    assert "'oracle'" in message
    for name in PROVIDERS:
        assert name in message
    assert isinstance(info.value, ConfigError)  # deterministic: no retry


def test_provider_without_a_package_is_not_implemented(settings, monkeypatch):
    # a provider listed in the registry whose package is not written
    monkeypatch.setitem(PROVIDERS, "gcp", ("providers.not_written_yet", "pip install nothing"))
    with pytest.raises(ProviderNotAvailableError) as info:
        get_provider(settings.with_overrides(provider="gcp"))
    message = str(info.value)
    assert "'gcp'" in message
    assert "not implemented" in message
    assert "providers.not_written_yet" in message
    assert "'local'" in message and "'aws'" in message  # what can be used instead


def test_aws_provider_builds_without_touching_the_cloud(settings):
    provider = get_provider(settings.with_overrides(provider="aws"))
    assert provider.name == "aws"
    assert provider.details["bucket"] == "my-mlops-bucket"


def test_missing_dependency_gives_the_install_hint(settings, tmp_path, monkeypatch):
    # a provider package that exists but imports a package that is not installed
    (tmp_path / "probe_provider_pkg.py").write_text("import package_that_is_not_installed_123\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(PROVIDERS, "gcp", ("probe_provider_pkg", "pip install the-gcp-extras"))
    with pytest.raises(ProviderNotAvailableError) as info:
        get_provider(settings.with_overrides(provider="gcp"))
    message = str(info.value)
    assert "package_that_is_not_installed_123" in message
    assert "pip install the-gcp-extras" in message
    assert "not implemented" not in message
