"""Base classes for PagerDuty API resources: one base URL, one session, one careful request path."""

from __future__ import annotations

# Standard library imports
import logging
import os
import random
import time
from types import TracebackType
from typing import Any

# Third party package imports
import requests

# Local package imports
from pagerduty_api._transport import (
    BODY_TEXT_LIMIT,
    backoff_delay,
    encode_json,
    extract_errors,
    mask_key,
    parse_retry_after,
    redact,
    truncate,
)
from pagerduty_api.exceptions import (
    ConfigurationException,
    InvalidEventException,
    PagerDutyAPIServerException,
)
from pagerduty_api.version import __version__

logger = logging.getLogger("pagerduty_api")

# Errors after which the same request may well succeed: worth another attempt.
_TRANSIENT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


def _is_seconds(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


class Resource:
    """A base class for API resources.

    It owns the base URL, a reused `requests.Session` (created on first use unless one is
    passed) and `request()`, which retries what PagerDuty calls temporary (429, 5xx,
    connection errors, timeouts, plus `retry_statuses`) within `retry_deadline` seconds.
    """

    default_url = "https://api.pagerduty.com"
    retry_statuses: frozenset[int] = frozenset({429})

    # Injectable for tests, so retries need no real waiting.
    _sleep = staticmethod(time.sleep)
    _clock = staticmethod(time.monotonic)
    _jitter = staticmethod(random.uniform)

    def __init__(
        self,
        url: str | None = None,
        timeout: float = 10,
        retry_deadline: float = 60,
        session: requests.Session | None = None,
    ) -> None:
        url = self.default_url if url is None else url
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigurationException(f"url must start with http:// or https://, got {url!r}")
        if not _is_seconds(timeout) or timeout == 0:
            raise ConfigurationException(
                f"timeout must be a positive number of seconds, got {timeout!r}"
            )
        if not _is_seconds(retry_deadline):
            raise ConfigurationException(
                f"retry_deadline must be a number of seconds >= 0, got {retry_deadline!r}"
            )
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retry_deadline = retry_deadline
        self._session = session
        self._owns_session = session is None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self.url!r})"

    @property
    def session(self) -> requests.Session:
        """The session every request goes through, so connections are reused."""
        if self._session is None:
            self._session = requests.Session()
        return self._session

    def close(self) -> None:
        """Close the session if this resource made it; a session passed in stays the caller's."""
        if self._owns_session and self._session is not None:
            self._session.close()
            self._session = None

    def __enter__(self) -> Resource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _headers(self) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"pagerduty_api/{__version__}",
        }

    def _secrets(self) -> tuple[str, ...]:
        """Strings that must never reach a message, a log line or an exception."""
        return ()

    def _redact(self, text: str) -> str:
        return redact(text, self._secrets())

    def _explain_invalid(self, detail: str) -> str:
        """Extra words for a 400, for subclasses that can guess its cause."""
        return ""

    def request(self, method: str, path: str, payload: Any = None) -> dict[str, Any]:
        """Send one call and return PagerDuty's JSON answer, retrying only what may pass later.

        400 raises InvalidEventException at once; other 4xx (outside `retry_statuses`) raise
        PagerDutyAPIServerException at once; the rest is retried until `retry_deadline`
        seconds after the first attempt (0: exactly one attempt).
        """
        url = f"{self.url}/{path.lstrip('/')}"
        data = None if payload is None else encode_json(payload)
        start = self._clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self.session.request(
                    method, url, data=data, headers=self._headers(), timeout=self.timeout
                )
            except _TRANSIENT_ERRORS as exc:
                status, body, retry_after = None, None, None
                last = self._redact(f"{type(exc).__name__}: {exc}")
            except requests.RequestException as exc:
                message = self._redact(f"PagerDuty request not sent: {type(exc).__name__}: {exc}")
                raise PagerDutyAPIServerException(message) from None
            else:
                status = response.status_code
                body = truncate(self._redact(response.text), BODY_TEXT_LIMIT)
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                if 200 <= status < 300:
                    return self._decode(response, body)
                if status == 400:
                    raise self._invalid(response, body)
                if status < 500 and status not in self.retry_statuses:
                    raise PagerDutyAPIServerException(
                        f"PagerDuty answered {status} (not retried): {body}",
                        status_code=status,
                        body=body,
                        retry_after=retry_after,
                    )
                last = f"HTTP {status}: {body}"
            elapsed = self._clock() - start
            delay = backoff_delay(attempt - 1, self._jitter) if retry_after is None else retry_after
            if elapsed + delay >= self.retry_deadline:
                raise PagerDutyAPIServerException(
                    f"PagerDuty {method} {path} failed after {attempt} attempt(s) in "
                    f"{elapsed:.1f} s (retry_deadline {self.retry_deadline} s); last {last}",
                    status_code=status,
                    body=body,
                    retry_after=retry_after,
                )
            logger.warning(
                "PagerDuty %s %s: %s; retry in %.2f s (attempt %d)",
                method,
                path,
                truncate(last, 200),
                delay,
                attempt + 1,
            )
            self._sleep(delay)

    def _decode(self, response: requests.Response, body: str) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise PagerDutyAPIServerException(
                f"PagerDuty answered {response.status_code} but not with a JSON object: {body}",
                status_code=response.status_code,
                body=body,
            )
        return data

    def _invalid(self, response: requests.Response, body: str) -> InvalidEventException:
        try:
            data = response.json()
        except ValueError:
            data = None
        errors = [self._redact(error) for error in extract_errors(data)]
        detail = "; ".join(errors) if errors else body
        return InvalidEventException(
            f"PagerDuty refused the request (400): {detail}{self._explain_invalid(detail)}",
            status_code=400,
            body=body,
            errors=errors,
        )


class AuthorizedResource(Resource):
    """A base class for authorized API resources (the REST API), sending `Token token=KEY`."""

    def __init__(self, api_key: str | None = None, *args: Any, **kwargs: Any) -> None:
        """Use api_key, else the environment variable PAGERDUTY_API_KEY, else refuse."""
        api_key = api_key or os.environ.get("PAGERDUTY_API_KEY")
        if not api_key:
            raise ConfigurationException(
                "no PagerDuty API key: pass api_key or set PAGERDUTY_API_KEY in the environment"
            )
        super().__init__(*args, **kwargs)
        self._api_key = api_key

    @property
    def api_key(self) -> str:
        """The key in use, from the argument or the environment."""
        return self._api_key

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key={mask_key(self._api_key)!r}, url={self.url!r})"

    def _headers(self) -> dict[str, str]:
        headers = super()._headers()
        headers["Authorization"] = f"Token token={self._api_key}"
        return headers

    def _secrets(self) -> tuple[str, ...]:
        return (self._api_key,)
