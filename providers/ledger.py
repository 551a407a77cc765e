"""One alias ledger for every model registry, on any ObjectStore's conditional writes.

No cloud registry keeps what rollback needs: SageMaker has no aliases (only an approval status,
and only its latest change), Vertex AI and MLflow keep an alias's current target but not who
moved it, when and why. So every registry keeps its aliases here, in one JSON object per
(model, alias) in the provider's own storage:

    _registry/aliases/<model_name>/<alias>.json
        {"format": 1, "model_name": ..., "alias": ..., "current": "3",
         "history": [{AliasChange fields}, ...]}          (oldest change first)

A move is a compare-and-set of that object (``ObjectStore.put_if_match`` with the version read
by ``get_with_version``): of two racing writers exactly one wins; the other re-reads, decides
again (its ``expected_current`` may no longer hold: then it records nothing) and retries. The
history is therefore linear: each change starts where the one before it ended.

The ledger is the truth. A registry's native marker (SageMaker approval status, an MLflow or
Vertex AI alias, an Azure ML tag) is a mirror written after the ledger moved, by
:meth:`AliasLedger.mirror`, which repeats until the ledger did not move while it wrote, so
racing mirrors end on the ledger's final state.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from core.errors import MLOpsError
from providers.base import (
    ANY_VERSION,
    AliasChange,
    ModelVersion,
    ObjectStore,
    PreconditionFailedError,
    check_key,
)

log = logging.getLogger(__name__)
LEDGER_PREFIX = "_registry/aliases"
REGISTRATION_FILE = "registration.json"  # a registration's run record, beside its artifact
FORMAT = 1
_NAME = re.compile(r"^[A-Za-z0-9_.=\-]+\Z")


class RegistryConflictError(MLOpsError):
    """Other writers kept winning a registry compare-and-set (retryable: run the task again)."""


@dataclass(frozen=True)
class AliasState:
    """An alias as the ledger holds it now."""

    current: str | None  # the version the alias points at (None: nowhere yet)
    history: tuple[AliasChange, ...]  # oldest first
    object_version: str | None  # the store's version of the ledger object (None: no object yet)


class AliasLedger:
    """The aliases of every model of one registry, kept in ``store`` under ``prefix``.

    Args:
        store: the provider's ObjectStore (it must implement the conditional writes).
        prefix: the folder of the ledger objects in the store.
        attempts: compare-and-set attempts of one move before RegistryConflictError.
    """

    def __init__(self, store: ObjectStore, prefix: str = LEDGER_PREFIX, attempts: int = 50) -> None:
        self.store = store
        self.prefix = prefix.strip("/")
        self.attempts = attempts

    def key(self, model_name: str, alias: str) -> str:
        """The ledger object of one alias of one model."""
        for what, name in (("model name", model_name), ("alias", alias)):
            if not isinstance(name, str) or not _NAME.match(name) or name in (".", ".."):
                raise ValueError(
                    f"{what} {name!r} cannot name a ledger object: use letters, digits, '_', '-', '.'"
                )
        return check_key(f"{self.prefix}/{model_name}/{alias}.json")

    def read(self, model_name: str, alias: str) -> AliasState:
        """The alias now: where it points, its history and the ledger object's version."""
        try:
            data, object_version = self.store.get_with_version(self.key(model_name, alias))
        except FileNotFoundError:
            return AliasState(None, (), None)
        document = json.loads(data)
        history = tuple(AliasChange(**entry) for entry in document.get("history", []))
        return AliasState(document.get("current"), history, object_version)

    def current(self, model_name: str, alias: str) -> str | None:
        """The version the alias points at, or None."""
        return self.read(model_name, alias).current

    def history(self, model_name: str, alias: str) -> list[AliasChange]:
        """The alias's changes, oldest first."""
        return list(self.read(model_name, alias).history)

    def move(
        self,
        model_name: str,
        alias: str,
        version: str,
        reason: str,
        actor: str,
        expected_current: str | None | object = ANY_VERSION,
        code: str = "",
    ) -> AliasChange | None:
        """Point the alias at ``version`` and append the change, in one compare-and-set.

        The semantics of ``ModelRegistry.set_alias`` (the caller checks that ``version``
        exists): ``expected_current`` moves it only if the alias points at that version now
        (None: nowhere); the default moves it whatever it points at.

        Returns:
            The change, or None (nothing recorded) when the alias already points at
            ``version`` or does not point at ``expected_current``.

        Raises:
            RegistryConflictError: other writers won every one of ``attempts`` rounds.
        """
        version = str(version)
        expected = expected_current
        if expected is not ANY_VERSION and expected is not None:
            expected = str(expected)
        key = self.key(model_name, alias)
        for attempt in range(self.attempts):
            state = self.read(model_name, alias)
            if state.current == version:
                return None
            if expected is not ANY_VERSION and state.current != expected:
                return None
            now = datetime.now(UTC).isoformat()
            if state.history and state.history[-1].changed_at > now:  # another host's clock ahead
                now = state.history[-1].changed_at
            change = AliasChange(model_name, alias, version, state.current, reason, actor, now, str(code))
            document = {
                "format": FORMAT,
                "model_name": model_name,
                "alias": alias,
                "current": version,
                "history": [asdict(c) for c in (*state.history, change)],
            }
            try:
                self.store.put_if_match(key, json.dumps(document, indent=1).encode(), state.object_version)
            except PreconditionFailedError:
                # another writer moved it between our read and write: read again and decide again
                time.sleep(random.uniform(0, min(0.25, 0.005 * 2**attempt)))
                continue
            log.info("%s %s: v%s -> v%s (%s, %s)", model_name, alias, state.current, version, reason, actor)
            return change
        raise RegistryConflictError(
            f"alias {alias!r} of model {model_name!r} changed {self.attempts} times while this run "
            f"tried to move it to v{version} ({self.store.uri(key)}); run the task again"
        )

    def mirror(self, model_name: str, alias: str, apply: Callable[[AliasState], None]) -> AliasState:
        """Bring a registry's native marker in line with the ledger; return the state applied.

        ``apply`` sets the marker from the ledger's state (idempotently). It is called again
        whenever the ledger moved while it ran, so of several racing mirrors the last one to
        finish writes the ledger's final state, and a move's mirror never undoes a newer move.
        """
        state = self.read(model_name, alias)
        for _ in range(self.attempts):
            apply(state)
            after = self.read(model_name, alias)
            if after.object_version == state.object_version:
                return state
            state = after
        raise RegistryConflictError(
            f"alias {alias!r} of model {model_name!r} kept moving while its registry marker was "
            "written; run the task again"
        )


class LedgerAliases:
    """The alias methods of a model registry whose aliases live in its :class:`AliasLedger`.

    A registry inherits ``get_alias``, ``set_alias`` and ``alias_history`` (``ModelRegistry``'s)
    from here and adds only its difference, :meth:`alias_mirror`: how its native marker follows
    the ledger. It sets ``self.ledger`` and has ``get_version``.
    """

    ledger: AliasLedger

    if TYPE_CHECKING:

        def get_version(self, model_name: str, version: str) -> ModelVersion:
            """The registry's own (``ModelRegistry.get_version``)."""

    def alias_mirror(self, model_name: str, alias: str) -> Callable[[AliasState], None] | None:
        """The writer of the registry's native marker of ``alias`` (see :meth:`AliasLedger.mirror`).

        None (this default): the alias has no native marker, the ledger alone holds it.
        """
        return None

    def get_alias(self, model_name: str, alias: str) -> ModelVersion | None:
        """The version the alias points at (in the ledger), or None."""
        current = self.ledger.current(model_name, alias)
        return self.get_version(model_name, current) if current is not None else None

    def set_alias(
        self,
        model_name: str,
        alias: str,
        version: str,
        reason: str,
        actor: str,
        expected_current: str | None | object = ANY_VERSION,
        code: str = "",
    ) -> AliasChange | None:
        """Move the alias in the ledger (a compare-and-set), then mirror it (:meth:`alias_mirror`).

        Setting the alias where it already points records nothing but mirrors again, which
        heals a mirror that a killed run left half done; a move refused by ``expected_current``
        (the alias points elsewhere) mirrors nothing: that is another run's move, and that run
        mirrors it. See ``ModelRegistry.set_alias``.

        Raises:
            KeyError: the version does not exist (nothing moves).
        """
        version = str(version)
        self.get_version(model_name, version)  # KeyError before anything moves
        change = self.ledger.move(model_name, alias, version, reason, actor, expected_current, code)
        sync = self.alias_mirror(model_name, alias)
        if sync is not None and (change is not None or self.ledger.current(model_name, alias) == version):
            self.ledger.mirror(model_name, alias, sync)
        return change

    def alias_history(self, model_name: str, alias: str) -> list[AliasChange]:
        """The alias's changes, oldest first."""
        return self.ledger.history(model_name, alias)


# --------------------------------------------------------------------------------------------
# registrations: one version per registry key, also under racing registrations


def claim_registration(store: ObjectStore, key: str, registry_key: str) -> bool:
    """Create the claim object of a registration unless it exists; True if this call created it.

    Of racing registrations of one ``registry_key``, exactly one creates the claim (a create-only
    conditional write) and makes the version; the others wait for it (:func:`wait_for_registration`).
    """
    claim = {"registry_key": registry_key, "at": datetime.now(UTC).isoformat()}
    try:
        store.put_if_match(key, json.dumps(claim).encode(), None)
        return True
    except PreconditionFailedError:
        return False


def wait_for_registration(
    find: Callable[[], Any], model_name: str, registry_key: str, claim_uri: str, timeout: float = 120
) -> Any:
    """Wait for the version that another registration claimed (``find()`` returns it or None).

    Raises:
        RegistryConflictError: no version appeared in ``timeout`` seconds (a killed registration:
            the message says which claim to delete).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = find()
        if found is not None:
            return found
        time.sleep(1)
    raise RegistryConflictError(
        f"registration {registry_key} of {model_name} was claimed but no version appeared in "
        f"{timeout:.0f} s; if that registration was killed, delete its claim {claim_uri} and retry"
    )


@dataclass(frozen=True)
class Registration:
    """One claimed registration, for the registry to publish: its folder, artifact and run record."""

    model_name: str
    registry_key: str
    folder: str  # the storage folder of its claim, record and artifact
    data: bytes  # model.joblib
    sha256: str
    metrics: Mapping[str, float]
    tags: Mapping[str, str]


class ClaimedRegistrations:
    """``ModelRegistry.register`` of a registry that keeps its artifacts in the provider's storage.

    The steps are every cloud's: return the version already registered under ``registry_key``;
    else claim the key (of racing registrations one wins, the others wait for its version), copy
    the artifact's bytes and write the run record (``registration.json``) into the registry's
    folder ``<registry_root>/<model folder>/<registry_key>``, and let the cloud make its version
    (:meth:`_publish`). A registry sets ``self.storage`` and :attr:`registry_root` and writes
    :meth:`_find` and :meth:`_publish`.
    """

    storage: ObjectStore
    registry_root: str  # "_sagemaker/registry"
    # how long a registration waits for the version of another that claimed the same key
    claim_wait_seconds: float = 120

    def model_folder(self, model_name: str) -> str:
        """The folder of a model's registrations under :attr:`registry_root` (its name)."""
        return model_name

    def _find(self, model_name: str, registry_key: str) -> ModelVersion | None:
        """The version registered under ``registry_key``, or None."""
        raise NotImplementedError

    def _publish(self, registration: Registration) -> ModelVersion:
        """Store the artifact under the registration's folder and make the registry's version of it."""
        raise NotImplementedError

    def register(
        self,
        model_name: str,
        model_key: str,
        registry_key: str,
        metrics: Mapping[str, float],
        params: Mapping[str, Any],
        tags: Mapping[str, str],
    ) -> ModelVersion:
        """Register the artifact at ``model_key`` once per ``registry_key`` (see ``ModelRegistry.register``).

        Raises:
            RegistryConflictError: another registration claimed the key and no version appeared.
        """
        existing = self._find(model_name, registry_key)
        if existing is not None:
            return existing
        folder = f"{self.registry_root}/{self.model_folder(model_name)}/{registry_key}"
        claim = f"{folder}/claim.json"
        if not claim_registration(self.storage, claim, registry_key):
            return wait_for_registration(  # type: ignore[no-any-return]
                lambda: self._find(model_name, registry_key), model_name, registry_key,
                self.storage.uri(claim), timeout=self.claim_wait_seconds,
            )  # fmt: skip
        data = self.storage.get_bytes(model_key)
        sha256 = hashlib.sha256(data).hexdigest()
        record = {
            "registry_key": registry_key,
            "model_key": model_key,
            "sha256": sha256,
            "metrics": {k: float(v) for k, v in metrics.items() if v is not None},
            "params": dict(params),
            "tags": {k: str(v) for k, v in tags.items()},
        }
        self.storage.put_bytes(
            f"{folder}/{REGISTRATION_FILE}", json.dumps(record, sort_keys=True, default=str).encode()
        )
        version = self._publish(Registration(model_name, registry_key, folder, data, sha256, metrics, tags))
        log.info("Registered %s v%s (%s)", model_name, version.version, registry_key)
        return version
