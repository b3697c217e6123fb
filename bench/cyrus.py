"""Cyrus IMAP 3.6 (Debian's cyrus-imapd and cyrus-caldav, whose httpd serves JMAP) as the peer
the JMAP figures are compared with: started for one bench run on loopback ports, from a
configuration generated in a temporary directory, and stopped after it.

`make cyrus` installs the packages. What the run needs of them: /usr/lib/cyrus/bin/master (the
service supervisor), its imapd (to create the user's INBOX, which Cyrus's JMAP requires) and
httpd (with `httpmodules: jmap`), and saslpasswd2 (sasl2-bin) for the user's password, which
Cyrus checks against its own SASL database on each Basic-authenticated request.
"""
from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

from harness import wait_until  # the one server wait (tests/live.py), with the repository on sys.path

CYRUS_BIN = Path("/usr/lib/cyrus/bin")
SASLPASSWD = "saslpasswd2"
USER, PASSWORD = "bench", "bench-secret"
ADMIN = "cyrus"
# The SASL realm Cyrus looks users up in is its servername.
SERVERNAME = "localhost"

IMAPD_CONF = """\
configdirectory: {dir}/config
partition-default: {dir}/spool
sievedir: {dir}/sieve
servername: {servername}
admins: {admin}
allowplaintext: yes
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: {dir}/sasldb2
sasl_mech_list: PLAIN
httpmodules: jmap
httpallowcompress: no
conversations: yes
conversations_db: twoskip
unixhierarchysep: yes
master_pid_file: {dir}/master.pid
"""

# One httpd per connection, as Cyrus serves HTTP: enough of them preforked for the bench's
# connections, so that the figures are the steady state and not process start-up.
CYRUS_CONF = """\
START {{
  recover cmd="ctl_cyrusdb -C {dir}/imapd.conf -r"
}}
SERVICES {{
  imap cmd="imapd -C {dir}/imapd.conf" listen="127.0.0.1:{imap_port}" prefork=0
  http cmd="httpd -C {dir}/imapd.conf" listen="127.0.0.1:{http_port}" prefork={prefork} maxchild={maxchild}
}}
EVENTS {{
}}
DAEMON {{
}}
"""


def missing() -> str | None:
    """Why Cyrus cannot be started here, or None."""
    for path in (CYRUS_BIN / "master", CYRUS_BIN / "httpd", CYRUS_BIN / "imapd"):
        if not path.exists():
            return f"{path} is missing (make cyrus)"
    if shutil.which(SASLPASSWD) is None:
        return f"{SASLPASSWD} is missing (make cyrus)"
    return None


@contextmanager
def cyrus_server(connections: int, free_port):
    """Yield the JMAP API URL of a Cyrus started for this run (user USER, password PASSWORD)."""
    with tempfile.TemporaryDirectory(prefix="stalwart-bench-cyrus-") as tmp:
        root = Path(tmp)
        for sub in ("config/db", "config/socket", "config/proc", "config/log", "spool", "sieve"):
            (root / sub).mkdir(parents=True)
        imap_port, http_port = free_port(), free_port()
        values = {"dir": root, "servername": SERVERNAME, "admin": ADMIN, "imap_port": imap_port,
                  "http_port": http_port, "prefork": connections, "maxchild": connections * 2}
        (root / "imapd.conf").write_text(IMAPD_CONF.format(**values))
        (root / "cyrus.conf").write_text(CYRUS_CONF.format(**values))
        for user, password in ((ADMIN, PASSWORD), (USER, PASSWORD)):
            subprocess.run([SASLPASSWD, "-p", "-c", "-f", str(root / "sasldb2"), "-u", SERVERNAME, user],
                           input=password, text=True, check=True)
        if os.geteuid() == 0:
            # master drops root for the cyrus user: the files must be that user's.
            cyrus = pwd.getpwnam("cyrus")
            os.chmod(root, 0o755)
            for path in [root, *root.rglob("*")]:
                os.chown(path, cyrus.pw_uid, cyrus.pw_gid)
        log = open(root / "master.log", "w")
        proc = subprocess.Popen([str(CYRUS_BIN / "master"), "-D", "-C", str(root / "imapd.conf"),
                                 "-M", str(root / "cyrus.conf"), "-p", str(root / "master.pid")],
                                stdout=log, stderr=subprocess.STDOUT, cwd=root)
        try:
            url = f"http://127.0.0.1:{http_port}/jmap/"
            _create_inbox(imap_port, proc)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


def _create_inbox(port: int, proc: subprocess.Popen) -> None:
    """The user's INBOX, through IMAP as Cyrus's administrator (JMAP answers nobody without one)."""
    imap = wait_until(lambda: imaplib.IMAP4("127.0.0.1", port, timeout=5), proc,
                      lambda: "Cyrus did not start listening (see its master.log)", errors=OSError)
    try:
        imap.login(ADMIN, PASSWORD)
        status, detail = imap.create(f"user/{USER}")
        if status != "OK":
            raise RuntimeError(f"Cyrus refused to create the INBOX: {detail}")
    finally:
        imap.logout()
