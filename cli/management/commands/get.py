from cli import verbs
from cli.base import CliCommand


class Command(CliCommand):
    help = "Show one object (a singleton's id may be omitted)."

    def add_verb_arguments(self, parser):
        parser.add_argument("object", help="Object name, e.g. authentication or x:Domain.")
        parser.add_argument("id", nargs="?", help="Object id; omit or `singleton` for singletons.")
        parser.add_argument("--fields", help="Comma-separated properties to fetch.")
        parser.add_argument("--json", action="store_true", help="Print the object as one compact JSON line.")

    def run(self, ctx, object, id=None, fields=None, json=False, **options):
        verbs.get(ctx, object, id, fields, json)
