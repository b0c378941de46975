"""Exceptions raised by pagerduty_api: one root, PagerDutyException, with the documented
exceptions under it (their names and import paths are those of the original package)."""

from __future__ import annotations

# Standard library imports
from typing import Any


class PagerDutyException(Exception):
    """The root of every exception pagerduty_api raises: one `except` catches them all.

    Whether the failed call is worth another attempt is `pagerduty_api.is_retryable(exc)`.
    """


class ConfigurationException(PagerDutyException):
    """An exception for configuration errors (missing key, unknown api, bad url or times)."""


class IncidentKeyException(PagerDutyException):
    """An exception when no incident key exists: none was passed and nothing was triggered."""


class PagerDutyAPIServerException(PagerDutyException):
    """An exception for PagerDuty server errors, kept after retries gave up or were not allowed.

    `status_code` is None when no answer came back (connection error, timeout) or when the
    event was refused here before sending; `body` is PagerDuty's answer as text (truncated);
    `retry_after` is the Retry-After PagerDuty asked for, in seconds, or None.
    """

    def __init__(
        self,
        message: str = "",
        status_code: int | None = None,
        body: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[Any, ...]:
        """Keep the attributes through pickling (the default would pass only the message)."""
        return (type(self), self.args, self.__dict__)


class InvalidEventException(PagerDutyAPIServerException):
    """The event is one PagerDuty refuses (its 400) or would refuse (checked before sending).

    `errors` lists PagerDuty's reasons, or ours when the event never left (status_code None).
    Retrying the same event cannot help, so it is never retried.
    """

    def __init__(
        self,
        message: str = "",
        status_code: int | None = None,
        body: str | None = None,
        errors: list[str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, body=body, retry_after=retry_after)
        self.errors = list(errors or [])
