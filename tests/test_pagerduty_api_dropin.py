"""A drop-in for the original `pagerduty-api`: its own test suite (ambitioninc/pagerduty-api,
pagerduty_api/tests/alarm_tests.py and base_tests.py), case by case, against this package.

Each original case is rewritten here with the same patch (`mock.patch.object(requests,
'post')`, `mock.patch.object(os.environ, 'get')`) and the same assertions; where they differ,
the difference is one of the documented fixes (docs/pagerduty_api.md, "Drop-in for the original
package"): every call carries a timeout (with stream=True and allow_redirects=False), the body
is the same JSON as compact UTF-8 bytes, and a 5xx is retried.
"""

# Standard library imports
import json
import os
import tempfile
import unittest
from unittest import mock

# Third party package imports
import requests

# Local package imports
from pagerduty_api._deadline import Deadline, DeadlineAdapter
from pagerduty_api.alerts import Alert, AlertTypes
from pagerduty_api.base import AuthorizedResource, Resource
from pagerduty_api.exceptions import (
    ConfigurationException,
    IncidentKeyException,
    InvalidEventException,
    PagerDutyAPIServerException,
)
from watchdog.config import load
from watchdog.reloading import make_alert

V1_URL = "https://events.pagerduty.com/generic/2010-04-15/create_event.json"


def instant(resource):
    """Retries without waiting: the clock advances by each wait instead."""
    now = [0.0]
    resource._clock = lambda: now[0]
    resource._sleep = lambda seconds: now.__setitem__(0, now[0] + seconds)
    resource._jitter = lambda low, high: high
    return resource


class PagerDutyAlertTests(unittest.TestCase):
    """alarm_tests.py's PagerDutyAlertTests."""

    def setUp(self):
        super().setUp()
        self.service_key = "4baa5d20cfba466a5e075b02698f455c"
        self.client = "Apple"
        self.incident_key = "/alert/110"
        self.alert = Alert(service_key=self.service_key)

    def assert_posted_once(self, mock_post, event):
        """The original's assert_called_once_with(data=..., headers=..., url=...), plus the
        timeout fix; data is compared as the JSON document it is."""
        mock_post.assert_called_once_with(
            data=mock.ANY,
            headers=self.alert.headers,
            url=self.alert.URL,
            timeout=mock.ANY,
            stream=True,
            allow_redirects=False,
        )
        kwargs = mock_post.call_args.kwargs
        self.assertEqual(json.loads(kwargs["data"]), event)
        self.assertIsInstance(kwargs["timeout"], Deadline)
        self.assertEqual(kwargs["timeout"].seconds, 10)

    @mock.patch.object(requests, "post")
    def test_trigger_assigns_incident_key(self, mock_post):
        alert = Alert(service_key=self.service_key)
        self.assertIsNone(alert.incident_key)
        alert.trigger(description="No data")
        self.assertIsNotNone(alert.incident_key)
        mock_post.assert_called_once()  # the patch saw it: nothing went to the network

    @mock.patch.object(requests, "post")
    def test_trigger_success(self, mock_post):
        self.alert.trigger(
            description="No data received",
            incident_key=self.incident_key,
            client="apple_0033c42e190872c508666ab6acbbd2e7",
            client_url="https://apple.ambition.com",
            details={"some_key": "some_value"},
        )
        self.assert_posted_once(mock_post, {
            "service_key": self.service_key,
            "event_type": "trigger",
            "incident_key": self.incident_key,
            "description": "No data received",
            "client": "apple_0033c42e190872c508666ab6acbbd2e7",
            "client_url": "https://apple.ambition.com",
            "details": {"some_key": "some_value"},
        })
        self.assertEqual(self.alert.URL, V1_URL)
        self.assertEqual(self.alert.headers["Content-Type"], "application/json")

    @mock.patch.object(requests, "post")
    def test_acknowledge_success(self, mock_post):
        self.alert.acknowledge(
            incident_key=self.incident_key,
            description="No data received",
            details={"some_key": "some_value"},
        )
        self.assert_posted_once(mock_post, {
            "service_key": self.service_key,
            "event_type": "acknowledge",
            "incident_key": self.incident_key,
            "description": "No data received",
            "details": {"some_key": "some_value"},
        })

    @mock.patch.object(requests, "post")
    def test_acknowledge_raises_error(self, mock_post):
        alert = Alert(service_key=self.service_key)
        with self.assertRaises(IncidentKeyException):
            alert.acknowledge(description="No data received", details={"some_key": "some_value"})
        mock_post.assert_not_called()

    @mock.patch.object(requests, "post")
    def test_resolve_success(self, mock_post):
        self.alert.resolve(
            incident_key=self.incident_key,
            description="No data received",
            details={"some_key": "some_value"},
        )
        self.assert_posted_once(mock_post, {
            "service_key": self.service_key,
            "event_type": "resolve",
            "incident_key": self.incident_key,
            "description": "No data received",
            "details": {"some_key": "some_value"},
        })

    @mock.patch.object(requests, "post")
    def test_resolve_raises_error(self, mock_post):
        alert = Alert(service_key=self.service_key)
        with self.assertRaises(IncidentKeyException):
            alert.resolve(description="No data received", details={"some_key": "some_value"})
        mock_post.assert_not_called()

    def test_alert_types_are_the_originals(self):
        self.assertEqual(
            (AlertTypes.TRIGGER, AlertTypes.RESOLVE, AlertTypes.ACKNOWLEDGE),
            ("trigger", "resolve", "acknowledge"),
        )


class ResourceTests(unittest.TestCase):
    """base_tests.py's ResourceTests."""

    def setUp(self):
        self.TEST_URL = "https://www.google.com"

    @mock.patch.object(requests, "post")
    def test_post_not_ok(self, mock_post):
        mock_response = mock.Mock(name="response", ok=False, status_code=500, text="Server Error")
        mock_post.return_value = mock_response
        resource = instant(Resource())
        with self.assertRaises(PagerDutyAPIServerException) as caught:
            resource._post(url=self.TEST_URL)
        # The fix: a 500 is retried (within retry_deadline, 60 s) instead of raised at once.
        self.assertGreater(mock_post.call_count, 1)
        for call in mock_post.call_args_list:
            self.assertEqual(call.kwargs["url"], self.TEST_URL)
            self.assertIsNone(call.kwargs["data"])
        self.assertIn("500: Server Error", str(caught.exception))
        self.assertEqual(caught.exception.status_code, 500)


class AuthorizedResourceTests(unittest.TestCase):
    """base_tests.py's AuthorizedResourceTests, unchanged but for the names of the mocks."""

    @mock.patch.object(os.environ, "get", spec_set=True)
    def test_resource_with_arg(self, os_environ_mock):
        resource = AuthorizedResource(api_key="123")
        self.assertFalse(os_environ_mock.called)
        self.assertEqual(resource.api_key, "123")

    @mock.patch.object(os.environ, "get", spec_set=True)
    def test_resource_from_os(self, os_environ_mock):
        os_environ_mock.return_value = "123"
        resource = AuthorizedResource()
        os_environ_mock.assert_called_once_with("PAGERDUTY_API_KEY")
        self.assertEqual(resource.api_key, "123")

    @mock.patch.object(os.environ, "get", spec_set=True)
    def test_resource_raises_error(self, os_environ_mock):
        os_environ_mock.return_value = None
        with self.assertRaises(ConfigurationException):
            AuthorizedResource()
        os_environ_mock.assert_called_once_with("PAGERDUTY_API_KEY")


# --- What code written against the original relies on beyond its suite ------------------------

KEY = "4baa5d20cfba466a5e075b02698f455c"


class StandInAnswerTests(unittest.TestCase):
    """A mocked requests.post answers with a Mock: read as the original read it."""

    @mock.patch.object(requests, "post")
    def test_what_json_returns_is_the_result(self, mock_post):
        mock_post.return_value = mock.Mock(status_code=200, json=lambda: {"status": "success"})
        self.assertEqual(Alert(KEY).trigger("x"), {"status": "success"})

    @mock.patch.object(requests, "post")
    def test_a_bare_magicmock_is_an_accepted_answer(self, mock_post):
        with self.assertLogs("pagerduty_api", "WARNING"):
            result = Alert(KEY).trigger("x")
        self.assertEqual(result, {"status": "accepted", "raw_body": ""})

    @mock.patch.object(requests, "post")
    def test_text_is_read_when_json_fails(self, mock_post):
        def no_json():
            raise ValueError("no JSON")

        mock_post.return_value = mock.Mock(status_code=202, text='{"a": 1}', json=no_json)
        self.assertEqual(Alert(KEY, api="v2").trigger("x"), {"a": 1})

    @mock.patch.object(requests, "post")
    def test_a_400_is_refused_with_its_errors(self, mock_post):
        mock_post.return_value = mock.Mock(
            status_code=400, text=json.dumps({"errors": [f"Invalid key {KEY}"]})
        )
        with self.assertRaises(InvalidEventException) as caught:
            Alert(KEY).trigger("x")
        self.assertEqual(caught.exception.errors, ["Invalid key …455c"])
        self.assertEqual(mock_post.call_count, 1)

    @mock.patch.object(requests, "post")
    def test_not_ok_without_a_status_is_a_5xx_and_retry_after_is_read(self, mock_post):
        throttled = mock.Mock(status_code=429, text="slow down", headers={"Retry-After": "7"})
        mock_post.side_effect = [throttled, mock.Mock(status_code=None, ok=False)]
        alert = instant(Alert(KEY, api="v2", retry_deadline=8))
        with self.assertRaises(PagerDutyAPIServerException) as caught:
            alert.trigger("x")
        self.assertEqual(mock_post.call_count, 2)
        self.assertEqual(caught.exception.status_code, 500)
        self.assertIn("gave up after 2 attempts in 7.0 s", str(caught.exception))  # Retry-After


class TransportTests(unittest.TestCase):
    """Without a session the module-level functions send; with one, the session does."""

    @mock.patch.object(requests, "request")
    def test_other_methods_go_through_requests_request(self, mock_request):
        mock_request.return_value = mock.Mock(status_code=200, json=lambda: {"ok": True})
        self.assertEqual(Resource(url="https://api.example").request("GET", "users"), {"ok": True})
        self.assertEqual(mock_request.call_args.args, ("GET",))
        self.assertEqual(mock_request.call_args.kwargs["url"], "https://api.example/users")

    @mock.patch.object(requests, "post")
    def test_a_session_passed_or_asked_for_is_used_instead(self, mock_post):
        session = mock.Mock(spec=requests.Session)
        session.request.return_value = mock.Mock(status_code=200, json=lambda: {"ok": True})
        self.assertEqual(Alert(KEY, session=session).trigger("x"), {"ok": True})
        mock_post.assert_not_called()
        self.assertEqual(session.request.call_args.kwargs["url"], V1_URL)
        alert = Alert(KEY)
        self.assertIsInstance(alert.session.get_adapter("https://x"), DeadlineAdapter)
        alert.close()

    def test_the_runner_passes_a_session_of_its_own(self):
        """make_alert: keep-alive and the whole deadline, whatever happens to requests.post."""
        with mock.patch.dict(os.environ, {"TEST_KEY": KEY}), tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "w.yaml")
            with open(path, "w", encoding="utf-8") as file:
                file.write(
                    "pagerduty: {routing_key: '${TEST_KEY}', api: v2}\nstate_dir: ./state\n"
                    "checks:\n  - name: web\n    http: {url: 'http://127.0.0.1:9/'}\n"
                )
            alert = make_alert(load(path), dry_run=False)
        self.assertIsNotNone(alert._session)
        self.assertIsInstance(alert.session.get_adapter("https://x"), DeadlineAdapter)
