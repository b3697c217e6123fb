from registry.declaration import ObjectType, register

from . import models

CALENDAR_SCHEDULING = register(ObjectType(
    model=models.CalendarScheduling, name="CalendarScheduling", singleton=True,
    section="Settings › Calendar › Scheduling",
    description="Calendar scheduling: whether the server schedules (RFC 6638) and applies iMIP, its limits, "
    "and the HTTP RSVP links of the invitations mailed to attendees elsewhere with the /calendar/rsvp page "
    "they open.",
    groups=[("Scheduling", ["enable", "auto_add_invitations", "itip_max_size", "max_recipients"]),
            ("HTTP RSVP", ["http_rsvp_enable", "http_rsvp_url", "http_rsvp_link_expiry"])],
    labels={"enable": "Enable scheduling", "auto_add_invitations": "Auto-add invitations",
            "itip_max_size": "iTIP max size", "max_recipients": "Max recipients",
            "http_rsvp_enable": "Enable HTTP RSVP", "http_rsvp_url": "HTTP RSVP URL",
            "http_rsvp_link_expiry": "HTTP RSVP link expiry"},
))
