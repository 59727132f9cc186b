"""An in-memory ledger state: a ``StateReader`` over a dict, for tests of the contracts.

``get`` is all a contract may use; ``apply`` commits a block's writes (``None`` deletes a key)
the way a state store would, and ``snapshot`` lets a test check that nothing else changed it.
"""

from __future__ import annotations

from collections.abc import Mapping


class DictState:
    """A ``medledger.core.ledger.runtime.StateReader`` backed by a plain dict."""

    def __init__(self, values: Mapping[str, bytes] | None = None) -> None:
        self._values: dict[str, bytes] = dict(values or {})

    def get(self, key: str) -> bytes | None:
        return self._values.get(key)

    def apply(self, writes: Mapping[str, bytes | None]) -> None:
        for key, value in writes.items():
            if value is None:
                self._values.pop(key, None)
            else:
                self._values[key] = value

    def snapshot(self) -> dict[str, bytes]:
        return dict(self._values)
