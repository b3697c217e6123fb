"""Parsing (RFC 5228 §8.2) and validation: a script becomes a tree of checked `Node`s, or a
`SieveError` naming the line and column of the first fault."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.utils import parseaddr

import re2

from .errors import SieveError
from .lexer import EOF, IDENT, NUMBER, PUNCT, STRING, TAG, Lexer, Token
from .limits import Limits

# What `require` accepts: the extensions this interpreter runs. Anything else is refused by name.
CAPABILITIES = (
    "body", "comparator-i;ascii-numeric", "comparator-i;ascii-casemap", "comparator-i;octet",
    "copy", "encoded-character", "envelope", "ereject", "fileinto", "imap4flags", "regex", "reject",
    "relational", "subaddress", "vacation", "vacation-seconds", "variables",
)
_BUILTIN_COMPARATORS = {"i;octet", "i;ascii-casemap"}
COMPARATORS = {"i;octet", "i;ascii-casemap", "i;ascii-numeric"}
RELATIONS = {"gt", "ge", "lt", "le", "eq", "ne"}
SET_MODIFIERS = {  # RFC 5229 §4.1: applied in this order of precedence, highest first
    ":lower": 40, ":upper": 40, ":lowerfirst": 30, ":upperfirst": 30,
    ":quotewildcard": 20, ":length": 10,
}
_HEX = re.compile(r"\$\{hex:((?:[ \t\r\n]*[0-9A-Fa-f]{2})*[ \t\r\n]*)\}", re.I)
_UNICODE = re.compile(r"\$\{unicode:((?:[ \t\r\n]*[0-9A-Fa-f]+)*[ \t\r\n]*)\}", re.I)
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# Tag groups: at most one tag of a group per command (RFC 5228 §2.6.2).
_MATCH = {":is": None, ":contains": None, ":matches": None, ":regex": None, ":value": "string", ":count": "string"}
_COMPARATOR = {":comparator": "string"}
ADDRESS_PART = {":all": None, ":localpart": None, ":domain": None, ":user": None, ":detail": None}
_TRANSFORM = {":raw": None, ":text": None, ":content": "strings"}
_TAG_CAPABILITY = {
    ":regex": "regex", ":value": "relational", ":count": "relational", ":copy": "copy",
    ":flags": "imap4flags", ":seconds": "vacation-seconds", ":user": "subaddress", ":detail": "subaddress",
}


@dataclass(frozen=True)
class Spec:
    kind: str                     # "action", "control" or "test"
    capability: str | None
    positional: tuple = ()        # "string", "strings" or "number", in order
    optional_first: str | None = None   # an optional positional before the others
    tags: dict = field(default_factory=dict)     # tag -> argument kind or None
    groups: tuple = ()            # tag groups of which one tag may be given
    tests: str | None = None      # None, "one" or "list"


def _cmd(capability=None, positional=(), tags=None, groups=(), optional_first=None):
    return Spec("action", capability, positional, optional_first, tags or {}, groups)


def _test(capability=None, positional=(), tags=None, groups=(), tests=None, optional_first=None):
    return Spec("test", capability, positional, optional_first, tags or {}, groups, tests)


SPECS = {
    "require": _cmd(positional=("strings",)),
    "if": Spec("control", None, tests="one"),
    "elsif": Spec("control", None, tests="one"),
    "else": Spec("control", None),
    "stop": _cmd(),
    "keep": _cmd(tags={":flags": "strings"}),
    "discard": _cmd(),
    "fileinto": _cmd("fileinto", ("string",), {":copy": None, ":flags": "strings"}),
    "redirect": _cmd(None, ("string",), {":copy": None}),
    "reject": _cmd("reject", ("string",)),
    "ereject": _cmd("ereject", ("string",)),
    "vacation": _cmd("vacation", ("string",), {
        ":days": "number", ":seconds": "number", ":subject": "string", ":from": "string",
        ":addresses": "strings", ":mime": None, ":handle": "string"}),
    "set": _cmd("variables", ("string", "string"), {t: None for t in SET_MODIFIERS}),
    "setflag": _cmd("imap4flags", ("strings",), optional_first="string"),
    "addflag": _cmd("imap4flags", ("strings",), optional_first="string"),
    "removeflag": _cmd("imap4flags", ("strings",), optional_first="string"),
    "address": _test(None, ("strings", "strings"), groups=(_COMPARATOR, ADDRESS_PART, _MATCH)),
    "envelope": _test("envelope", ("strings", "strings"), groups=(_COMPARATOR, ADDRESS_PART, _MATCH)),
    "header": _test(None, ("strings", "strings"), groups=(_COMPARATOR, _MATCH)),
    "string": _test("variables", ("strings", "strings"), groups=(_COMPARATOR, _MATCH)),
    "body": _test("body", ("strings",), groups=(_COMPARATOR, _MATCH, _TRANSFORM)),
    "hasflag": _test("imap4flags", ("strings",), groups=(_COMPARATOR, _MATCH), optional_first="strings"),
    "exists": _test(None, ("strings",)),
    "size": _test(None, ("number",), groups=({":over": None, ":under": None},)),
    "allof": _test(tests="list"),
    "anyof": _test(tests="list"),
    "not": _test(tests="one"),
    "true": _test(),
    "false": _test(),
}


@dataclass
class Arg:
    kind: str          # "tag", "number", "string" (one string) or "strings" (a bracketed list)
    value: object
    line: int
    column: int


@dataclass
class Node:
    """A command or a test, checked. `tags` maps a tag to its argument (True for a bare tag);
    `args` are the positional arguments (str, list[str] or int). An `if` holds its chain in
    `branches` [(test, block)] and `orelse`."""
    name: str
    line: int
    column: int
    tags: dict = field(default_factory=dict)
    args: list = field(default_factory=list)
    tests: list = field(default_factory=list)
    block: list | None = None
    branches: list = field(default_factory=list)
    orelse: list | None = None
    regex: object = None   # the compiled keys of a :regex test

    def tag(self, group: dict, default: str | None = None) -> str | None:
        for name in group:
            if name in self.tags:
                return name
        return default


@dataclass
class Script:
    commands: list
    requires: frozenset
    size: int


class _Parser:
    def __init__(self, text: str, limits: Limits):
        self.limits = limits
        self.tokens = Lexer(text, limits.max_string_length).tokens()
        self.tok: Token = next(self.tokens)

    def _next(self) -> Token:
        tok, self.tok = self.tok, next(self.tokens)
        return tok

    def _error(self, message: str, tok: Token | None = None) -> SieveError:
        tok = tok or self.tok
        return SieveError(message, tok.line, tok.column)

    def _is(self, kind: str, value=None) -> bool:
        return self.tok.kind == kind and (value is None or self.tok.value == value)

    def commands(self, depth: int) -> list:
        out = []
        while not self._is(EOF) and not self._is(PUNCT, "}"):
            out.append(self.command(depth))
        return out

    def command(self, depth: int) -> tuple:
        if not self._is(IDENT):
            raise self._error(f"expected a command, found {_describe(self.tok)}")
        name_tok = self._next()
        args, tests = self.arguments(name_tok, 0)
        block = None
        if self._is(PUNCT, "{"):
            brace = self._next()
            if depth + 1 > self.limits.max_nested_blocks:
                raise self._error(f"blocks nested deeper than {self.limits.max_nested_blocks}", brace)
            block = self.commands(depth + 1)
            if not self._is(PUNCT, "}"):
                raise self._error(f"expected '}}' to close the block opened at line {brace.line}, "
                                  f"column {brace.column}, found {_describe(self.tok)}")
            self._next()
        elif self._is(PUNCT, ";"):
            self._next()
        else:
            raise self._error(f"expected ';' or a block after '{name_tok.value}', found {_describe(self.tok)}")
        return name_tok, args, tests, block

    def arguments(self, name_tok: Token, depth: int) -> tuple[list, list]:
        args = []
        while True:
            tok = self.tok
            if tok.kind == TAG:
                args.append(Arg("tag", self._next().value, tok.line, tok.column))
            elif tok.kind == NUMBER:
                args.append(Arg("number", self._next().value, tok.line, tok.column))
            elif tok.kind == STRING:
                args.append(Arg("string", self._next().value, tok.line, tok.column))
            elif self._is(PUNCT, "["):
                args.append(Arg("strings", self.string_list(), tok.line, tok.column))
            else:
                break
        tests = []
        if self._is(IDENT):
            tests = [self.test(depth + 1)]
        elif self._is(PUNCT, "("):
            self._next()
            tests.append(self.test(depth + 1))
            while self._is(PUNCT, ","):
                self._next()
                tests.append(self.test(depth + 1))
            if not self._is(PUNCT, ")"):
                raise self._error(f"expected ',' or ')' in the test list, found {_describe(self.tok)}")
            self._next()
        return args, tests

    def string_list(self) -> list:
        self._next()
        out = []
        while True:
            if not self._is(STRING):
                raise self._error(f"expected a string in the list, found {_describe(self.tok)}")
            out.append(self._next().value)
            if self._is(PUNCT, "]"):
                self._next()
                return out
            if not self._is(PUNCT, ","):
                raise self._error(f"expected ',' or ']' in the string list, found {_describe(self.tok)}")
            self._next()

    def test(self, depth: int) -> tuple:
        if not self._is(IDENT):
            raise self._error(f"expected a test, found {_describe(self.tok)}")
        if depth > self.limits.max_nested_tests:
            raise self._error(f"tests nested deeper than {self.limits.max_nested_tests}")
        name_tok = self._next()
        args, tests = self.arguments(name_tok, depth)
        return name_tok, args, tests, None


def _describe(tok: Token) -> str:
    if tok.kind == EOF:
        return "the end of the script"
    if tok.kind == PUNCT:
        return f"'{tok.value}'"
    if tok.kind == STRING:
        return "a string"
    return f"{tok.kind} '{tok.value}'"


class _Checker:
    def __init__(self, limits: Limits):
        self.limits = limits
        self.requires: set[str] = set()

    def _need(self, capability: str | None, what: str, line: int, column: int) -> None:
        if capability and capability not in self.requires:
            raise SieveError(f'{what} needs require "{capability}"', line, column)

    def block(self, raw: list, top: bool = False) -> list:
        out: list[Node] = []
        seen_other = False
        for name_tok, args, tests, block in raw:
            name = name_tok.value
            spec = SPECS.get(name)
            if spec is None or spec.kind == "test":
                raise SieveError(f"unknown command '{name}'", name_tok.line, name_tok.column)
            if name == "require":
                if not top or seen_other:
                    raise SieveError("'require' must come before any other command", name_tok.line, name_tok.column)
                self._require(name_tok, args, tests, block)
                continue
            seen_other = True
            if name in ("elsif", "else"):
                if not out or out[-1].name != "if" or out[-1].orelse is not None:
                    raise SieveError(f"'{name}' without a preceding 'if'", name_tok.line, name_tok.column)
            node = self.node(name_tok, spec, args, tests, block)
            if name == "elsif":
                out[-1].branches.append((node.tests[0], node.block))
            elif name == "else":
                out[-1].orelse = node.block
            elif name == "if":
                node.branches = [(node.tests[0], node.block)]
                out.append(node)
            else:
                out.append(node)
        return out

    def _require(self, name_tok, args, tests, block) -> None:
        if block is not None or tests or len(args) != 1 or args[0].kind not in ("string", "strings"):
            raise SieveError("'require' takes one string or string list", name_tok.line, name_tok.column)
        arg = args[0]
        for capability in (arg.value if arg.kind == "strings" else [arg.value]):
            if capability not in CAPABILITIES:
                raise SieveError(f'unsupported extension "{capability}"', arg.line, arg.column)
            self.requires.add(capability)

    def node(self, name_tok: Token, spec: Spec, args: list, tests: list, block) -> Node:
        name = name_tok.value
        node = Node(name, name_tok.line, name_tok.column)
        self._need(spec.capability, f"'{name}'", node.line, node.column)
        if spec.kind == "control":
            if block is None:
                raise SieveError(f"'{name}' needs a block", node.line, node.column)
        elif block is not None:
            raise SieveError(f"'{name}' takes no block", node.line, node.column)
        known = dict(spec.tags)
        group_of = {}
        for group in spec.groups:
            for tag in group:
                known[tag] = group[tag]
                group_of[tag] = id(group)
        positional = []
        chosen_groups = {}
        i = 0
        while i < len(args):
            arg = args[i]
            i += 1
            if arg.kind != "tag":
                positional.append(arg)
                continue
            tag = arg.value
            if tag not in known:
                raise SieveError(f"'{name}' has no tag '{tag}'", arg.line, arg.column)
            self._need(_TAG_CAPABILITY.get(tag), f"'{tag}'", arg.line, arg.column)
            if tag in node.tags:
                raise SieveError(f"tag '{tag}' given twice", arg.line, arg.column)
            group = group_of.get(tag)
            if group is not None:
                if group in chosen_groups:
                    raise SieveError(f"'{tag}' cannot be combined with '{chosen_groups[group]}'", arg.line, arg.column)
                chosen_groups[group] = tag
            kind = known[tag]
            if kind is None:
                node.tags[tag] = True
                continue
            if i >= len(args) or not _fits(args[i], kind):
                raise SieveError(f"'{tag}' must be followed by {_kind_name(kind)}", arg.line, arg.column)
            value = args[i].value
            node.tags[tag] = self._decoded([value] if kind == "strings" and args[i].kind == "string" else value, args[i])
            i += 1
        wanted = list(spec.positional)
        if spec.optional_first and len(positional) == len(wanted) + 1:
            wanted.insert(0, spec.optional_first)
        if len(positional) != len(wanted):
            # Too many: point at the first one too many; too few: at the command.
            most = len(spec.positional) + (1 if spec.optional_first else 0)
            at = positional[most] if len(positional) > most else node
            raise SieveError(f"'{name}' takes {len(spec.positional)} positional argument(s)"
                             + (f" (or {len(spec.positional) + 1})" if spec.optional_first else "")
                             + f", not {len(positional)}", at.line, at.column)
        for arg, kind in zip(positional, wanted):
            if not _fits(arg, kind):
                raise SieveError(f"'{name}' expects {_kind_name(kind)} here", arg.line, arg.column)
            node.args.append(self._decoded([arg.value] if kind == "strings" and arg.kind == "string" else arg.value, arg))
        if spec.tests == "one" and len(tests) != 1:
            raise SieveError(f"'{name}' takes exactly one test", node.line, node.column)
        if spec.tests == "list" and not tests:
            raise SieveError(f"'{name}' takes a test list in parentheses", node.line, node.column)
        if spec.tests is None and tests:
            first = tests[0][0]
            if spec.kind == "action":   # most often a forgotten ';' before the next command
                raise SieveError(f"expected ';' after '{name}', found '{first.value}'", first.line, first.column)
            raise SieveError(f"'{name}' takes no test", first.line, first.column)
        node.tests = [self.node(t[0], self._test_spec(t[0]), t[1], t[2], None) for t in tests]
        if block is not None:
            node.block = self.block(block)
        self._semantics(node, positional)
        return node

    def _decoded(self, value, arg: Arg):
        """RFC 5228 §2.4.2.4: with "encoded-character", ${hex:..} and ${unicode:..} in a string
        stand for the characters they encode; a malformed one is left as written."""
        if "encoded-character" not in self.requires or isinstance(value, int):
            return value
        if isinstance(value, list):
            return [self._decoded(v, arg) for v in value]
        if "${" not in value:
            return value

        def hex_bytes(found):
            try:
                return bytes.fromhex("".join(found.group(1).split())).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                return found.group(0)

        def unicode_chars(found):
            out = []
            for word in found.group(1).split():
                code = int(word, 16) if len(word) <= 8 else 0x110000
                if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                    raise SieveError(f"${{unicode:...}} names no character: {word[:10]}", arg.line, arg.column)
                out.append(chr(code))
            return "".join(out)

        value = _HEX.sub(hex_bytes, value)
        return _UNICODE.sub(unicode_chars, value)

    def _test_spec(self, tok: Token) -> Spec:
        spec = SPECS.get(tok.value)
        if spec is None or spec.kind != "test":
            raise SieveError(f"unknown test '{tok.value}'", tok.line, tok.column)
        return spec

    def _semantics(self, node: Node, positional: list) -> None:
        tags = node.tags
        where = (node.line, node.column)
        comparator = tags.get(":comparator", "i;ascii-casemap")
        if ":comparator" in tags:
            if comparator not in COMPARATORS:
                raise SieveError(f'unknown comparator "{comparator}"', *where)
            if comparator not in _BUILTIN_COMPARATORS:
                self._need(f"comparator-{comparator}", f'comparator "{comparator}"', *where)
        for rel in (":value", ":count"):
            if rel in tags and tags[rel].lower() not in RELATIONS:
                raise SieveError(f'unknown relational operator "{tags[rel]}"', *where)
        if comparator == "i;ascii-numeric" and (":contains" in tags or ":matches" in tags or ":regex" in tags):
            raise SieveError("the i;ascii-numeric comparator allows only :is, :value and :count", *where)
        if node.name == "size" and len(tags) != 1:
            raise SieveError("'size' needs :over or :under", *where)
        if node.name == "vacation" and ":days" in tags and ":seconds" in tags:
            raise SieveError("':days' cannot be combined with ':seconds'", *where)
        if node.name == "redirect" and not self._may_vary(node.args[0]) and \
                "@" not in parseaddr(node.args[0])[1]:
            raise SieveError(f'redirect to an invalid address "{node.args[0][:100]}"', positional[0].line, positional[0].column)
        if node.name == "envelope":
            for part in node.args[0]:
                if part.lower() not in ("from", "to"):
                    raise SieveError(f'unknown envelope part "{part}" (from or to)', positional[0].line, positional[0].column)
        if node.name in ("set",) or (node.name in ("setflag", "addflag", "removeflag") and len(node.args) == 2):
            self._variable_name(node.args[0], positional[0])
        if node.name == "hasflag" and len(node.args) == 2:
            for name in node.args[0]:
                self._variable_name(name, positional[0])
        if node.name == "set":
            precedences = [SET_MODIFIERS[t] for t in tags]
            if len(precedences) != len(set(precedences)):
                raise SieveError("two 'set' modifiers of the same precedence", *where)
        if ":regex" in tags:
            # Keys with variables are compiled at run time; constant ones fail here, at upload.
            keys = node.args[-1]
            if "variables" not in self.requires or not any("${" in k for k in keys):
                node.regex = [_compile_regex(k, comparator, positional[-1], self.limits.max_regex_memory)
                              for k in keys]

    def _may_vary(self, text: str) -> bool:
        return "variables" in self.requires and "${" in text

    def _variable_name(self, name: str, arg: Arg) -> None:
        if not _VARIABLE_NAME.match(name):
            raise SieveError(f'invalid variable name "{name}"', arg.line, arg.column)
        if len(name) > self.limits.max_variable_name:
            raise SieveError(f"variable name longer than {self.limits.max_variable_name} characters", arg.line, arg.column)


def _fits(arg: Arg, kind: str) -> bool:
    if kind == "strings":
        return arg.kind in ("string", "strings")
    return arg.kind == kind


def _kind_name(kind: str) -> str:
    return {"string": "a string", "strings": "a string list", "number": "a number"}[kind]


def compile_regex(pattern: str, comparator: str, max_mem: int):
    """A :regex key (or a translated :matches one) as a linear-time RE2 pattern: no
    back-references, no catastrophic cases, and past `max_mem` bytes refused, not built."""
    options = re2.Options()
    options.log_errors = False
    options.max_mem = max_mem
    options.dot_nl = True
    options.case_sensitive = comparator != "i;ascii-casemap"
    return re2.compile(pattern, options=options)


def _compile_regex(pattern: str, comparator: str, arg: Arg, max_mem: int):
    try:
        return compile_regex(pattern, comparator, max_mem)
    except Exception as exc:  # re2.error and its friends: the message is all the user needs
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise SieveError(f"invalid regular expression: {detail}", arg.line, arg.column) from None


def parse(text: str, limits: Limits | None = None) -> Script:
    """The checked tree of a script, or SieveError with the line and column of the first fault."""
    limits = limits or Limits()
    if not isinstance(text, str):
        raise SieveError("a script is text")
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limits.max_script_size:
        raise SieveError(f"script larger than {limits.max_script_size} bytes")
    parser = _Parser(text, limits)
    raw = parser.commands(0)
    if not parser._is(EOF):
        raise parser._error("unexpected '}'")
    checker = _Checker(limits)
    commands = checker.block(raw, top=True)
    return Script(commands, frozenset(checker.requires), size)


def validate(text: str, limits: Limits | None = None) -> SieveError | None:
    """None for a script that would run, else the error to show (SieveScript/validate)."""
    try:
        parse(text, limits)
    except SieveError as exc:
        return exc
    return None
