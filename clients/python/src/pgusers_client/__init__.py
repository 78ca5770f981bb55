"""pgusers_client: the Python pgusers library's ``UserSpace`` API, answered by the pgusers daemon.

Switch an application from the library with ``import pgusers_client as pgusers`` and two
environment variables, ``PGUSERS_URL`` and ``PGUSERS_API_TOKEN``. See README.md for every
difference from the library.
"""

from ._userspace import (
    DEFAULT_TTL,
    EXPIRED,
    NOT_FOUND,
    OK,
    REJECTED,
    BadCallError,
    DaemonError,
    UserSpace,
)

__version__ = "0.1.0"

__all__ = [
    "BadCallError",
    "DaemonError",
    "UserSpace",
    "OK",
    "NOT_FOUND",
    "EXPIRED",
    "REJECTED",
    "DEFAULT_TTL",
]
