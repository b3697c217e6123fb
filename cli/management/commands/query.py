from cli import verbs
from cli.base import CliCommand


class Command(CliCommand):
    help = "List the objects of a type, optionally filtered."

    def add_verb_arguments(self, parser):
        parser.add_argument("object", help="Object name, e.g. role.")
        parser.add_argument("--where", action="append", default=[], metavar="FIELD<op>VALUE",
                            help="Filter clause: f=v, f>=v, f<=v, f>v, f<v (repeatable; clauses are ANDed).")
        parser.add_argument("--fields", help="Comma-separated columns.")
        parser.add_argument("--json", action="store_true", help="Print NDJSON: one record (or id) per line.")

    def run(self, ctx, object, where=(), fields=None, json=False, **options):
        verbs.query(ctx, object, list(where or []), fields, json)
