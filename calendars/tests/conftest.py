from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


def sample(name: str, *, drop: tuple[str, ...] = ()) -> bytes:
    """A stored real-world export, with CRLF line ends as clients send them, minus `drop` lines."""
    lines = [line for line in (DATA / name).read_text().splitlines() if not line.startswith(drop)]
    return ("\r\n".join(lines) + "\r\n").encode()


def event(uid: str, start: str, end: str | None = None, *, extra: str = "", component: str = "VEVENT") -> bytes:
    """A minimal single-component resource; `start`/`end` are iCalendar values with their parameters,
    e.g. ":20260601T100000Z" or ";VALUE=DATE:20260601"."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN", f"BEGIN:{component}", f"UID:{uid}",
             "DTSTAMP:20260101T000000Z"]
    if start:
        lines.append(f"DTSTART{start}")
    if end:
        lines.append(f"{'DUE' if component == 'VTODO' else 'DTEND'}{end}")
    lines.extend(line for line in extra.splitlines() if line)
    lines.extend([f"END:{component}", "END:VCALENDAR"])
    return ("\r\n".join(lines) + "\r\n").encode()


@pytest.fixture
def jane(make_account):
    return make_account("jane")


@pytest.fixture
def bob(make_account):
    return make_account("bob")


@pytest.fixture
def work(jane):
    from calendars import services

    return services.create_calendar(jane, "work", display_name="Work")
