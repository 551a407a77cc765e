"""A cloud's typed settings: its ``[<cloud>]`` section and its hardware profiles, read once.

A cloud writes two or three frozen dataclasses (every field with a default, as
:func:`core.config.build_section` wants): its settings, subclassing :class:`ProviderSettings`,
with a ``training`` and an ``inference`` field whose types subclass :class:`HardwareProfile`.
``from_settings`` then reads ``[<cloud>]``, ``[hardware.training.<cloud>]`` and
``[hardware.inference.<cloud>]`` through the one section builder and runs the checks types
alone do not catch (``check``), once, when the provider is built; the parts of the provider
take the typed profiles from there instead of reading the tables again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Self

from core.config import build_section
from core.errors import ConfigError

if TYPE_CHECKING:
    from core.config import Settings

PROFILE_USES = ("training", "inference")


class HardwareProfile:
    """Base of a frozen dataclass read from ``[hardware.<use>.<cloud>]`` (what a job or endpoint runs on)."""

    use: ClassVar[str]  # "training" or "inference"
    cloud: ClassVar[str]  # the catalogue's name: "aws"

    def __init_subclass__(cls, use: str = "", cloud: str = "", **kwargs: Any) -> None:
        """Name the table: ``class TrainingProfile(HardwareProfile, use="training", cloud="aws")``."""
        super().__init_subclass__(**kwargs)
        if use:
            cls.use = use
        if cloud:
            cls.cloud = cloud

    @classmethod
    def where(cls) -> str:
        """The profile's table in astro.toml, for messages: ``[hardware.training.aws]``."""
        return f"[hardware.{cls.use}.{cls.cloud}]"

    def check(self) -> None:
        """Check values that types alone do not catch (nothing by default).

        Raises:
            ConfigError: naming the profile's key and what a valid value looks like.
        """

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Self:
        """Read and check the profile from its TOML table.

        Raises:
            ConfigError: a key is unknown, of the wrong type, or its value is not valid.
        """
        profile = build_section(cls, dict(values), cls.where())
        profile.check()
        return profile

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        """Read and check the profile from the settings' ``[hardware]`` table."""
        return cls.from_mapping(settings.hardware.get(cls.use, {}).get(cls.cloud, {}))


class ProviderSettings:
    """Base of a frozen dataclass read from ``[<cloud>]``, with ``model_name`` and the profiles.

    The dataclass has a ``model_name`` field (``[project] model_name``, never in the section)
    and one field per profile use it has (``training``, ``inference``) whose default is a
    :class:`HardwareProfile`.
    """

    cloud: ClassVar[str]  # the catalogue's name and the section's: "aws"

    def __init_subclass__(cls, cloud: str = "", **kwargs: Any) -> None:
        """Name the section: ``class AwsSettings(ProviderSettings, cloud="aws")``."""
        super().__init_subclass__(**kwargs)
        if cloud:
            cls.cloud = cloud

    def check(self) -> None:
        """Check values that types alone do not catch (nothing by default).

        Raises:
            ConfigError: naming the ``[<cloud>]`` key and what a valid value looks like.
        """

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        """Read and check ``[<cloud>]`` and the cloud's hardware profiles.

        Raises:
            ConfigError: a key is unknown, has the wrong type, or a value is not valid; the
                message names the key and what to set.
        """
        section = dict(settings.provider_sections.get(cls.cloud, {}))
        if "model_name" in section:
            raise ConfigError(f"[{cls.cloud}] model_name is not a setting: set [project] model_name instead")
        defaults = cls()
        uses = [use for use in PROFILE_USES if isinstance(getattr(defaults, use, None), HardwareProfile)]
        values = build_section(
            cls, section, f"[{cls.cloud}]", path=settings.config_path, skip=(*uses, "model_name")
        )
        profiles = {use: type(getattr(defaults, use)).from_settings(settings) for use in uses}
        result = dataclasses.replace(values, **profiles, model_name=settings.model_name)  # type: ignore[type-var]
        result.check()
        return result
