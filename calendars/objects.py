from registry.declaration import ObjectType, register

from . import models

CALENDAR_SCHEDULING = register(ObjectType(
    model=models.CalendarScheduling, name="CalendarScheduling", singleton=True,
    section="Settings › Calendar › Scheduling",
    description="Calendar scheduling: the HTTP RSVP links of the invitations mailed to attendees elsewhere "
    "and the /calendar/rsvp page they open.",
    groups=[("HTTP RSVP", ["http_rsvp_enable", "http_rsvp_url", "http_rsvp_link_expiry"])],
    labels={"http_rsvp_enable": "Enable HTTP RSVP", "http_rsvp_url": "HTTP RSVP URL",
            "http_rsvp_link_expiry": "HTTP RSVP link expiry"},
))
