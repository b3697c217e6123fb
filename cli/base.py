"""The base of every verb: global options (cli.md §2), error reporting and output streams."""
from __future__ import annotations

import os
import sys
from functools import cached_property

from django.core.management.base import BaseCommand

from .errors import CliError, printable
from .render import Ansi
from .schema import Schema
from .transport import open_client


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class Ctx:
    """What a verb works with: the streams, colours, and (lazily) the server and its schema."""

    def __init__(self, options: dict, out, err, stdin, color: bool):
        self.options = options
        self.out, self.err, self.stdin = out, err, stdin
        self.ansi = Ansi(color)
        self.err_ansi = Ansi(color and _isatty(err))
        self.interactive = _isatty(out) and _isatty(stdin)

    @cached_property
    def client(self):
        return open_client(self.options, stdin=self.stdin, err=self.err)

    @cached_property
    def schema(self) -> Schema:
        return Schema(self.client.schema_doc())

    def write(self, text: str) -> None:
        self.out.write(text)

    def note(self, text: str) -> None:
        """Progress and warnings: stderr, so stdout stays machine-readable."""
        self.err.write(text if text.endswith("\n") else text + "\n")
        self.err.flush()

    def warn(self, text: str) -> None:
        self.note(f"warning: {text}")


class CliCommand(BaseCommand):
    """A stalwart-cli verb. Subclasses add their arguments and implement run(ctx, **options)."""

    requires_system_checks = []
    stealth_options = ("stdin_stream",)  # call_command(..., stdin_stream=io.StringIO(...))

    def add_arguments(self, parser):
        self.add_verb_arguments(parser)
        group = parser.add_argument_group("server (remote mode; without --url the local database is used)")
        group.add_argument("--url", help="Server base URL (env STALWART_URL). Without it the commands run "
                                         "in-process against the configured database.")
        group.add_argument("--user", help="HTTP Basic user name (env STALWART_USER).")
        group.add_argument("--password", help="HTTP Basic password (env STALWART_PASSWORD; prompted on a TTY).")
        group.add_argument("--api-key", dest="api_key", help="Bearer token (env STALWART_TOKEN).")
        group.add_argument("-k", "--insecure", action="store_true", help="Skip TLS certificate verification.")
        group.add_argument("--debug", action="store_true", help="Log requests and responses to stderr "
                                                                "(env STALWART_DEBUG).")

    def add_verb_arguments(self, parser):
        pass

    def execute(self, *args, **options):
        try:
            return super().execute(*args, **options)
        except CliError as exc:
            err = self.stderr._out if hasattr(self.stderr, "_out") else sys.stderr
            color = not options.get("no_color") and "NO_COLOR" not in os.environ and _isatty(err)
            ansi = Ansi(color)
            try:
                err.write(f"{ansi.red}error:{ansi.reset} {printable(str(exc))}\n")
                err.flush()
            except BrokenPipeError:
                pass
            sys.exit(1)
        except BrokenPipeError:
            # `| head` closed the pipe: a normal end.
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
            except (OSError, ValueError, AttributeError):
                pass
            sys.exit(0)

    def handle(self, *args, **options):
        out = self.stdout._out
        err = self.stderr._out
        stdin = options.get("stdin_stream") or sys.stdin
        color = not options.get("no_color") and "NO_COLOR" not in os.environ and _isatty(out)
        ctx = Ctx(options, out, err, stdin, color)
        try:
            self.run(ctx, *args, **options)
        finally:
            try:
                out.flush()
            except (BrokenPipeError, ValueError):
                pass

    def run(self, ctx: Ctx, *args, **options):
        raise NotImplementedError
