"""What a check's page carries besides its summary: `component`, `group`, `class`, `links`,
`images` and `runbook` (Events API v2 payload fields), per check and in `defaults`.

Values may use a fixed set of placeholders, filled in once when the config loads: {name},
{source}, {host}, {incident_key}; `{{` and `}}` are literal braces. There is no template
engine: anything else between braces is a `validate` error at its line.

Merging with `defaults`: each key on its own, the check's value wins. `links` and `images`
are lists and a check's list replaces the defaults' (as Alertmanager's and Gatus's do:
`links: []` clears them); `runbook` is a key of its own, so a default runbook stays first
in front of a check's own links.
"""

from __future__ import annotations

import difflib
import functools
import socket
import string
import threading
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, StringConstraints, create_model

from watchdog.config.fields import NO_CONTROL, Says, Section, problem
from watchdog.model import NO_PAGE, Page

PLACEHOLDERS = ("name", "source", "host", "incident_key")
MAX_TEXT_CHARS = 1024
URL_TEMPLATE = r"^https?://[^/\s?#]+(?:[/?#]\S*)?$"
HTTPS_TEMPLATE = r"^https://[^/\s?#]+(?:[/?#]\S*)?$"
RUNBOOK_TEXT = "Runbook"
PAGE_KEYS = ("component", "group", "event_class", "links", "images", "runbook")
_FORMATTER = string.Formatter()
_KNOWN = ", ".join("{" + name + "}" for name in PLACEHOLDERS)


def template_problem(text: str) -> str | None:
    """Why `text` is not a template of our placeholders (a did-you-mean), or None."""
    try:
        parts = list(_FORMATTER.parse(text))
    except ValueError:
        return f"a lone {{ or }} — write {{{{ or }}}} for a literal brace (placeholders: {_KNOWN})"
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            close = difflib.get_close_matches(name, PLACEHOLDERS, n=1, cutoff=0.6)
            hint = f"did you mean {{{close[0]}}}? " if close else ""
            return (f"unknown placeholder {{{name}}} — {hint}known: {_KNOWN} "
                    "({{ for a literal brace)")
        if spec or conversion:
            return (f"{{{name}}} takes no format or conversion — write just {{{name}}} "
                    f"(known: {_KNOWN})")
    return None


def fill(text: str, values: Mapping[str, str]) -> str:
    """`text` with each placeholder replaced by its value (str.format of the fixed set only;
    values are inserted as they are, never read as templates themselves)."""
    out = []
    for literal, name, _, _ in _FORMATTER.parse(text):
        out.append(literal)
        if name is not None:
            out.append(values[name])
    return "".join(out)


def escape(text: str) -> str:
    """A template that fills to `text` exactly."""
    return text.replace("{", "{{").replace("}", "}}")


def _template(text: str) -> str:
    message = template_problem(text)
    if message is not None:
        raise problem(message)
    return text


_TEXT_SAYS = f"must be a string of 1..{MAX_TEXT_CHARS} characters without control characters"
Text = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS, pattern=NO_CONTROL),
    AfterValidator(_template), Says(_TEXT_SAYS + ", not {value!r}"),
]
UrlTemplate = Annotated[
    str, StringConstraints(max_length=2048, pattern=URL_TEMPLATE), AfterValidator(_template),
    Says("must be an http(s) URL, not {value!r} (placeholders: " + _KNOWN + ")"),
]
HttpsTemplate = Annotated[
    str, StringConstraints(max_length=2048, pattern=HTTPS_TEMPLATE), AfterValidator(_template),
    Says("must be an https:// URL (PagerDuty shows images served over HTTPS only), not "
         "{value!r}"),
]


class Link(Section):
    """A link on the incident (PagerDuty shows it under the alert)."""

    href: UrlTemplate = Field(description="where it points")
    text: Text | None = Field(None, description="what it says (default: the URL)")


class Image(Section):
    """An image on the incident, e.g. a graph of the last hour."""

    src: HttpsTemplate = Field(description="the image, served over HTTPS")
    href: UrlTemplate | None = Field(None, description="where clicking it leads")
    alt: Text | None = Field(None, description="its alternative text")


_LIST_SAYS = "must be a list of {{href, text}} mappings, e.g. [{{href: https://..., text: " \
             "Dashboard}}]"
_IMAGES_SAYS = "must be a list of {{src, href, alt}} mappings, e.g. [{{src: https://.../graph" \
               ".png}}]"


def page_fields() -> dict[str, Any]:
    """The page keys, as create_model() takes them (CheckSettings gets them after its own)."""
    return {
        "component": (Text | None, Field(None, description="the part of the system that is "
                      "broken (payload.component), e.g. nginx")),
        "group": (Text | None, Field(None, description="a logical grouping of components "
                  "(payload.group), e.g. web-tier")),
        "event_class": (Text | None, Field(None, alias="class", description="the class or "
                        "type of the event (payload.class), e.g. http")),
        "links": (Annotated[list[Link] | None, Says(_LIST_SAYS)], Field(
            None, description="links on the incident; a check's list replaces the "
            "defaults'")),
        "images": (Annotated[list[Image] | None, Says(_IMAGES_SAYS)], Field(
            None, description="images on the incident; a check's list replaces the "
            "defaults'")),
        "runbook": (UrlTemplate | None, Field(None, description="shorthand for a first link "
                    "with text Runbook")),
    }


def with_page_fields(model: type[BaseModel]) -> type[BaseModel]:
    """`model` with the page keys after its own (same name, same docstring)."""
    return create_model(model.__name__, __base__=model, __doc__=model.__doc__,
                        __module__=model.__module__, **page_fields())


def build_page(settings: Mapping[str, Any], values: Mapping[str, str]) -> Page:
    """The Page of a check from its merged settings, placeholders filled with `values`."""
    if not any(settings.get(key) for key in PAGE_KEYS):
        return NO_PAGE  # most checks: nothing to fill, one shared (frozen) Page
    def text(value: str | None) -> str:
        return fill(value, values) if value else ""

    links = [] if not settings.get("runbook") else [
        {"href": text(settings["runbook"]), "text": RUNBOOK_TEXT}]
    for link in settings.get("links") or ():
        links.append(_drop_empty({"href": text(link.href), "text": text(link.text)}))
    images = [_drop_empty({"src": text(image.src), "href": text(image.href),
                           "alt": text(image.alt)})
              for image in settings.get("images") or ()]
    return Page(component=text(settings.get("component")), group=text(settings.get("group")),
                event_class=text(settings.get("event_class")), links=tuple(links),
                images=tuple(images))


def _drop_empty(fields: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in fields.items() if value}


FQDN_TIMEOUT = 2.0  # seconds the name lookup may take at a load; then the hostname is used


@functools.lru_cache(maxsize=8)
def host_fqdn(hostname: str, timeout: float = FQDN_TIMEOUT) -> str:
    """This host's fully qualified name (the default `source`), looked up once per process
    and bounded: the hostname when the lookup fails, is slow, or says only localhost.

    getaddrinfo(AI_CANONNAME) as `hostname --fqdn` does (socket.getfqdn's reverse lookup
    goes past the suite's loopback guard; this one is refused by it before any query)."""
    found: list[str] = []

    def lookup() -> None:
        try:
            infos = socket.getaddrinfo(hostname, None, flags=socket.AI_CANONNAME)
        except Exception:  # noqa: BLE001 - any failure means "use the hostname"
            return
        found.extend(info[3] for info in infos[:1])

    thread = threading.Thread(target=lookup, name="fqdn-lookup", daemon=True)
    thread.start()
    thread.join(timeout)
    name = found[0].rstrip(".") if found else ""
    if not name or name.split(".")[0] == "localhost" or len(name) > 255:
        return hostname
    return name
