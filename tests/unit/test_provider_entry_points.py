"""A cloud out of this tree: an installed distribution adds its catalogue entry through ``mlops.providers``.

The plug-in here is real: a package and a ``.dist-info`` folder (METADATA and entry_points.txt,
what ``pip install`` leaves) in a temporary folder put on the path, read by
``importlib.metadata`` as any installed distribution is.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, write_config

from core import catalogue
from core.catalogue import ENTRY_POINT_GROUP, ProviderEntry, discovered_entries

PLUGIN_ENTRY = """
from core.catalogue import ProviderEntry

ENTRY = ProviderEntry(
    name="probecloud",
    module="mlops_probe_cloud",
    label="probecloud: a cloud from an installed distribution",
    install_hint="pip install mlops-probe-cloud",
    prices="mlops_probe_cloud.entry:PRICES",
)
CLASH = ProviderEntry(name="aws", module="mlops_probe_cloud", label="aws: again", install_hint="pip x")
NOT_AN_ENTRY = {"name": "dict"}
PRICES = {"probe.large": 1.5}
"""
PLUGIN_PACKAGE = '''
import dataclasses


def build_provider(settings):
    """The local provider's parts under another name: enough to show the plug-in is built."""
    from providers.local import build_provider as build_local

    return dataclasses.replace(build_local(settings), name="probecloud")
'''


@pytest.fixture
def plugin_site(tmp_path: Path) -> Path:
    """A folder holding the plug-in's package and its installed metadata."""
    site = tmp_path / "site"
    package = site / "mlops_probe_cloud"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(PLUGIN_PACKAGE)
    (package / "entry.py").write_text(PLUGIN_ENTRY)
    info = site / "mlops_probe_cloud-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mlops-probe-cloud\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\n"
        "probecloud = mlops_probe_cloud.entry:ENTRY\n"
        "broken = mlops_probe_cloud.no_such_module:ENTRY\n"
        "clash = mlops_probe_cloud.entry:CLASH\n"
        "wrong = mlops_probe_cloud.entry:NOT_AN_ENTRY\n"
    )
    return site


def test_without_plugins_the_catalogue_is_the_built_in_list():
    assert discovered_entries() == ()
    assert catalogue.CATALOGUE == catalogue.BUILT_IN


def test_an_installed_entry_point_is_discovered_and_the_bad_ones_are_left_out(
    plugin_site, monkeypatch, caplog
):
    monkeypatch.syspath_prepend(str(plugin_site))
    with caplog.at_level(logging.WARNING, logger="core.catalogue"):
        found = discovered_entries()
    assert [entry.name for entry in found] == ["probecloud"]
    assert isinstance(found[0], ProviderEntry)
    assert found[0].load_prices() == {"probe.large": 1.5}
    log = caplog.text
    assert "broken" in log and "cannot be loaded" in log
    assert "'aws' is taken" in log  # a built-in name is never replaced
    assert "wrong" in log and "is not a ProviderEntry" in log


def test_a_plugin_cloud_is_in_the_catalogue_the_config_check_and_builds(plugin_site, tmp_path):
    config = write_config(tmp_path)
    script = f"""
import json
from core.catalogue import BUILT_IN, CATALOGUE, PROVIDER_NAMES, list_price
from core.config import load_settings
from providers import get_provider

settings = load_settings({str(config)!r}).with_overrides(provider="probecloud")
print(json.dumps({{
    "names": list(PROVIDER_NAMES),
    "built_in_first": CATALOGUE[: len(BUILT_IN)] == BUILT_IN,
    "price": list_price("probe.large"),
    "provider": settings.provider,
    "built": get_provider(settings).name,
}}))
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_site), str(ROOT)])}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["names"] == ["local", "aws", "gcp", "azure", "probecloud"]
    assert result["built_in_first"]
    assert result["price"] == 1.5
    assert result["provider"] == "probecloud"
    assert result["built"] == "probecloud"
