"""Base classes for PagerDuty API resources: one base URL, one session, one careful request path."""

from __future__ import annotations

# Standard library imports
import contextlib
import functools
import json
import logging
import math
import os
import random
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

# Third party package imports
import requests

# Local package imports
from pagerduty_api._deadline import Deadline, DeadlineAdapter, deadline_session, read_answer
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
from pagerduty_api.retry import DEFAULT_THROTTLE_STATUSES, REFUSED_STATUSES
from pagerduty_api.version import __version__

logger = logging.getLogger("pagerduty_api")

__all__ = ["AuthorizedResource", "DeadlineAdapter", "Resource", "deadline_session"]

LOG_BODY_LIMIT = 200  # characters of an answer quoted in a log line

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
    retry_statuses: frozenset[int] = DEFAULT_THROTTLE_STATUSES

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
        if not _is_seconds(timeout) or timeout == 0 or not math.isfinite(timeout):
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
        """The session requests go through from now on, so connections are reused (made on
        first use unless one was passed; until then they go through `requests.post`)."""
        if self._session is None:
            self._session = deadline_session()
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

    @property
    def headers(self) -> dict[str, str]:
        """The headers each request is sent with (the original package's attribute)."""
        return self._headers()

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

        Any 2xx is success (an odd body is logged and returned as {"status": "accepted",
        "raw_body": ...}); a 3xx is never followed; 400 raises InvalidEventException at once;
        other 4xx (outside `retry_statuses`) raise PagerDutyAPIServerException at once; the
        rest is retried until `retry_deadline` seconds after the first attempt (0: exactly
        one attempt). Each attempt, whole answer included, has `timeout` seconds.
        """
        return self._call(method, f"{self.url}/{path.lstrip('/')}", payload, path)

    def _post(self, url: str, data: Any = None, **ignored: Any) -> dict[str, Any]:
        """The original package's wrapper: POST `data` JSON-encoded to a whole `url`, with
        `request()`'s rules (its `headers=` are these headers, so they are not taken twice)."""
        return self._call("POST", url, data, url)

    def _call(self, method: str, url: str, payload: Any, path: str) -> dict[str, Any]:
        """request()'s loop, for a whole url; `path` is what logs call it."""
        data = None if payload is None else encode_json(payload)
        start = self._clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                answer = self._exchange(method, url, data)
            except _TRANSIENT_ERRORS as exc:
                status, body, retry_after = None, None, None
                last = self._redact(f"{type(exc).__name__}: {exc}")
            except requests.RequestException as exc:
                message = self._redact(f"PagerDuty request not sent: {type(exc).__name__}: {exc}")
                raise PagerDutyAPIServerException(message) from None
            else:
                if 200 <= answer.status < 300:
                    return self._accepted(method, path, answer)
                status, body, retry_after = self._refuse_or_retry(answer)
                last = f"{status}: {body}"
            elapsed = self._clock() - start
            delay = backoff_delay(attempt - 1, self._jitter) if retry_after is None else retry_after
            if elapsed + delay >= self.retry_deadline:
                said = f"PagerDuty answered {last}" if status else f"no answer from PagerDuty: " \
                    f"{last}"
                if attempt > 1:
                    said += (f" (gave up after {attempt} attempts in {elapsed:.1f} s: "
                             f"retry_deadline {self.retry_deadline} s)")
                elif self.retry_deadline:
                    said += (f" (not retried: the next try, in {delay:.0f} s, would be past "
                             f"retry_deadline {self.retry_deadline} s)")
                raise PagerDutyAPIServerException(
                    said,
                    status_code=status,
                    body=body,
                    retry_after=retry_after,
                )
            logger.warning(
                "PagerDuty %s %s: %s; retry in %.2f s (attempt %d)",
                method,
                path,
                truncate(last, LOG_BODY_LIMIT),
                delay,
                attempt + 1,
            )
            self._sleep(delay)

    def _exchange(self, method: str, url: str, data: bytes | None) -> _Answer:
        """One request and its whole answer within `timeout` seconds; redirects not followed.

        Goes through the session once there is one (passed in, or asked for), else through
        the module-level `requests.post` (`requests.request` for other methods) as the original
        package did, so that a test's patch of `requests.post` sees every request.
        """
        deadline = Deadline(self.timeout)
        fields = {"data": data, "headers": self._headers(), "timeout": deadline,
                  "stream": True, "allow_redirects": False}
        if self._session is not None:
            send = functools.partial(self._session.request, method)
        elif method == "POST":
            send = requests.post
        else:
            send = functools.partial(requests.request, method)
        try:
            with deadline:
                response = send(url=url, **fields)
                if not isinstance(response, requests.Response):  # a test's stand-in
                    return _Answer.stand_in(response, self._secrets())
                with response:  # closed, or its connection back in the pool, whatever happens
                    deadline.watch_answer(response.raw)
                    content = read_answer(response)
        except requests.RequestException:
            if deadline.expired:
                raise deadline.timeout_error() from None
            raise
        if deadline.cut:  # the answer may be cut short: not one to act on
            raise deadline.timeout_error()
        return _Answer(response.status_code, response.headers, content, self._secrets())

    def _accepted(self, method: str, path: str, answer: _Answer) -> dict[str, Any]:
        """A 2xx is PagerDuty taking the event, whatever the body says: never retry it."""
        data = answer.data
        if isinstance(data, dict):
            return data
        shown = answer.body or "(empty body)"
        logger.warning(
            "PagerDuty %s %s answered %d (Content-Type %s) without a JSON object; taken as "
            "accepted: %s",
            method,
            path,
            answer.status,
            answer.headers.get("Content-Type", "none"),
            truncate(shown, LOG_BODY_LIMIT),
        )
        return {"status": "accepted", "raw_body": answer.body}

    def _refuse_or_retry(self, answer: _Answer) -> tuple[int, str, float | None]:
        """Raise for an answer that no retry can fix; else what the retry needs to know."""
        status, body = answer.status, answer.body
        retry_after = parse_retry_after(answer.headers.get("Retry-After"))
        if 300 <= status < 400:
            raise self._redirected(answer, retry_after)
        if status in REFUSED_STATUSES:
            raise self._invalid(answer)
        if status < 500 and status not in self.retry_statuses:
            raise PagerDutyAPIServerException(
                f"PagerDuty answered {status} (not retried): {body}",
                status_code=status,
                body=body,
                retry_after=retry_after,
            )
        return status, body, retry_after

    def _redirected(
        self, answer: _Answer, retry_after: float | None
    ) -> PagerDutyAPIServerException:
        location = answer.headers.get("Location")
        where = (
            f"to {truncate(self._redact(location), LOG_BODY_LIMIT)}"
            if location
            else "without a Location"
        )
        return PagerDutyAPIServerException(
            f"PagerDuty answered {answer.status} redirecting {where}; not followed (the event "
            f"and its key would go there): fix the url setting ({self.url}), e.g. https:// "
            "instead of http://, the right host, or a proxy that should not redirect",
            status_code=answer.status,
            body=answer.body,
            retry_after=retry_after,
        )

    def _invalid(self, answer: _Answer) -> InvalidEventException:
        errors = [self._redact(error) for error in extract_errors(answer.data)]
        detail = "; ".join(errors) if errors else answer.body
        return InvalidEventException(
            f"PagerDuty refused the request (400): {detail}{self._explain_invalid(detail)}",
            status_code=400,
            body=answer.body,
            errors=errors,
        )


class _Answer:
    """An answer read in full: status, headers, and the body as bytes, text and JSON."""

    def __init__(self, status: int, headers: Any, content: bytes, secrets: tuple[str, ...]) -> None:
        self.status = status
        self.headers = headers
        self.content = content
        # What may be quoted (exceptions, logs, the accepted dict): redacted and truncated.
        self.body = truncate(redact(content.decode("utf-8", "replace"), secrets), BODY_TEXT_LIMIT)

    @classmethod
    def stand_in(cls, response: Any, secrets: tuple[str, ...]) -> _Answer:
        """An answer that is not a requests.Response (a mock of `requests.post`), read as
        the original package read one: `status_code` (else `ok`), `text`, `json()`."""
        status = getattr(response, "status_code", None)
        if not isinstance(status, int):
            status = 200 if response.ok else 500
        headers = getattr(response, "headers", None)
        text = getattr(response, "text", None)
        answer = cls(
            status,
            headers if isinstance(headers, Mapping) else {},
            text.encode("utf-8", "replace") if isinstance(text, str) else b"",
            secrets,
        )
        if 200 <= status < 300:
            with contextlib.suppress(ValueError):  # no JSON: read from the text, as usual
                answer.__dict__["data"] = response.json()  # what the stand-in was told to say
        return answer

    @functools.cached_property
    def data(self) -> Any:
        """The decoded JSON, or None when the body is not JSON."""
        try:
            return json.loads(self.content)
        except (ValueError, RecursionError):
            return None


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
