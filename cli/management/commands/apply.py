from cli import plan
from cli.base import CliCommand


class Command(CliCommand):
    help = "Apply an NDJSON plan of upsert, reconcile, create, update and destroy operations."

    def add_verb_arguments(self, parser):
        parser.add_argument("--file", help="Read the plan from a file.")
        parser.add_argument("--stdin", dest="from_stdin", action="store_true", help="Read the plan from stdin.")
        parser.add_argument("--dry-run", action="store_true", help="Validate the plan and print its header only.")
        parser.add_argument("--continue-on-error", action="store_true",
                            help="Run every operation; exit non-zero at the end if any failed.")
        parser.add_argument("--quiet", action="store_true", help="Print only the final summary.")
        parser.add_argument("--json", action="store_true", help="Print one NDJSON record per operation.")
        parser.add_argument("--progress", action="store_true", help="Print a line per request batch.")

    def run(self, ctx, file=None, from_stdin=False, dry_run=False, continue_on_error=False, quiet=False,
            json=False, progress=False, **options):
        plan.apply(ctx, file, from_stdin, dry_run, continue_on_error, quiet, json, progress)
