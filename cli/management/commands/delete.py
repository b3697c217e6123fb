from cli import verbs
from cli.base import CliCommand


class Command(CliCommand):
    help = "Delete objects by id."

    def add_verb_arguments(self, parser):
        parser.add_argument("object", help="Object name.")
        parser.add_argument("--ids", help="Comma-separated ids.")
        parser.add_argument("--stdin", dest="from_stdin", action="store_true",
                            help="Read ids from stdin (a JSON array, or comma/space/newline separated).")

    def run(self, ctx, object, ids=None, from_stdin=False, **options):
        verbs.delete(ctx, object, ids, from_stdin)
