"""Key recovery: a key split k-of-n so that any k holders can rebuild it.

A patient's key is split among guardians, an organization's emergency escrow key among
custodians. One idea per module:

- ``shamir``: GF(2^8) arithmetic, Shamir split/combine with an integrity tag, and the share
  text a holder keeps (``medledger-share-v1:<k>:<x>:<y>:<tag>``).

Pure, like the rest of the core: the caller passes the randomness, and reading, printing or
sending shares happens in adapters and entrypoints.
"""

from medledger.core.recovery.shamir import (
    AES_POLYNOMIAL,
    MAX_SECRET_BYTES,
    MAX_SHARE_TEXT_CHARS,
    MAX_SHARES,
    MIN_THRESHOLD,
    SHARE_TEXT_VERSION,
    TAG_DOMAIN,
    TAG_SIZE,
    Share,
    combine,
    format_share,
    gf_add,
    gf_div,
    gf_inv,
    gf_mul,
    parse_share,
    split,
)

__all__ = [
    "AES_POLYNOMIAL",
    "MAX_SECRET_BYTES",
    "MAX_SHARES",
    "MAX_SHARE_TEXT_CHARS",
    "MIN_THRESHOLD",
    "SHARE_TEXT_VERSION",
    "TAG_DOMAIN",
    "TAG_SIZE",
    "Share",
    "combine",
    "format_share",
    "gf_add",
    "gf_div",
    "gf_inv",
    "gf_mul",
    "parse_share",
    "split",
]
