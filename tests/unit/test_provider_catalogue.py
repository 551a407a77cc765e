import dataclasses
import re
from pathlib import Path

import pytest
from helpers import write_config

from core.catalogue import CATALOGUE, PROVIDER_NAMES, PROVIDERS
from core.config import load_settings
from core.errors import ConfigError, ParamError, ProviderNotAvailableError
from providers import base, get_provider


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("provider_catalogue")
    return load_settings(
        write_config(
            folder,
            local={"endpoint_port": 9999},
            aws={"region": "eu-west-1"},
            gcp={"project": "my-project-1"},
        )
    )


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


def test_a_bad_endpoint_access_log_fails_when_the_provider_is_built(tmp_path):
    path = write_config(tmp_path, local={"endpoint_access_log": "verbose"})
    with pytest.raises(ConfigError, match="endpoint_access_log = 'verbose'"):
        get_provider(load_settings(path))


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
    # a provider listed in the catalogue whose package is not written
    entry = dataclasses.replace(PROVIDERS["gcp"], module="providers.not_written_yet")
    monkeypatch.setitem(PROVIDERS, "gcp", entry)
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
    assert provider.details["region"] == "eu-west-1"


def test_gcp_provider_builds_without_touching_the_cloud(settings):
    provider = get_provider(settings.with_overrides(provider="gcp"))
    assert provider.name == "gcp"
    assert provider.details == {"bucket": "my-mlops-bucket", "prefix": "mlops", "project": "my-project-1",
                                "region": "europe-west1"}  # fmt: skip


def test_every_implemented_provider_builds_from_the_catalogue(settings):
    built = []
    for entry in CATALOGUE:
        if not entry.implemented():
            with pytest.raises(ProviderNotAvailableError, match="not implemented"):
                get_provider(settings.with_overrides(provider=entry.name))
            continue
        provider = get_provider(settings.with_overrides(provider=entry.name))
        assert isinstance(provider, base.Provider)
        assert provider.name == entry.name
        for part, interface in (("storage", base.ObjectStore), ("training", base.TrainingJobs),
                                ("registry", base.ModelRegistry), ("endpoint", base.OnlineEndpoint),
                                ("batch", base.BatchScorer), ("warehouse", base.Warehouse)):  # fmt: skip
            assert isinstance(getattr(provider, part), interface), (entry.name, part)
        built.append(entry.name)
    assert {"local", "aws", "gcp"} <= set(built)


def test_catalogue_entries_are_complete():
    assert PROVIDER_NAMES == tuple(entry.name for entry in CATALOGUE)
    assert len(set(PROVIDER_NAMES)) == len(PROVIDER_NAMES)
    for entry in CATALOGUE:
        assert re.fullmatch(r"[a-z][a-z0-9]*", entry.name), entry
        assert entry.module.startswith("providers."), entry
        assert entry.label.startswith(f"{entry.name}: "), entry
        assert entry.install_hint.startswith("pip install "), entry
        assert entry.settings_class == "" or re.fullmatch(r"[\w.]+:\w+", entry.settings_class), entry
        assert entry.prices == "" or re.fullmatch(r"[\w.]+:\w+", entry.prices), entry


def test_every_cloud_brings_its_own_prices():
    from core.catalogue import list_price

    for entry in CATALOGUE:
        if entry.name != "local" and entry.implemented():
            table = entry.load_prices()
            assert table and entry.prices.startswith(f"{entry.module}."), entry
            assert all(list_price(machine) == price for machine, price in table.items())
    assert list_price("no-such-machine") is None


def test_settings_classes_read_their_section(settings):
    from providers.aws.config import AwsSettings

    assert PROVIDERS["aws"].load_settings_class() is AwsSettings
    assert PROVIDERS["local"].load_settings_class() is None
    for entry in CATALOGUE:
        cls = entry.load_settings_class() if entry.implemented() else None
        if cls is not None:
            typed = cls.from_settings(settings.with_overrides(provider=entry.name))
            assert isinstance(typed, cls)


def test_every_name_is_in_the_param_the_ui_and_the_config_check(settings):
    from wiring.params import provider_param

    from apps.ui.app import PROVIDER_PATTERN
    from apps.ui.pages import layout

    param = provider_param()
    page = layout("Models", "models", "", "local")
    for entry in CATALOGUE:
        assert entry.name in param.schema["enum"]
        assert param.schema["values_display"][entry.name] == entry.label
        assert f'<option value="{entry.name}"' in page
        assert re.fullmatch(PROVIDER_PATTERN, entry.name)
        assert settings.with_overrides(provider=entry.name).provider == entry.name  # the config check
        assert entry.name in settings.provider_sections
    assert not re.fullmatch(PROVIDER_PATTERN, "oracle")
    with pytest.raises(ParamError, match="oracle"):
        settings.with_overrides(provider="oracle")


def test_a_missing_aws_region_is_reported_when_the_provider_is_built(tmp_path, monkeypatch):
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    path = write_config(tmp_path, aws={"region": "", "conn_id": "aws_without_region_probe"})
    with pytest.raises(ConfigError) as info:
        get_provider(load_settings(path).with_overrides(provider="aws"))
    message = str(info.value)
    assert "[aws] region" in message
    assert "region_name" in message and "aws_without_region_probe" in message


def test_missing_dependency_gives_the_install_hint(settings, tmp_path, monkeypatch):
    # a provider package that exists but imports a package that is not installed
    (tmp_path / "probe_provider_pkg.py").write_text("import package_that_is_not_installed_123\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = dataclasses.replace(
        PROVIDERS["gcp"], module="probe_provider_pkg", install_hint="pip install the-gcp-extras"
    )
    monkeypatch.setitem(PROVIDERS, "gcp", entry)
    with pytest.raises(ProviderNotAvailableError) as info:
        get_provider(settings.with_overrides(provider="gcp"))
    message = str(info.value)
    assert "package_that_is_not_installed_123" in message
    assert "pip install the-gcp-extras" in message
    assert "not implemented" not in message
