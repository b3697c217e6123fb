"""Invalid scripts: the exact line, column and message; hostile scripts: bounded work."""
from __future__ import annotations

import pytest

from sieve import CAPABILITIES, Envelope, Keep, Limits, Message, SieveError, evaluate, parse, validate

VALID = [
    "",
    "keep;",
    "# only a comment",
    "/* a bracketed\n comment */ keep;",
    'require ["fileinto", "reject", "envelope", "vacation", "variables", "relational", "imap4flags",'
    ' "body", "copy", "regex", "ereject", "vacation-seconds", "comparator-i;ascii-numeric"];',
    'if not exists "x" { keep; } else { discard; }',
    'require "fileinto"; fileinto text:\r\nINBOX\r\n.\r\n;',   # CRLF script
    'if size :over 10G { discard; }',
    'if header :contains "subject" "a\\"b\\\\c" { discard; }',
]


@pytest.mark.parametrize("script", VALID)
def test_valid(script):
    assert validate(script) is None


INVALID = [
    # script, line, column, message (a fragment)
    ("keep", 1, 5, "expected ';' or a block after 'keep', found the end of the script"),
    ("kep;", 1, 1, "unknown command 'kep'"),
    ('fileinto "x";', 1, 1, '\'fileinto\' needs require "fileinto"'),
    ('require ["fileinto", "enotify"];', 1, 9, 'unsupported extension "enotify"'),
    ('keep;\nrequire "fileinto";', 2, 1, "'require' must come before any other command"),
    ('if true { require "fileinto"; }', 1, 11, "'require' must come before any other command"),
    ("if true {\n  keep;\n", 3, 1, "expected '}' to close the block opened at line 1, column 9"),
    ("keep; }", 1, 7, "unexpected '}'"),
    ("else { keep; }", 1, 1, "'else' without a preceding 'if'"),
    ("if true { keep; } else { keep; } else { keep; }", 1, 34, "'else' without a preceding 'if'"),
    ("if { keep; }", 1, 1, "'if' takes exactly one test"),
    ("if true;", 1, 1, "'if' needs a block"),
    ("keep { }", 1, 1, "'keep' takes no block"),
    ("if frob { keep; }", 1, 4, "unknown test 'frob'"),
    ('if header :is "a" { keep; }', 1, 4, "'header' takes 2 positional argument(s), not 1"),
    ('if header :bogus "a" "b" { keep; }', 1, 11, "'header' has no tag ':bogus'"),
    ('if header :is :contains "a" "b" { keep; }', 1, 15, "':contains' cannot be combined with ':is'"),
    ('if header :value "gt" "a" "b" { keep; }', 1, 11, '\':value\' needs require "relational"'),
    ('require "relational"; if header :value "zz" "a" "b" { keep; }', 1, 26, 'unknown relational operator "zz"'),
    ('if header :comparator "i;ascii-numeric" "a" "b" { keep; }', 1, 4,
     'comparator "i;ascii-numeric" needs require "comparator-i;ascii-numeric"'),
    ('if header :comparator "i;frob" "a" "b" { keep; }', 1, 4, 'unknown comparator "i;frob"'),
    ('require "comparator-i;ascii-numeric";\nif header :contains :comparator "i;ascii-numeric" "a" "1" { keep; }',
     2, 4, "allows only :is, :value and :count"),
    ('if size 10 { keep; }', 1, 4, "'size' needs :over or :under"),
    ('if size :over "10" { keep; }', 1, 15, "'size' expects a number here"),
    ('if size :over 10 :under 20 { keep; }', 1, 18, "':under' cannot be combined with ':over'"),
    ('require "envelope"; if envelope "subject" "x" { keep; }', 1, 33, 'unknown envelope part "subject"'),
    ('require "regex"; if header :regex "subject" "a(b" { keep; }', 1, 45, "invalid regular expression"),
    ('require "regex"; if header :regex "subject" "(a)\\\\1" { keep; }', 1, 45, "invalid regular expression"),
    ('require "variables"; set "1x" "y";', 1, 26, 'invalid variable name "1x"'),
    ('require "variables"; set :lower :upper "a" "y";', 1, 22, "two 'set' modifiers of the same precedence"),
    ('require "vacation"; vacation :days 1 :seconds 5 "x";', 1, 38, "':seconds' needs require \"vacation-seconds\""),
    ('require "vacation"; vacation :days "1" "x";', 1, 30, "':days' must be followed by a number"),
    ('require ["fileinto"]; fileinto :copy "x";', 1, 32, '\':copy\' needs require "copy"'),
    ('if allof () { keep; }', 1, 11, "expected a test, found ')'"),
    ('if anyof (true false) { keep; }', 1, 16, "'true' takes no test"),
    ('if anyof (true "x") { keep; }', 1, 16, "'true' takes 0 positional argument(s), not 1"),
    ('if anyof (true, false { keep; }', 1, 23, "expected ',' or ')' in the test list, found '{'"),
    ('if header ["a" "b"] "c" { keep; }', 1, 16, "expected ',' or ']' in the string list"),
    ('if header "a" "b unterminated', 1, 15, "unterminated string"),
    ("/* never closed", 1, 1, "unterminated comment"),
    ('require "fileinto";\nfileinto text:\nINBOX\n', 2, 10, "unterminated multi-line string"),
    ('require "fileinto"; fileinto text: x\nINBOX\n.\n;', 1, 36, "'text:' must be followed by the end of the line"),
    ("if size :over 10X { keep; }", 1, 17, "a number is followed by a letter other than K, M or G"),
    ("if size :over 99999999999G { keep; }", 1, 15, "number too large"),
    ('require "encoded-character";\nif header :is "a" "x${unicode:D800}" { keep; }', 2, 19,
     "${unicode:...} names no character: D800"),
    ('require "encoded-character";\nif header :is "a" "${unicode:110000}" { keep; }', 2, 19,
     "${unicode:...} names no character: 110000"),
    ('if address :user "to" "x" { keep; }', 1, 12, "':user' needs require \"subaddress\""),
    ("keep\ndiscard;", 2, 1, "expected ';' after 'keep', found 'discard'"),
    ('redirect "nobody";', 1, 10, 'redirect to an invalid address "nobody"'),
    ("keep; @", 1, 7, "unexpected character '@'"),
    ("keep; : x", 1, 7, "a tag is ':' followed by a name"),
    ("if true { keep; }\n  elsif", 2, 8, "expected ';' or a block after 'elsif'"),
    ('require "imap4flags"; setflag "a" "b" "c";', 1, 39, "'setflag' takes 1 positional argument(s) (or 2), not 3"),
]


@pytest.mark.parametrize("script,line,column,message", INVALID, ids=[i[3][:40] for i in INVALID])
def test_invalid_positions(script, line, column, message):
    error = validate(script)
    assert isinstance(error, SieveError), script
    assert (error.line, error.column) == (line, column), str(error)
    assert message in error.message
    assert str(error) == f"line {line}, column {column}: {error.message}"
    with pytest.raises(SieveError):
        parse(script)


def test_every_capability_is_accepted():
    for capability in CAPABILITIES:
        assert validate(f'require "{capability}";') is None, capability


def test_script_size_limit():
    assert validate("keep;" * 10, Limits(max_script_size=49)).message == "script larger than 49 bytes"
    assert validate("keep;" * 10, Limits(max_script_size=50)) is None
    # Counted in UTF-8 bytes, not characters.
    assert validate('# ' + "é" * 30, Limits(max_script_size=50)) is not None


def test_string_length_limit():
    error = validate('if header :is "a" "%s" { keep; }' % ("x" * 5000))
    assert (error.line, error.column, error.message) == (1, 19, "string longer than 4096 characters")
    error = validate('require "fileinto"; fileinto text:\n%s.\n;' % ("x" * 70 + "\n"))
    assert error is None


def test_block_nesting_limit():
    def nested(depth):
        return "if true {" * depth + "keep;" + "}" * depth

    assert validate(nested(15)) is None
    error = validate(nested(16))
    assert (error.line, error.column) == (1, 15 * 9 + 9)
    assert error.message == "blocks nested deeper than 15"
    # Ten thousand levels: refused at level 16, without a Python recursion error.
    assert validate(nested(10_000)).message == "blocks nested deeper than 15"


def test_test_nesting_limit():
    assert validate("if " + "not " * 14 + "true { keep; }") is None
    error = validate("if " + "not " * 20_000 + "true { keep; }")
    assert error.message == "tests nested deeper than 15"
    assert (error.line, error.column) == (1, 4 + 15 * 4)
    assert validate("if " + "anyof(" * 20 + "true" + ")" * 20 + " { keep; }").message == "tests nested deeper than 15"


def test_not_text():
    assert validate(b"keep;").message == "a script is text"


PLAIN = Message.from_bytes(b"From: a@b.example\r\nTo: me@example.com\r\nSubject: hello\r\n\r\nbody\r\n")
ME = Envelope("a@b.example", "me@example.com")


def test_catastrophic_matches_is_linear():
    """A pattern with many stars against a long value that almost matches: a backtracking glob
    takes exponential time; RE2 does one linear pass, so the step count stays small."""
    value = "a" * 4000
    raw = f"Subject: {value}\r\n\r\nx".encode()
    script = parse('if header :matches "subject" "%s" { discard; }' % ("*a" * 40 + "*b"))
    result = evaluate(script, Message.from_bytes(raw), ME)
    assert result.error is None and result.actions == [Keep(implicit=True)]
    assert result.steps < 20


def test_catastrophic_regex_is_linear():
    raw = ("Subject: " + "a" * 4000 + "!\r\n\r\nx").encode()
    script = parse('require "regex"; if header :regex "subject" "^(a+)+$" { discard; }')
    result = evaluate(script, Message.from_bytes(raw), ME)
    assert result.error is None and result.actions == [Keep(implicit=True)]


def test_variable_doubling_is_capped():
    """Each `set` doubles a variable: 40 of them would make 2^40 characters; every value is
    cut at the limit, so memory and steps stay bounded."""
    script = parse('require ["variables", "fileinto"]; set "a" "xy";' + 'set "a" "${a}${a}";' * 40
                   + 'fileinto "${a}";')
    result = evaluate(script, PLAIN, ME)
    assert result.error is None
    (action,) = result.actions
    assert len(action.mailbox) == Limits().max_string_length
    assert result.steps < 200


def test_step_limit_stops_a_costly_script():
    """Many big body scans: past max_steps the run stops, keeps the message and says why."""
    raw = b"Subject: s\r\n\r\n" + b"x" * 200_000
    script = parse('require "body";' + 'if body :contains ["nope1", "nope2", "nope3"] { discard; }' * 200)
    result = evaluate(script, Message.from_bytes(raw), ME)
    assert result.actions == [Keep(implicit=True)]
    assert "more than 5000 steps" in result.error
    assert result.steps <= Limits().max_steps + 1000


def test_action_limit():
    script = parse('require ["fileinto"];' + "".join(f'fileinto "box{i}";' for i in range(40)))
    result = evaluate(script, PLAIN, ME)
    assert result.actions == [Keep(implicit=True)]
    assert "more than 32 actions" in result.error


def test_regex_from_variables_that_does_not_compile():
    script = parse('require ["regex", "variables"]; set "p" "a("; if header :regex "subject" "${p}" { discard; }')
    result = evaluate(script, PLAIN, ME)
    assert result.actions == [Keep(implicit=True)]
    assert "invalid regular expression" in result.error


def test_many_headers_are_capped():
    raw = b"".join(b"X-H: v%d\r\n" % i for i in range(5000)) + b"\r\nx"
    script = parse('if header :is "x-h" "v4999" { discard; }')
    result = evaluate(script, Message.from_bytes(raw), ME)
    # Only the first max_header_values values are looked at.
    assert result.actions == [Keep(implicit=True)] and result.error is None
    assert result.steps < 3 * Limits().max_header_values


def test_pattern_past_the_regex_memory_bound():
    """RE2 refuses to build a pattern past its memory bound: a constant :regex key is refused at
    upload, a :matches key (or a :regex one from variables) stops the run, which keeps the message."""
    small = Limits(max_regex_memory=4096)
    error = validate('require "regex"; if header :regex "subject" "%s" { keep; }' % ("(a+b*)" * 200), small)
    assert (error.line, error.column) == (1, 45) and "invalid regular expression" in error.message
    script = parse('if header :matches "subject" "%s" { discard; }' % ("*x" * 500), small)
    result = evaluate(script, PLAIN, ME, small)
    assert result.actions == [Keep(implicit=True)]
    assert "the :matches pattern is too complex" in result.error
    # The default bound takes the same patterns.
    assert validate('require "regex"; if header :regex "subject" "%s" { keep; }' % ("(a+b*)" * 200)) is None
    assert evaluate(parse('if header :matches "subject" "%s" { discard; }' % ("*x" * 500)), PLAIN, ME).error is None
