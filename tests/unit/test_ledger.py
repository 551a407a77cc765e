"""The alias ledger on its own (providers/ledger.py), on the local folder store.

The registries' use of it, on every backend, is in tests/contract/suites.py (RegistryContract).
These tests make the races deterministic: a store that lets another writer in at a chosen
moment.
"""

import json

import pytest

from providers.base import ANY_VERSION, PreconditionFailedError
from providers.ledger import LEDGER_PREFIX, AliasLedger, AliasState, LedgerAliases, RegistryConflictError
from providers.local.storage import LocalObjectStore


@pytest.fixture
def store(tmp_path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "storage")


class Interleaving:
    """A store whose next conditional writes first let ``before_write`` run (another writer)."""

    def __init__(self, store: LocalObjectStore) -> None:
        self.store = store
        self.before_write: list = []  # callables, one per upcoming put_if_match
        self.refused = 0

    def __getattr__(self, name):
        return getattr(self.store, name)

    def put_if_match(self, key, data, expected_version):
        if self.before_write:
            self.before_write.pop(0)()
        try:
            return self.store.put_if_match(key, data, expected_version)
        except PreconditionFailedError:
            self.refused += 1
            raise


def test_the_document_layout(store):
    ledger = AliasLedger(store)
    change = ledger.move("churn", "production", "3", "gate passed", "run-1")
    assert store.list_keys() == [f"{LEDGER_PREFIX}/churn/production.json"]
    document = json.loads(store.get_bytes(f"{LEDGER_PREFIX}/churn/production.json"))
    assert document["format"] == 1 and document["current"] == "3"
    assert document["history"] == [change.__dict__]
    assert ledger.current("churn", "staging") is None and ledger.history("churn", "staging") == []


def test_the_reason_code_is_kept_and_a_change_recorded_before_codes_still_reads(store):
    ledger = AliasLedger(store)
    ledger.move("churn", "production", "1", "drift retrain, week W05: passed", "run-1", code="drift_promoted")
    key = f"{LEDGER_PREFIX}/churn/production.json"
    document = json.loads(store.get_bytes(key))
    assert document["history"][0]["code"] == "drift_promoted"
    del document["history"][0]["code"]  # as a ledger written before reason codes holds it
    store.put_bytes(key, json.dumps(document).encode())
    assert ledger.history("churn", "production")[0].code == ""


def test_a_writer_that_loses_a_race_reads_again_and_appends_after_the_winner(store):
    racing = Interleaving(store)
    ledger, other = AliasLedger(racing), AliasLedger(store)
    ledger.move("m", "production", "1", "first", "setup")
    racing.before_write.append(lambda: other.move("m", "production", "2", "won the race", "other"))
    change = ledger.move("m", "production", "3", "lost, then retried", "me")
    assert racing.refused == 1
    assert change.previous_version == "2"  # decided again on what the winner wrote
    assert [(h.version, h.previous_version) for h in ledger.history("m", "production")] == [
        ("1", None), ("2", "1"), ("3", "2"),
    ]  # fmt: skip


def test_a_lost_race_with_expected_current_records_nothing(store):
    racing = Interleaving(store)
    ledger, other = AliasLedger(racing), AliasLedger(store)
    ledger.move("m", "production", "1", "first", "setup")
    racing.before_write.append(lambda: other.move("m", "production", "2", "won", "other"))
    assert ledger.move("m", "production", "3", "stale now", "me", expected_current="1") is None
    assert [h.version for h in ledger.history("m", "production")] == ["1", "2"]


def test_expected_current_semantics(store):
    ledger = AliasLedger(store)
    assert ledger.move("m", "a", "1", "r", "x", expected_current="1") is None  # points nowhere
    assert ledger.move("m", "a", "1", "r", "x", expected_current=None).previous_version is None
    assert ledger.move("m", "a", "1", "r", "x") is None  # already there
    assert ledger.move("m", "a", "2", "r", "x", expected_current=None) is None
    assert ledger.move("m", "a", 2, "r", "x", expected_current=1).version == "2"  # compared as text
    assert ledger.move("m", "a", "3", "r", "x", expected_current=ANY_VERSION).previous_version == "2"
    assert [h.version for h in ledger.history("m", "a")] == ["1", "2", "3"]


def test_a_writer_that_always_loses_gives_up_with_a_retryable_error(store):
    racing = Interleaving(store)
    ledger, other = AliasLedger(racing, attempts=3), AliasLedger(store)
    ledger.move("m", "production", "1", "first", "setup")
    versions = iter(["2", "1", "2"])
    racing.before_write.extend(
        [lambda: other.move("m", "production", next(versions), "busy", "other") for _ in range(3)]
    )
    with pytest.raises(RegistryConflictError, match="changed 3 times"):
        ledger.move("m", "production", "5", "never", "me")
    assert "5" not in [h.version for h in ledger.history("m", "production")]


def test_mirror_repeats_until_the_ledger_stood_still(store):
    """A mirror whose write lands after a newer move must not leave the older version behind."""
    ledger, other = AliasLedger(store), AliasLedger(store)
    ledger.move("m", "production", "1", "first", "setup")
    marker: list[str | None] = []

    def apply(state: AliasState) -> None:
        if not marker:  # while this (slow) mirror writes v1, another run moves the ledger
            other.move("m", "production", "2", "newer", "other")
        marker.append(state.current)

    applied = ledger.mirror("m", "production", apply)
    assert marker == ["1", "2"] and applied.current == "2"  # the marker ends on the ledger


class MarkedRegistry(LedgerAliases):
    """The alias half of a registry whose native marker is a list (of what each mirror wrote)."""

    def __init__(self, store: LocalObjectStore, versions: set[str]) -> None:
        self.ledger, self.versions, self.marker, self.sync = AliasLedger(store), versions, [], None

    def get_version(self, model_name: str, version: str) -> str:
        if version not in self.versions:
            raise KeyError(version)
        return version

    def alias_mirror(self, model_name: str, alias: str):
        return self.sync


def test_set_alias_mirrors_a_move_and_a_repeat_but_not_a_refused_move(store):
    """Every registry's set_alias: a repeat heals the marker, a refused move leaves it."""
    registry = MarkedRegistry(store, {"1", "2"})
    registry.sync = lambda s: registry.marker.append(s.current)
    change = registry.set_alias("m", "production", 1, "first", "setup")
    assert change.version == "1" and registry.marker == ["1"]
    registry.sync = lambda s: registry.marker.append("healed")
    assert registry.set_alias("m", "production", "1", "again", "me") is None
    assert registry.marker == ["1", "healed"]  # nothing recorded, the mirror written again
    registry.sync = lambda s: registry.marker.append("moved")
    refused = registry.set_alias("m", "production", "2", "stale", "me", expected_current=None)
    assert refused is None and registry.marker == ["1", "healed"]  # another run's: not this run's to mirror
    with pytest.raises(KeyError):
        registry.set_alias("m", "production", "3", "no such version", "me")
    registry.sync = None  # an alias without a native marker: the ledger alone
    assert registry.set_alias("m", "production", "2", "no marker", "me").previous_version == "1"
    assert [h.version for h in registry.alias_history("m", "production")] == ["1", "2"]
    assert registry.get_alias("m", "production") == "2" and registry.marker == ["1", "healed"]


@pytest.mark.parametrize("model, alias", [("a/b", "production"), ("m", "../x"), ("m", ""), ("..", "p")])
def test_names_that_cannot_be_a_key_are_refused(store, model, alias):
    with pytest.raises(ValueError):
        AliasLedger(store).move(model, alias, "1", "r", "x")
