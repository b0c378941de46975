"""The TLS keys the kinds that speak TLS share (`http`, `tcp`): the CA bundle, the
certificate's minimum days, and the context they make, each validated and worded once.

The run-time half is in net.py (`tls_context`, `peer_certificate`, `cert_expiry_failure`):
both kinds verify certificates and judge their expiry with the same code.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Iterable
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StringConstraints, ValidationInfo

from watchdog.config.fields import Says, problem
from watchdog.probes.base import OptionError
from watchdog.probes.net import tls_context

CertMinDays = Annotated[
    int, Field(ge=0),
    Says("must be a whole number of days, 0 or more", greater_than_equal="must be 0 or more"),
]


def ca_path(base_dir: str, value: str) -> str:
    """Where a `ca_file` written in a file in `base_dir` is."""
    return os.path.normpath(os.path.join(base_dir, os.path.expanduser(value)))


def _ca_file_check(verify_key: str) -> Callable[[str | None, ValidationInfo], str | None]:
    def check(value: str | None, info: ValidationInfo) -> str | None:
        """A CA bundle that is not there is said with the other problems, not after them."""
        base_dir = (info.context or {}).get("base_dir")
        if value is None or base_dir is None or info.data.get(verify_key) is False:
            return value  # verify off makes it a rule's business (it has no effect)
        path = ca_path(base_dir, value)
        if not os.path.isfile(path):
            raise problem(f"file not found: {path}")
        return value

    return check


def ca_file_type(verify_key: str) -> Any:
    """The `ca_file` key of a kind whose verification switch is `verify_key`."""
    return Annotated[
        str | None, StringConstraints(min_length=1), AfterValidator(_ca_file_check(verify_key)),
        Says("must be the path of a PEM CA bundle"),
    ]


def ca_file_rule(data: dict[str, Any], verify_key: str) -> Iterable[tuple[tuple, str]]:
    """A CA bundle beside verification turned off is a mistake: say so."""
    ca_file = data.get("ca_file")
    if isinstance(ca_file, str) and ca_file and data.get(verify_key) is False:
        yield ("ca_file",), f"has no effect with {verify_key}: false; remove one of them"


def load_context(verify: bool, ca_file: str | None, base_dir: str,
                 where: str) -> tuple[ssl.SSLContext, str | None]:
    """(the shared SSLContext, the CA bundle's path) for these trust settings; OptionError at
    `where` (the ca_file key's path) when the bundle is missing or does not load."""
    path = None if ca_file is None else ca_path(base_dir, ca_file)
    if path is not None and not os.path.isfile(path):
        raise OptionError([(where, f"file not found: {path}")])
    try:
        return tls_context(verify, path), path
    except (OSError, ssl.SSLError) as exc:
        raise OptionError([(where, f"cannot load CA bundle {path}: {exc}")]) from None
