from cli import verbs
from cli.base import CliCommand

from .create import add_input_arguments


class Command(CliCommand):
    help = "Update an object with a JMAP PatchObject (keys may be JSON-pointer paths)."

    def add_verb_arguments(self, parser):
        parser.add_argument("object", help="Object name.")
        parser.add_argument("id", nargs="?", help="Object id; omit or `singleton` for singletons.")
        add_input_arguments(parser)

    def run(self, ctx, object, id=None, field=(), json_text=None, file=None, from_stdin=False, **options):
        verbs.update(ctx, object, id, list(field or []), json_text, file, from_stdin)
