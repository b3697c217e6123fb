"""manage.py submissions: the periodic job of EmailSubmission (docs/mail-delivery.md).

    manage.py submissions run                  send what is due (delayed sends, retries), then exit
    manage.py submissions run --loop --interval 30s
                                               the same, forever (a systemd service or a sidecar)
    manage.py submissions status               the submissions still to send, with their last error

Several runners at once (two machines, or a loop and a cron job) each send a different message:
a runner claims a row before it sends it (see submission.submissions).
"""
from __future__ import annotations

import re
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections, connections
from django.utils import timezone

from registry import ids
from submission import submissions
from submission.models import EmailSubmission

MAX_ROUNDS = 20
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_interval(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text or "")
    if not m or float(m.group(1)) <= 0:
        raise CommandError(f"Invalid interval {text!r}: use a number with s, m, h or d, e.g. 30s.")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


class Command(BaseCommand):
    help = "Send the submissions that are due (delayed sends and retries), once or in a loop."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        run = sub.add_parser("run", help="Send what is due.")
        run.add_argument("--loop", action="store_true", help="Keep running, checking every --interval.")
        run.add_argument("--interval", default="30s", help="Time between rounds with --loop (default 30s).")
        run.add_argument("--rounds", type=int, default=0, help="With --loop: stop after this many rounds "
                         "(default: never).")
        run.add_argument("--batch", type=int, default=100, help="At most this many submissions per round "
                         "(default 100).")
        sub.add_parser("status", help="List the submissions still to send.")

    def handle(self, *args, action, **options):
        return getattr(self, f"do_{action}")(**options)

    def _rounds(self, batch: int) -> None:
        # A full batch may leave more behind: go on until a round finds less, within a bound (a
        # retry due at once must not keep one call busy forever).
        for _ in range(MAX_ROUNDS):
            if self._round(batch) < batch:
                return

    def _round(self, batch: int) -> int:
        outcomes = submissions.run_due(limit=batch)
        for o in outcomes:
            self.stdout.write(f"{ids.encode(o.pk)}: {o.sent} sent, {o.temporary} to retry, {o.permanent} refused")
        return len(outcomes)

    def do_run(self, loop=False, interval="30s", rounds=0, batch=100, **_):
        seconds = parse_interval(interval)
        if batch < 1:
            raise CommandError("--batch must be at least 1.")
        if not loop:
            self._rounds(batch)
            return
        done = 0
        while True:
            close_old_connections()
            try:
                self._rounds(batch)
            except Exception as exc:  # a database outage must not end the service
                self.stderr.write(f"submission round failed: {type(exc).__name__}: {exc}")
            finally:
                connections.close_all()  # hold no connection while sleeping
            done += 1
            if rounds and done >= rounds:
                return
            self.stdout.flush()
            time.sleep(seconds)

    def do_status(self, **_):
        now = timezone.now()
        rows = EmailSubmission.objects.filter(next_attempt_at__isnull=False).order_by("next_attempt_at", "pk")
        if not rows.exists():
            self.stdout.write("Nothing to send.")
        for s in rows:
            queued = [a for a, d in s.delivery_status.items() if d.get("delivered") == "queued"]
            when = "due" if s.next_attempt_at <= now else f"at {s.next_attempt_at:%Y-%m-%d %H:%M:%S}Z"
            self.stdout.write(f"{ids.encode(s.pk)} (account {ids.encode(s.account_id)}): {s.undo_status}, "
                              f"{len(queued)} recipient(s) queued, {s.attempts} attempt(s), next {when}"
                              + (f"; last error: {s.last_error}" if s.last_error else ""))
