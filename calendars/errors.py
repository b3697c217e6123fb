"""The store's refusals, each named by the DAV precondition a client is answered with."""
from __future__ import annotations

CALDAV = "urn:ietf:params:xml:ns:caldav"
DAV = "DAV:"


class CalendarError(Exception):
    """A refusal: `condition` is the precondition element's local name in `namespace` (RFC 4791
    §5.3.2, §7.x, RFC 4918 …), `status` the HTTP status the reference answers it with, `href`
    the path (below the account's home) of the object a UID conflicts with.

    `namespace` is "caldav", "dav" or None (a plain status without an error body, e.g. 404).
    """

    def __init__(self, condition: str, description: str = "", *, status: int = 412,
                 namespace: str | None = "caldav", href: str | None = None):
        super().__init__(description or condition)
        self.condition, self.description, self.status = condition, description or condition, status
        self.namespace, self.href = namespace, href

    @property
    def namespace_uri(self) -> str | None:
        return {"caldav": CALDAV, "dav": DAV}.get(self.namespace or "")

    def __repr__(self):
        return f"CalendarError({self.condition!r}, status={self.status}, href={self.href!r})"


def not_found(what: str = "No such calendar or object.") -> CalendarError:
    return CalendarError("not-found", what, status=404, namespace=None)


def precondition_failed(what: str) -> CalendarError:
    """If-Match / If-None-Match did not hold (RFC 9110): a 412 without an error body."""
    return CalendarError("precondition-failed", what, status=412, namespace=None)
