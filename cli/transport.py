"""The two transports: in-process (the default) and HTTP (--url), with the same interface.

Both produce the same JMAP-shaped results from the same code paths on the server side: the local
one runs the request through jmapapi.engine as a principal holding every permission, the remote
one posts it to the server's apiUrl (cli.md §1).
"""
from __future__ import annotations

import base64
import getpass
import gzip
import hashlib
import json
import os
import sys
import tempfile
import zlib
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from django.db import Error as DbError

from accounts.authz import RECOVERY_ID
from accounts.http_auth import Principal
from accounts.permissions import all_permissions
from jmapapi import engine
from jmapapi.models import Jmap
from registry.schema import document

from .errors import CliError, loads, printable

USING = ["urn:ietf:params:jmap:core", "urn:stalwart:jmap"]
DEFAULT_MAX_OBJECTS = 500
CONNECT_TIMEOUT, TOTAL_TIMEOUT = 15, 60
# A gzip body from the server is inflated to at most this much (a small bomb cannot fill memory).
MAX_INFLATED = 256 * 1024 * 1024
def gunzip(data: bytes) -> bytes:
    inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
    try:
        out = inflater.decompress(data, MAX_INFLATED)
    except zlib.error as exc:
        raise CliError(f"unexpected server response: a gzip body that does not inflate ({exc})") from None
    if inflater.unconsumed_tail:
        raise CliError(f"unexpected server response: a gzip body larger than {MAX_INFLATED} bytes")
    if not inflater.eof:
        raise CliError("unexpected server response: a gzip body cut short")
    return out


def _positive_int(value, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else default

STATUS_ERRORS = {
    401: "authentication failed (HTTP 401)",
    403: "permission denied (HTTP 403)",
    404: "not found (HTTP 404)",
    429: "rate limited (HTTP 429)",
}


def status_error(status: int) -> CliError:
    return CliError(STATUS_ERRORS.get(status, f"server returned HTTP {status}"))


def jmap_error(args: dict) -> CliError:
    kind = args.get("type", "serverFail") if isinstance(args, dict) else "serverFail"
    description = args.get("description") if isinstance(args, dict) else None
    kind = printable(str(kind), keep_newlines=False)
    description = printable(str(description), keep_newlines=False) if description else None
    return CliError(f"jmap error: {kind}: {description}" if description else f"jmap error: {kind}")


class Client:
    """What every command needs from a server: limits, the schema and JMAP calls."""

    max_get = DEFAULT_MAX_OBJECTS
    max_set = DEFAULT_MAX_OBJECTS

    def __init__(self, debug=None, err=None):
        self.debug = debug  # a stream for request/response logs, or None
        self.err = err or sys.stderr  # where warnings go

    def schema_doc(self) -> dict:
        raise NotImplementedError

    def send(self, request: dict) -> dict:
        raise NotImplementedError

    def call_many(self, calls: list, created_ids: dict | None = None) -> tuple[list, dict | None]:
        request = {"using": USING, "methodCalls": calls}
        if created_ids:
            request["createdIds"] = dict(created_ids)
        response = self.send(request)
        responses = response.get("methodResponses")
        if not isinstance(responses, list):
            raise CliError("unexpected server response: missing methodResponses")
        return responses, response.get("createdIds")

    def call(self, method: str, args: dict, created_ids: dict | None = None) -> dict:
        responses, _ = self.call_many([[method, args, "c0"]], created_ids)
        if len(responses) != 1:
            raise CliError(f"unexpected server response: expected 1 method response, got {len(responses)}")
        return check_response(responses[0], method)

    def log(self, text: str) -> None:
        if self.debug is not None:
            self.debug.write(text.rstrip("\n") + "\n")
            self.debug.flush()


def check_response(item, expected: str) -> dict:
    if not (isinstance(item, list) and len(item) == 3 and isinstance(item[1], dict)):
        raise CliError("unexpected server response: malformed method response")
    name, args, _ = item
    if name == "error":
        raise jmap_error(args)
    if name != expected:
        raise CliError(f"unexpected server response: expected response `{expected}`, got `{name}`")
    return args


# --- configuration ------------------------------------------------------------------------------
def os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return os.environ.get("USER") or "unknown"


def open_client(options: dict, stdin=None, err=None) -> Client:
    """The transport the options ask for (cli.md §2)."""
    env = os.environ
    debug = options.get("debug") or bool(env.get("STALWART_DEBUG"))
    debug_stream = (err or sys.stderr) if debug else None
    url = options.get("url") or env.get("STALWART_URL")
    if not url:
        if options.get("user") or options.get("api_key") or options.get("password"):
            raise CliError("no URL provided (use --url or STALWART_URL)")
        return LocalClient(debug=debug_stream, err=err)
    if not (url.startswith("http://") or url.startswith("https://")):
        raise CliError(f"URL '{url}' is missing a scheme; prefix it with https:// or http://")
    url = url.rstrip("/")
    user = options.get("user") or env.get("STALWART_USER")
    api_key = options.get("api_key") or env.get("STALWART_TOKEN")
    if user and api_key:
        raise CliError("--user and --api-key are mutually exclusive")
    if api_key:
        auth = f"Bearer {api_key}"
    elif user:
        password = options.get("password") or env.get("STALWART_PASSWORD")
        if password is None:
            stdin = stdin or sys.stdin
            if not (hasattr(stdin, "isatty") and stdin.isatty()):
                raise CliError("no password provided and stdin is not a tty")
            password = getpass.getpass("Password: ")
        auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    else:
        raise CliError("no credentials provided (use --user / --password or --api-key)")
    return RemoteClient(url, auth, insecure=bool(options.get("insecure")), debug=debug_stream, err=err)


# --- in-process -------------------------------------------------------------------------------
class LocalClient(Client):
    """Runs each request through jmapapi.engine against the configured database."""

    def __init__(self, debug=None, err=None):
        super().__init__(debug, err)
        self.principal = Principal(account_id=RECOVERY_ID, name=f"manage.py ({os_user()})",
                                   permissions=all_permissions())
        self._limits = None

    @property
    def limits(self):
        """The JMAP limits, read when the first request needs them (describe needs none)."""
        if self._limits is None:
            try:
                self._limits = Jmap.load()
            except DbError as exc:
                raise CliError(f"database error: {exc} (has `manage.py migrate` been run?)") from None
        return self._limits

    @property
    def max_get(self):
        return max(1, self.limits.get_max_results)

    @property
    def max_set(self):
        return max(1, self.limits.set_max_objects)

    def schema_doc(self) -> dict:
        return json.loads(document()[0])

    def send(self, request: dict) -> dict:
        body = json.dumps(request, separators=(",", ":")).encode()
        if self.debug is not None:
            self.log(f"> local JMAP request\n{body.decode()}")
        try:
            result = engine.run(engine.parse(body, self.limits), self.principal, self.limits)
        except engine.RequestError as exc:
            self.log(f"< {exc.status} {exc.type}: {exc.detail}")
            raise status_error(exc.status) from None
        except DbError as exc:
            raise CliError(f"database error: {exc}") from None
        text = json.dumps(result, separators=(",", ":"))
        if self.debug is not None:
            self.log(f"< local JMAP response\n{text}")
        return json.loads(text)


# --- HTTP -------------------------------------------------------------------------------------
def cache_root() -> Path:
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "stalwart-cli"
    if os.name == "nt":
        return Path(os.environ.get("LOCALAPPDATA") or Path.home()) / "stalwart-cli"
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "stalwart-cli"


def _origin(url: str) -> tuple:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


class RemoteClient(Client):
    def __init__(self, url: str, auth: str, insecure: bool = False, debug=None, err=None):
        super().__init__(debug, err)
        self.requests = requests
        self.url = url
        self.http = requests.Session()
        self.http.headers.update({"Authorization": auth, "User-Agent": "stalwart-cli (manage.py)"})
        self.http.verify = not insecure
        if insecure:
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        session = self._json(self._request("GET", "/jmap/session"), "/jmap/session")
        api_url = session.get("apiUrl") if isinstance(session, dict) else None
        if not isinstance(api_url, str) or not api_url:
            raise CliError("unexpected server response: the session has no apiUrl")
        self.api_path = urlsplit(api_url).path.rstrip("/") or "/"
        # Whatever the server sends, a value of the wrong JSON type is the default, not a traceback.
        capabilities = session.get("capabilities")
        core = capabilities.get("urn:ietf:params:jmap:core") if isinstance(capabilities, dict) else None
        core = core if isinstance(core, dict) else {}
        self.max_get = _positive_int(core.get("maxObjectsInGet"), DEFAULT_MAX_OBJECTS)
        self.max_set = _positive_int(core.get("maxObjectsInSet"), DEFAULT_MAX_OBJECTS)
        self._schema = None

    def _request(self, method: str, path: str, body: bytes | None = None, check: bool = True):
        target = path if path.startswith(("http://", "https://")) else self.url + path
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if self.debug is not None:
            self.log(f"> {method} {target}" + (f"\n{body.decode()}" if body else ""))
        try:
            resp = self.http.request(method, target, data=body, headers=headers, allow_redirects=False,
                                     timeout=(CONNECT_TIMEOUT, TOTAL_TIMEOUT))
        except self.requests.RequestException as exc:
            raise CliError(f"cannot reach {target}: {exc}") from None
        if self.debug is not None:
            self.log(f"< {resp.status_code} {resp.headers.get('Content-Type', '')}"
                     + (f"\n{resp.text[:4000]}" if resp.content and resp.status_code != 302 else ""))
        if check and not 200 <= resp.status_code < 300:
            raise status_error(resp.status_code)
        return resp

    @staticmethod
    def _json(resp, path: str):
        data = resp.content
        if data[:2] == b"\x1f\x8b":
            data = gunzip(data)
        try:
            return loads(data)
        except ValueError as exc:
            snippet = data[:200].decode("utf-8", "replace")
            raise CliError(
                f"could not parse {path} response as JSON ({exc})\n  status: {resp.status_code}\n"
                f"  content-type: {resp.headers.get('Content-Type', '')}\n  body length: {len(data)} bytes\n"
                f"  body snippet: {snippet}") from None

    def send(self, request: dict) -> dict:
        body = json.dumps(request, separators=(",", ":")).encode()
        resp = self._request("POST", self.api_path, body)
        result = self._json(resp, self.api_path)
        if not isinstance(result, dict):
            raise CliError("unexpected server response: the JMAP response is not an object")
        return result

    # --- the schema and its cache -------------------------------------------------------------
    def cache_dir(self) -> Path:
        digest = hashlib.sha256(self.url.encode()).digest()
        return cache_root() / base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def schema_doc(self) -> dict:
        if self._schema is None:
            self._schema = self._fetch_schema()
        return self._schema

    def _fetch_schema(self) -> dict:
        folder = self.cache_dir()
        try:
            resp = self._request("GET", "/api/schema", check=False)
        except CliError as exc:
            cached = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
            if not cached:
                raise
            self.err.write(f"warning: failed to refresh schema ({exc}); using cached copy\n")
            return self._read_cache(cached[-1])
        if resp.status_code in (301, 302, 303, 307, 308):
            location = resp.headers.get("Location") or ""
            digest = location.rstrip("/").rsplit("/", 1)[-1]
            cached = folder / f"{digest}.json"
            if digest and cached.is_file():
                return self._read_cache(cached)
            target = urljoin(self.url + "/", location.lstrip("/"))
            if _origin(target) != _origin(self.url):
                # The session sends our credentials with every request: never to another origin.
                raise CliError(f"the server redirected the schema to another origin: {printable(target[:200])}")
            resp = self._request("GET", target)
        elif not 200 <= resp.status_code < 300:
            raise status_error(resp.status_code)
        else:
            digest = ""
        doc = self._json(resp, "/api/schema")
        if not isinstance(doc, dict):
            raise CliError("unexpected server response: the schema is not an object")
        if digest:
            self._write_cache(folder / f"{digest}.json", resp.content)
        return doc

    @staticmethod
    def _read_cache(path: Path) -> dict:
        raw = path.read_bytes()
        try:
            if raw[:2] == b"\x1f\x8b":
                raw = gzip.decompress(raw)
            doc = loads(raw)
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
            return doc
        except (ValueError, OSError, EOFError) as exc:
            path.unlink(missing_ok=True)
            raise CliError(
                "cached schema is corrupt and was discarded; rerun the command to refetch from the server\n"
                f"  cache file: {path}\n  reason: {exc}\n  byte length: {len(raw)} bytes\n"
                f"  snippet: {raw[:80].decode('utf-8', 'replace')}") from None

    @staticmethod
    def _write_cache(path: Path, content: bytes) -> None:
        if content[:2] == b"\x1f\x8b":
            content = gunzip(content)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".schema-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(content)
            os.replace(tmp, path)
        except OSError:
            pass  # a cache that cannot be written costs a download next time, nothing more
