from cli import verbs
from cli.base import CliCommand


def add_input_arguments(parser):
    parser.add_argument("--field", action="append", default=[], metavar="KEY=VALUE",
                        help="A property value, coerced by the schema type (repeatable).")
    parser.add_argument("--json", dest="json_text", metavar="JSON", help="The whole document as a JSON object.")
    parser.add_argument("--file", help="Read the JSON object from a file.")
    parser.add_argument("--stdin", dest="from_stdin", action="store_true", help="Read the JSON object from stdin.")


class Command(CliCommand):
    help = "Create an object (Object/Variant selects a variant)."

    def add_verb_arguments(self, parser):
        parser.add_argument("object", help="Object name, optionally Object/Variant.")
        add_input_arguments(parser)

    def run(self, ctx, object, field=(), json_text=None, file=None, from_stdin=False, **options):
        verbs.create(ctx, object, list(field or []), json_text, file, from_stdin)
