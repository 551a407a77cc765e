"""Names of SageMaker resources, valid for every model name the settings accept.

SageMaker names (training and transform jobs, models, endpoints, endpoint configs, model
package groups) are at most 63 characters of letters, digits and hyphens, starting and ending
with a letter or digit. A model name may be 63 characters with underscores, so every name the
provider builds goes through :func:`sagemaker_name`: underscores become hyphens, and a name
that would be too long keeps its head, a hash of the whole and its suffix. A name that already
fits is unchanged, so resources created before stay found.
"""

from __future__ import annotations

import hashlib
import re

MAX_LENGTH = 63
# the pattern of SageMaker's names (tests/unit/test_aws_names.py checks it against botocore's model)
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_NOT_ALLOWED = re.compile(r"[^a-zA-Z0-9-]")
_DIGEST_LENGTH = 8


def sagemaker_name(base: str, suffix: str = "") -> str:
    """Return ``<base>-<suffix>`` as a valid SageMaker name of at most 63 characters.

    Args:
        base: what the name is of (a model name, a job name); characters SageMaker does not
            allow (underscores) become hyphens.
        suffix: what tells names of the same base apart (a version, an attempt, a digest); it
            is always kept whole, so it must be short.

    Returns:
        ``<base>-<suffix>`` if that is valid; else (too long, or a hyphen at an end) the base cut
        and followed by 8 hex characters of a hash of the full base and suffix, so two names
        that share their head still differ.
    """
    head = _NOT_ALLOWED.sub("-", base)
    tail = _NOT_ALLOWED.sub("-", suffix).strip("-")
    name = f"{head}-{tail}" if tail else head
    if is_valid(name):
        return name
    # too long, or a hyphen at an end ("a_" -> "a-"): cut, and tell it apart by a hash of the whole
    digest = hashlib.sha256(f"{base}\0{suffix}".encode()).hexdigest()[:_DIGEST_LENGTH]
    room = MAX_LENGTH - len(digest) - 1 - (len(tail) + 1 if tail else 0)
    if room < 1:
        raise ValueError(f"suffix {suffix!r} leaves no room for a SageMaker name of at most {MAX_LENGTH}")
    return "-".join(part for part in (head[:room].strip("-"), digest, tail) if part)


def is_valid(name: str) -> bool:
    """Tell whether ``name`` is a valid SageMaker resource name."""
    return len(name) <= MAX_LENGTH and NAME_PATTERN.fullmatch(name) is not None
