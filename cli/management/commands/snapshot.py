from cli import snapshot
from cli.base import CliCommand


class Command(CliCommand):
    help = "Export the selected object types as an NDJSON apply plan (upserts, then singleton updates)."

    def add_verb_arguments(self, parser):
        parser.add_argument("objects", nargs="+", metavar="OBJECT", help="Object types to export.")
        parser.add_argument("--output", help="Write the plan to this file instead of stdout.")
        parser.add_argument("--include-secrets", action="store_true", help="Keep secret fields.")
        parser.add_argument("--allow-unresolved", metavar="T1,T2",
                            help="Referenced types left out of the selection; references to them are dropped.")
        parser.add_argument("--quiet", action="store_true", help="No progress on stderr.")

    def run(self, ctx, objects=(), output=None, include_secrets=False, allow_unresolved=None, quiet=False,
            **options):
        snapshot.snapshot(ctx, list(objects), output, include_secrets, allow_unresolved, quiet)
