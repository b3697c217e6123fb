"""The bounds of one script: what it may hold when it is stored, and what one run may spend.

The defaults follow the reference's untrusted (user script) interpreter. A deployment overrides
them with the `SIEVE_LIMITS` setting, a dict of the field names below."""
from __future__ import annotations

from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class Limits:
    max_script_size: int = 102_400       # bytes of UTF-8 script text
    max_nested_blocks: int = 15          # if/elsif/else blocks inside each other
    max_nested_tests: int = 15           # allof/anyof/not inside each other
    max_string_length: int = 4096        # one string in the script, and one expanded at run time
    max_variable_name: int = 32
    max_variable_size: int = 4096        # a variable's value is cut to this many characters
    max_variables: int = 128             # distinct variables one run may set
    max_match_variables: int = 30        # ${0}..${n} kept after a :matches / :regex
    max_redirects: int = 1               # redirect actions of one run
    max_actions: int = 32                # actions of one run (keep, fileinto, redirect, vacation, ...)
    max_steps: int = 5000                # commands, tests and match work units of one run
    max_header_values: int = 1000        # header fields one test looks at
    max_regex_memory: int = 2 << 20      # bytes RE2 may use for one :matches or :regex pattern
    min_vacation_seconds: int = 60       # RFC 5230 §4.1 / RFC 6131: the floor of :days / :seconds
    max_vacation_days: int = 60          # a larger :days is cut to this (RFC 5230 §4.1 allows it)
    default_vacation_days: int = 7

    @classmethod
    def from_settings(cls) -> "Limits":
        """The limits of the running deployment (`settings.SIEVE_LIMITS`), defaults elsewhere."""
        # Imported here so that the library itself can run without Django configured (scripts
        # are validated by tools and tests that have no settings module).
        from django.conf import settings

        overrides = getattr(settings, "SIEVE_LIMITS", None) or {}
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise ValueError(f"SIEVE_LIMITS: unknown limit(s) {', '.join(sorted(unknown))}")
        return replace(cls(), **{k: int(v) for k, v in overrides.items()})
