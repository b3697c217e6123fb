"""The calendar store's tables: calendars, their objects (one iCalendar resource each), and the
occurrence index written when an object is stored, so that time-range queries and free-busy
read rows instead of parsing iCalendar.

See docs/calendars.md.
"""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, URLValidator
from django.db import models

from registry.models import SingletonModel

# The components a calendar object resource is about (RFC 4791 §4.1: one type per resource).
COMPONENTS = ("VEVENT", "VTODO", "VJOURNAL", "VFREEBUSY", "VAVAILABILITY")


class Calendar(models.Model):
    """One calendar collection of an account: `/dav/cal/{account}/{slug}/`."""

    account = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    # The collection's last path segment, as the client sent it (already percent-encoded).
    slug = models.CharField(max_length=255)
    display_name = models.CharField(max_length=255, blank=True)
    description = models.TextField(blank=True)
    color = models.CharField(max_length=32, blank=True)
    sort_order = models.IntegerField(null=True, blank=True)
    # RFC 4791 calendar-timezone (a VCALENDAR holding one VTIMEZONE) and RFC 7809
    # calendar-timezone-id; either, both or none. Floating times are read in this zone.
    timezone = models.TextField(blank=True)
    timezone_id = models.CharField(max_length=64, blank=True)
    # Space-separated component names; empty means every component is accepted.
    components = models.CharField(max_length=128, blank=True)
    # RFC 6638 schedule-calendar-transp: a transparent calendar never counts as busy.
    transparent = models.BooleanField(default=False)
    # Properties the DAV layer stores verbatim: {"{namespace}name": "<xml…/>"}.
    dead_properties = models.JSONField(default=dict, blank=True)
    # The journal's CalendarEvent / Calendar states when a member / the calendar itself last
    # changed: the calendar's ctag, so that a client re-reads only the calendars that changed.
    # Grants to other accounts, as the ACL method set them: [{"principal": account id,
    # "rights": [...]}] (the shape dav.access reads); `shared` marks the few calendars that
    # have any, so that "what is shared with me" reads an index, not every calendar.
    acl = models.JSONField(default=list, blank=True)
    shared = models.BooleanField(default=False, db_index=True)
    member_change = models.BigIntegerField(default=0)
    own_change = models.BigIntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)
    modified = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "slug"], name="calendars_calendar_slug")]
        ordering = ["sort_order", "slug"]

    def __str__(self):
        return f"{self.slug} of account {self.account_id}"

    @property
    def component_set(self) -> tuple[str, ...]:
        return tuple(self.components.split()) if self.components else COMPONENTS

    @property
    def ctag(self) -> str:
        return f"{self.member_change}-{self.own_change}"


class CalendarObject(models.Model):
    """One calendar object resource: `/dav/cal/{account}/{slug}/{name}`, one UID, one type."""

    calendar = models.ForeignKey(Calendar, on_delete=models.CASCADE, related_name="items")
    # The owner again, so that the per-account object limit is one indexed count.
    account = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=255)
    uid = models.CharField(max_length=255)
    component = models.CharField(max_length=16)
    data = models.TextField()
    # A hash of `data`, unquoted: an identical PUT keeps it, any other change moves it.
    etag = models.CharField(max_length=40)
    size = models.PositiveIntegerField()
    # The span of every instance: first start, last end (NULL: an RRULE without end).
    first_start = models.DateTimeField(null=True)
    last_end = models.DateTimeField(null=True)
    # The occurrence rows cover every instance starting before this moment; NULL: all of them.
    # Only an RRULE without end leaves it set; a query reaching past it reads the object itself.
    indexed_until = models.DateTimeField(null=True)
    has_alarms = models.BooleanField(default=False)
    # RFC 6638 §3.2.10: set on scheduling objects (those with an ORGANIZER); a client's write
    # moves it, the server's applying of a REPLY to the organizer's copy does not.
    schedule_tag = models.CharField(max_length=40, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    modified = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["calendar", "name"], name="calendars_object_name"),
            models.UniqueConstraint(fields=["calendar", "uid"], name="calendars_object_uid"),
        ]
        indexes = [models.Index(fields=["calendar", "indexed_until"], name="calendars_object_open")]

    def __str__(self):
        return f"{self.name} in calendar {self.calendar_id}"

    @property
    def quoted_etag(self) -> str:
        return f'"{self.etag}"'

    @property
    def href(self) -> str:
        """The path below the account's home (what the journal keeps for tombstones)."""
        return f"{self.calendar.slug}/{self.name}"


class Occurrence(models.Model):
    """One instance span of an object: the index time-range queries and free-busy read.

    Floating times (no time zone, or all-day dates) are stored as if they were UTC, with
    `floating` set: a query moves them into its own time zone before comparing. A span
    without any time (a VTODO without dates) runs from the minimum to the maximum moment.
    """

    class Busy(models.IntegerChoices):
        FREE = 0  # TRANSP:TRANSPARENT or STATUS:CANCELLED
        BUSY = 1
        TENTATIVE = 2

    object = models.ForeignKey(CalendarObject, on_delete=models.CASCADE, related_name="occurrences")
    calendar = models.ForeignKey(Calendar, on_delete=models.CASCADE, related_name="+", db_index=False)
    start = models.DateTimeField()
    end = models.DateTimeField()
    floating = models.BooleanField(default=False)
    busy = models.PositiveSmallIntegerField(choices=Busy.choices, default=Busy.BUSY)
    # Longer than LONG_SPAN. A time range finds the others by their start alone (they start at
    # most LONG_SPAN before it), a short scan of the start index whatever the calendar's size;
    # the few long ones have an index of their own, by end.
    long = models.BooleanField(default=False)

    # Floating spans are stored as if in UTC and may move by up to 14 hours either way, so the
    # bound leaves room for an all-day event (a day) plus that slack.
    LONG_SPAN = timedelta(days=2)

    class Meta:
        indexes = [
            models.Index(fields=["calendar", "start"], name="calendars_occurrence_start"),
            models.Index(fields=["calendar", "end"], condition=models.Q(long=True), name="calendars_occurrence_long"),
        ]

    def __str__(self):
        return f"{self.start}–{self.end} of object {self.object_id}"


class ScheduleMessage(models.Model):
    """One iTIP message delivered to an account (RFC 6638 §2.2): its scheduling inbox, which
    the DAV layer serves at the principal's schedule-inbox-URL. Its effect on the account's
    calendars is already applied; the copy is for clients that show the message itself."""

    account = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    uid = models.CharField(max_length=255)
    method = models.CharField(max_length=16)
    sender = models.CharField(max_length=320)
    data = models.TextField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["account", "created"], name="calendars_inbox_account")]

    def __str__(self):
        return f"{self.method} {self.uid} for account {self.account_id}"

    @property
    def name(self) -> str:
        return f"{self.pk}.ics"


RSVP_EXPIRY_MIN, RSVP_EXPIRY_MAX = timedelta(minutes=1), timedelta(days=3650)
rsvp_url_validator = URLValidator(schemes=["http", "https"], message="Enter an absolute http:// or https:// URL.")


class CalendarScheduling(SingletonModel):
    """The reference's `CalendarScheduling` settings this server implements: scheduling on or off,
    its limits, what iMIP arriving by mail may do (docs/calendars.md), and the HTTP RSVP links put
    in iMIP invitations with the `/calendar/rsvp` page they lead to (docs/calendar-invitations.md)."""

    enable = models.BooleanField(
        default=True, verbose_name="Enable scheduling",
        help_text="Send and receive invitations: the server schedules the events its accounts organize "
        "or answer (RFC 6638), and applies those arriving by mail (iMIP). Off: events are stored as "
        "they are written, and nobody is invited.")
    auto_add_invitations = models.BooleanField(
        default=False, verbose_name="Auto-add invitations",
        help_text="Add an invitation arriving by mail for an event not yet known to the recipient's "
        "calendar, from any authenticated sender. Off: only from the senders in the recipient's contacts; "
        "the others' invitations are left in the scheduling inbox (and the mail).")
    itip_max_size = models.PositiveIntegerField(
        default=524_288, validators=[MinValueValidator(100)], verbose_name="iTIP max size",
        help_text="Largest calendar part of an incoming iMIP message that is applied, in bytes; a larger "
        "one is ignored (the mail is still delivered).")
    max_recipients = models.PositiveIntegerField(
        default=100, validators=[MinValueValidator(1)], verbose_name="Max recipients",
        help_text="Most recipients one change of an event may send invitations or cancellations to; "
        "a change that would send to more is refused.")

    http_rsvp_enable = models.BooleanField(
        default=True, verbose_name="HTTP RSVP enable",
        help_text="Put Accept / Maybe / Decline links in the invitations mailed to attendees elsewhere, and "
        "answer them at /calendar/rsvp.")
    http_rsvp_url = models.CharField(
        max_length=255, null=True, blank=True, validators=[rsvp_url_validator], verbose_name="HTTP RSVP URL",
        help_text="The address the links start with, for a proxy that maps another URL onto /calendar/rsvp. "
        "Empty: the server's public URL followed by /calendar/rsvp.")
    http_rsvp_link_expiry = models.DurationField(
        default=timedelta(days=90),
        verbose_name="HTTP RSVP link expiry",
        help_text="How long a link stays valid after the invitation was sent (1 minute to 10 years). "
        "Shortening it also ends older links.")

    class Meta:
        verbose_name = "calendar scheduling"
        verbose_name_plural = "calendar scheduling"

    def __str__(self):
        return "Calendar scheduling settings"

    def clean(self):
        # The bounds as a check rather than field validators: the schema reads validator limits
        # as numbers, and a duration's are not.
        expiry = self.http_rsvp_link_expiry
        if expiry is not None and not RSVP_EXPIRY_MIN <= expiry <= RSVP_EXPIRY_MAX:
            raise ValidationError({"http_rsvp_link_expiry": ValidationError(
                "Must be between 1 minute and 3650 days.", code="out_of_range")})
