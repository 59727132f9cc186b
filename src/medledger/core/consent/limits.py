"""Every size a consent policy may reach, in one place (ADR 0013).

A consent lives on the ledger and is evaluated on every record read, so each list, each nesting
level and each string an author controls has an upper bound. ``parse_consent`` and the model's
constructors refuse anything larger with ``InvalidInputError`` naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class ConsentLimits:
    """Upper bounds on a consent policy (policy form and FHIR import alike)."""

    #: Nesting levels of provisions: the root provision is level 1.
    max_depth: int = 4
    #: Provisions in one consent, the root and every nested one counted.
    max_provisions: int = 64
    #: Items in any one list or set (actors, actions, labels, codes, categories, ...).
    max_items: int = 32
    #: A consent id or a record id.
    max_id_chars: int = 64
    #: A coding written ``system|code``.
    max_coding_chars: int = 256
    #: The code part of a coding.
    max_code_chars: int = 64


LIMITS: Final = ConsentLimits()

#: Instants are milliseconds since the Unix epoch, within the years FHIR can write (0001-9999).
MIN_TIME_MS: Final = -62_135_596_800_000  # 0001-01-01T00:00:00Z
MAX_TIME_MS: Final = 253_402_300_800_000  # 10000-01-01T00:00:00Z, an exclusive end only
