from cli import verbs
from cli.base import CliCommand


class Command(CliCommand):
    help = "Describe the management objects: every object, or one object's fields, or an enum."

    def add_verb_arguments(self, parser):
        parser.add_argument("name", nargs="?", help="Object or enum name (case-insensitive, x: optional).")

    def run(self, ctx, name=None, **options):
        verbs.describe(ctx, name)
