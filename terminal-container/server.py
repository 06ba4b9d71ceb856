#!/usr/bin/env python3
"""Berth web terminal: one shell per container, shared by every authenticated browser tab.

Runs as PID 1 of a Berth terminal container. Python 3.11 stdlib plus Debian's
python3-websockets (10.4); nothing from pip.

HTTP surface (all on one port):
  GET /healthz          200 "ok", no auth (platform probes).
  GET /static/<name>    xterm.js, xterm.css, addon-fit.js, app.js; no auth (no secrets in them).
  GET /?token=T         T checked against BERTH_ACCESS_TOKEN_SHA256; sets the cookie
                        berth_<first 8 hex of the session id>=T (HttpOnly, SameSite=Strict, Path=/)
                        and answers 303 to "/" so the token leaves the address bar.
  GET /                 the terminal page with a valid cookie, else 401.
  GET /ws               WebSocket. Token from the cookie, ?token= or "Authorization: Bearer T",
                        else 401 before the upgrade. With a cookie token, an Origin header (if
                        present) must name the Host header, to stop cross-site WebSocket hijacking.
  anything else         404.

Wire protocol on /ws:
  client -> server  text frame, JSON:  {"type": "input", "data": "<utf-8 text>"}
                                       {"type": "resize", "cols": N, "rows": N}
                    binary frame:      raw input bytes for the shell.
                    Anything else is ignored.
  server -> client  binary frames of raw PTY output. On connect the client first receives the
                    retained scrollback (last BERTH_SCROLLBACK_BYTES). When the shell exits the
                    server writes "[shell exited with code N; reconnect for a new shell]" and
                    closes with code 4000; the next connection starts a new shell.
                    Other close codes: 1001 server shutting down, 1013 client too slow (its
                    unsent output passed 1 MiB), 1011 shell could not be started.

Startup: bind, then POST {BERTH_CALLBACK_URL}/tunnel {"terminal_id", "tunnel_url"} with
"Authorization: Bearer BERTH_CALLBACK_TOKEN". Any startup failure POSTs {.../status}
{"terminal_id", "status": "failed", "error_message"} and exits 1; exit 3 when the API refuses
the tunnel (401/403/404/409/410: the session is gone or the token is wrong).

Logs: one JSON object per line on stdout: ts, level, msg, session_id (+ fields).
"""

import asyncio
import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import signal
import struct
import sys
import termios
import time
import urllib.parse
from http import HTTPStatus

import websockets
import websockets.server
from websockets.exceptions import ConnectionClosed

HERE = os.path.dirname(os.path.abspath(__file__))
STATIC_DIR = os.environ.get("BERTH_STATIC_DIR", os.path.join(HERE, "static"))
# Explicit allow-list: nothing else under STATIC_DIR is reachable, so no path traversal.
STATIC_FILES = {
    "xterm.js": "application/javascript",
    "xterm.css": "text/css",
    "addon-fit.js": "application/javascript",
    "app.js": "application/javascript",
}

MAX_CLIENTS = 32                # tabs attached at once; more is a bug or abuse
MAX_CLIENT_BACKLOG = 1 << 20    # unsent output per client before we drop it (bytes)
MAX_PENDING_INPUT = 1 << 20     # input queued while the shell is not reading (bytes)
READ_CHUNK = 64 * 1024
SEND_CHUNK = 64 * 1024
CLOSE_SHELL_EXITED = 4000       # app.js waits for a key press instead of reconnecting
SHUTDOWN_GRACE = 1.5            # seconds to close sockets on SIGTERM (contract: exit within ~2 s)
TUNNEL_RETRY_FOR = 30.0         # seconds to keep retrying the tunnel callback
EXIT_FAILED, EXIT_REJECTED = 1, 3

SESSION_ID = os.environ.get("BERTH_SESSION_ID", "")


def log(level, msg, **fields):
    rec = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z",
           "level": level, "msg": msg, "session_id": SESSION_ID}
    rec.update(fields)
    sys.stdout.write(json.dumps(rec, default=str) + "\n")
    sys.stdout.flush()


class _JsonLogHandler(logging.Handler):
    """Route the websockets library's own warnings into our JSON log lines."""

    def emit(self, record):
        level = {"WARNING": "warn", "CRITICAL": "error"}.get(record.levelname,
                                                             record.levelname.lower())
        log(level, record.getMessage(), logger=record.name)


class StartupError(Exception):
    """Startup failed; the message is what the API sees as error_message."""


class Config:
    def __init__(self, env):
        self.session_id = env.get("BERTH_SESSION_ID", "")
        self.callback_url = env.get("BERTH_CALLBACK_URL", "").rstrip("/")
        self.callback_token = env.get("BERTH_CALLBACK_TOKEN", "")
        self.token_sha256 = env.get("BERTH_ACCESS_TOKEN_SHA256", "").strip().lower()
        self.listen_host = env.get("BERTH_LISTEN_HOST") or "0.0.0.0"
        self.advertise_host = env.get("BERTH_ADVERTISE_HOST") or self.listen_host
        self.shell = env.get("BERTH_SHELL") or "/bin/bash"
        self.home = "/home/berth"
        self.port_raw = env.get("BERTH_PORT", "")
        self.scrollback_raw = env.get("BERTH_SCROLLBACK_BYTES", "")
        self.port, self.scrollback = 7681, 65536

    @staticmethod
    def _int(name, raw, default, lo, hi):
        if raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise StartupError(f"{name} is not an integer") from None
        if not lo <= value <= hi:
            raise StartupError(f"{name} must be within {lo}..{hi}")
        return value

    def can_report(self):
        """True when a failure can be reported to the API at all."""
        return bool(self.session_id and self.callback_token
                    and self.callback_url.startswith(("http://", "https://")))

    def validate(self):
        # Parsed here, not in __init__, so a bad value can still be reported to the API.
        self.port = self._int("BERTH_PORT", self.port_raw, 7681, 0, 65535)
        self.scrollback = self._int("BERTH_SCROLLBACK_BYTES", self.scrollback_raw,
                                    65536, 0, 16 << 20)
        if not re.fullmatch(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}", self.session_id):
            raise StartupError("BERTH_SESSION_ID is not a UUID")
        if not self.callback_url.startswith(("http://", "https://")):
            raise StartupError("BERTH_CALLBACK_URL must be an http(s) URL")
        if not self.callback_token:
            raise StartupError("BERTH_CALLBACK_TOKEN is empty")
        if not re.fullmatch(r"[0-9a-f]{64}", self.token_sha256):
            raise StartupError("BERTH_ACCESS_TOKEN_SHA256 is not 64 hex characters")
        if not (os.path.isfile(self.shell) and os.access(self.shell, os.X_OK)):
            raise StartupError(f"shell not executable: {self.shell}")

    @property
    def cookie_name(self):
        # Browsers do not isolate cookies by port, so sessions on one host need distinct names.
        return "berth_" + self.session_id.replace("-", "")[:8].lower()

    def tunnel_url(self, port):
        host = self.advertise_host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # IPv6 literal
        return f"http://{host}:{port}/"


# --------------------------------------------------------------------------- callbacks

class CallbackRejected(Exception):
    """The API answered with a status that retrying cannot fix."""


def _post_json_blocking(url, token, body, timeout):
    """Returns the HTTP status. Runs in a worker thread (urllib is blocking)."""
    import urllib.error
    import urllib.request  # imported lazily: ~1.5 MB RSS we only need at startup

    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}",
                 "User-Agent": "berth-terminal"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read(4096)
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


async def post_callback(cfg, path, body, retry_for):
    """POST with exponential backoff on transient failures (network errors, 5xx, 429)."""
    url = cfg.callback_url + path
    deadline = time.monotonic() + retry_for
    delay = 0.25
    while True:
        try:
            status = await asyncio.to_thread(_post_json_blocking, url, cfg.callback_token, body, 5)
        except Exception as exc:  # noqa: BLE001 - refused, timeout, DNS, garbled response...
            status, problem = None, str(getattr(exc, "reason", exc)) or type(exc).__name__
        if status is not None:
            if 200 <= status < 300:
                return status
            if status < 500 and status != 429:
                raise CallbackRejected(f"HTTP {status}")
            problem = f"HTTP {status}"
        if time.monotonic() + delay > deadline:
            raise StartupError(f"callback {path} failed: {problem}")
        log("warn", "callback failed, retrying", path=path, error=problem, retry_in=delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 4.0)


async def report_failure(cfg, reason):
    log("error", "startup failed", error=reason)
    if not cfg or not cfg.can_report():
        return
    body = {"terminal_id": cfg.session_id, "status": "failed", "error_message": reason[:500]}
    try:
        await post_callback(cfg, "/status", body, retry_for=5)
    except (StartupError, CallbackRejected) as exc:
        log("error", "could not report failure", error=str(exc))


# --------------------------------------------------------------------------- terminal

class Client:
    """One attached WebSocket. Output is queued here and sent by pump(), so a slow client
    never blocks reading the PTY; a client whose backlog exceeds the cap is dropped."""

    def __init__(self, ws):
        self.ws = ws
        self.backlog = bytearray()
        self.wake = asyncio.Event()
        self.close_code = None
        self.close_reason = ""

    def push(self, data):
        if self.close_code is not None:
            return
        if len(self.backlog) + len(data) > MAX_CLIENT_BACKLOG:
            log("warn", "dropping slow client", peer=peer_of(self.ws), backlog=len(self.backlog))
            self.backlog.clear()
            self.close_code = 1013
            # Not a polite close(): that would queue behind the send the client is not
            # reading. fail_connection writes the close frame without waiting and aborts
            # the TCP connection after close_timeout, which also ends pump() and the handler.
            self.ws.fail_connection(1013, "client too slow")
            return
        self.backlog += data
        self.wake.set()

    def finish(self, code, reason):
        """Close after what is already queued has been sent."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
            self.wake.set()

    async def pump(self):
        try:
            while True:
                await self.wake.wait()
                self.wake.clear()
                while self.backlog:
                    chunk = bytes(self.backlog[:SEND_CHUNK])
                    del self.backlog[:SEND_CHUNK]
                    await self.ws.send(chunk)
                if self.close_code is not None:
                    await self.ws.close(self.close_code, self.close_reason)
                    return
        except ConnectionClosed:
            pass


class Terminal:
    """The container's single shell on a PTY, its scrollback and its attached clients."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.loop = asyncio.get_running_loop()
        self.pid = None
        self.fd = None
        self.clients = set()
        self.scrollback = bytearray()
        self.pending_input = bytearray()
        self.size = (80, 24)

    # -- shell lifecycle

    def shell_env(self):
        # The shell runs as the same uid as this server: never hand it the callback secret.
        env = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_")}
        env.update({
            "BERTH_SESSION_ID": self.cfg.session_id,
            "TERM": "xterm-256color", "COLORTERM": "truecolor",
            "HOME": self.cfg.home, "SHELL": self.cfg.shell,
            "USER": env.get("USER", "berth"), "LOGNAME": env.get("LOGNAME", "berth"),
        })
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        env.setdefault("LANG", "C.UTF-8")
        return env

    def ensure_shell(self):
        if self.pid is not None:
            return
        env = self.shell_env()
        argv0 = "-" + os.path.basename(self.cfg.shell)  # leading "-": a login shell, any shell
        pid, fd = os.forkpty()
        if pid == 0:  # child: only async-signal-safe-ish work, then exec or _exit
            try:
                # Python ignores SIGPIPE/SIGXFSZ and ignored signals survive exec: restore them
                # or `yes | head` in the user's shell would print EPIPE errors instead of exiting.
                signal.signal(signal.SIGPIPE, signal.SIG_DFL)
                signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
                try:
                    os.chdir(self.cfg.home)
                except OSError:
                    os.chdir("/")
                os.execve(self.cfg.shell, [argv0], env)
            except BaseException as exc:  # noqa: BLE001 - must never return into the server
                os.write(2, f"berth: cannot start {self.cfg.shell}: {exc}\r\n".encode())
            os._exit(127)
        self.pid, self.fd = pid, fd
        os.set_blocking(fd, False)
        self._apply_size()
        self.loop.add_reader(fd, self._on_output)
        log("info", "shell started", pid=pid, shell=self.cfg.shell)

    def on_child_exit(self, pid, code):
        """Called from the SIGCHLD reaper for every reaped child."""
        if pid != self.pid:
            return  # an orphan reparented to us (we are PID 1); reaping it was the point
        self._drain_output()  # keep the shell's last words (e.g. "logout")
        self._close_pty()
        log("info", "shell exited", pid=pid, code=code)
        message = f"\r\n[shell exited with code {code}; reconnect for a new shell]\r\n".encode()
        self._append_scrollback(message)
        for client in list(self.clients):
            client.push(message)
            client.finish(CLOSE_SHELL_EXITED, "shell exited")

    def hangup(self):
        """SIGHUP the shell's process group (it leads its own session via forkpty)."""
        if self.pid is not None:
            try:
                os.killpg(self.pid, signal.SIGHUP)
            except OSError:
                pass

    def _close_pty(self):
        if self.fd is not None:
            self.loop.remove_reader(self.fd)
            self.loop.remove_writer(self.fd)
            os.close(self.fd)
        self.hangup()  # background jobs that outlived the shell
        self.fd = self.pid = None
        self.pending_input.clear()

    # -- output

    def _on_output(self):
        try:
            data = os.read(self.fd, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError:  # EIO: every slave fd is closed; the exit arrives through SIGCHLD
            data = b""
        if not data:
            self.loop.remove_reader(self.fd)
            return
        self._append_scrollback(data)
        for client in list(self.clients):
            client.push(data)

    def _drain_output(self):
        if self.fd is None:
            return
        for _ in range(64):  # bounded: never spin on a chatty background job
            try:
                data = os.read(self.fd, READ_CHUNK)
            except OSError:
                return
            if not data:
                return
            self._append_scrollback(data)
            for client in list(self.clients):
                client.push(data)

    def _append_scrollback(self, data):
        limit = self.cfg.scrollback
        if limit <= 0:
            return
        self.scrollback += data
        excess = len(self.scrollback) - limit
        if excess > 0:
            # Cut at a line start when one is near, so a replay does not begin in the
            # middle of an escape sequence or a multi-byte character.
            nl = self.scrollback.find(b"\n", excess, excess + 4096)
            del self.scrollback[:nl + 1 if nl >= 0 else excess]

    # -- input

    def handle_message(self, msg):
        """Apply one client frame; malformed frames are ignored."""
        if isinstance(msg, bytes):
            self.write_input(msg)
            return
        try:
            obj = json.loads(msg)
        except ValueError:
            return
        if not isinstance(obj, dict):
            return
        kind = obj.get("type")
        if kind == "input" and isinstance(obj.get("data"), str):
            # "replace": a lone surrogate from a broken paste must not raise.
            self.write_input(obj["data"].encode("utf-8", "replace"))
        elif kind == "resize":
            cols, rows = obj.get("cols"), obj.get("rows")
            if type(cols) is int and type(rows) is int:  # not bool, not float
                self.size = (max(2, min(cols, 1000)), max(1, min(rows, 500)))
                self._apply_size()

    def write_input(self, data):
        if self.fd is None or not data:
            return
        if len(self.pending_input) + len(data) > MAX_PENDING_INPUT:
            log("warn", "input dropped: shell is not reading", bytes=len(data))
            return
        was_idle = not self.pending_input
        self.pending_input += data
        if was_idle:
            self._flush_input()

    def _flush_input(self):
        if self.fd is None:
            return
        try:
            n = os.write(self.fd, self.pending_input)
            del self.pending_input[:n]
        except BlockingIOError:
            pass
        except OSError:
            self.pending_input.clear()
        if self.pending_input:
            self.loop.add_writer(self.fd, self._flush_input)
        else:
            self.loop.remove_writer(self.fd)

    def _apply_size(self):
        if self.fd is not None:
            cols, rows = self.size
            fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    # -- clients

    def attach(self, client):
        if self.scrollback:
            client.push(bytes(self.scrollback))
        self.clients.add(client)

    def detach(self, client):
        self.clients.discard(client)


# --------------------------------------------------------------------------- HTTP + auth

def peer_of(ws):
    addr = getattr(ws, "remote_address", None)
    return f"{addr[0]}:{addr[1]}" if addr else "?"


class App:
    def __init__(self, cfg, terminal):
        self.cfg = cfg
        self.terminal = terminal
        with open(os.path.join(STATIC_DIR, "index.html"), "rb") as f:
            self.page = f.read()

    def token_ok(self, token):
        if not token:
            return False
        digest = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
        return hmac.compare_digest(digest, self.cfg.token_sha256)

    def cookie_token(self, headers):
        for header in headers.get_all("Cookie"):
            for part in header.split(";"):
                name, _, value = part.strip().partition("=")
                if name == self.cfg.cookie_name:
                    return urllib.parse.unquote(value)
        return None

    def origin_ok(self, headers):
        origin = headers.get("Origin")
        if origin is None:
            return True  # non-browser clients
        host = headers.get("Host", "")
        # https too: a TLS-terminating proxy in front keeps the Host but changes the scheme.
        return bool(host) and origin in (f"http://{host}", f"https://{host}")

    async def process_request(self, path, headers):
        """websockets hook: return a response to answer plain HTTP, or None to upgrade."""
        url = urllib.parse.urlsplit(path)
        query = urllib.parse.parse_qs(url.query)
        query_token = query.get("token", [None])[0]

        if url.path == "/healthz":
            return text(HTTPStatus.OK, "ok\n")
        if url.path.startswith("/static/"):
            return self.static(url.path[len("/static/"):])
        if url.path == "/":
            return self.index(query_token, headers)
        if url.path != "/ws":
            return text(HTTPStatus.NOT_FOUND, "not found\n")

        auth = headers.get("Authorization", "")
        bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        if self.token_ok(query_token) or self.token_ok(bearer):
            pass  # explicit token: not something a browser attaches on its own
        elif self.token_ok(self.cookie_token(headers)):
            if not self.origin_ok(headers):
                log("warn", "websocket refused: cross-origin", origin=headers.get("Origin"))
                return text(HTTPStatus.FORBIDDEN, "cross-origin request refused\n")
        else:
            log("warn", "websocket refused: bad or missing token")
            return text(HTTPStatus.UNAUTHORIZED, "unauthorized\n")
        if len(self.terminal.clients) >= MAX_CLIENTS:
            return text(HTTPStatus.SERVICE_UNAVAILABLE, "too many clients\n")
        return None

    def index(self, query_token, headers):
        if query_token is not None:
            if not self.token_ok(query_token):
                return unauthorized_page()
            cookie = (f"{self.cfg.cookie_name}={urllib.parse.quote(query_token, safe='')}; "
                      "HttpOnly; SameSite=Strict; Path=/")
            return (HTTPStatus.SEE_OTHER,
                    [("Location", "/"), ("Set-Cookie", cookie), ("Cache-Control", "no-store"),
                     ("Referrer-Policy", "no-referrer")], b"")
        if not self.token_ok(self.cookie_token(headers)):
            return unauthorized_page()
        return (HTTPStatus.OK, [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Cache-Control", "no-store"),
            ("Referrer-Policy", "no-referrer"),
            ("X-Content-Type-Options", "nosniff"),
            # xterm.js injects <style> elements, hence 'unsafe-inline' for styles only.
            ("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; "
             "connect-src 'self' ws: wss:; img-src 'self' data:; base-uri 'none'; form-action 'none'"),
        ], self.page)

    def static(self, name):
        ctype = STATIC_FILES.get(name)
        if ctype is None:
            return text(HTTPStatus.NOT_FOUND, "not found\n")
        # Read per request instead of caching: assets are requested once per page load and
        # holding ~300 KB per idle container costs more than the occasional disk read.
        try:
            with open(os.path.join(STATIC_DIR, name), "rb") as f:
                body = f.read()
        except OSError:
            return text(HTTPStatus.NOT_FOUND, "not found\n")
        return (HTTPStatus.OK, [("Content-Type", f"{ctype}; charset=utf-8"),
                                ("Cache-Control", "public, max-age=3600"),
                                ("X-Content-Type-Options", "nosniff")], body)

    async def handle_ws(self, ws):
        try:
            self.terminal.ensure_shell()
        except OSError as exc:
            log("error", "cannot start shell", error=str(exc))
            await ws.close(1011, "cannot start shell")
            return
        client = Client(ws)
        self.terminal.attach(client)
        pump = asyncio.create_task(client.pump())
        log("info", "client attached", peer=peer_of(ws), clients=len(self.terminal.clients))
        try:
            async for msg in ws:
                if client.close_code is None:
                    self.terminal.handle_message(msg)
        except ConnectionClosed:
            pass
        finally:
            self.terminal.detach(client)
            if client.close_code is not None and not pump.done():
                # Let the pump finish sending the shell-exit notice and closing.
                await asyncio.wait([pump], timeout=2)
            pump.cancel()
            log("info", "client detached", peer=peer_of(ws), code=ws.close_code,
                clients=len(self.terminal.clients))


def text(status, body):
    return (status, [("Content-Type", "text/plain; charset=utf-8")], body.encode())


def unauthorized_page():
    body = (b"<!doctype html><meta charset=utf-8><title>Berth terminal</title>"
            b"<p>Unauthorized. Open this terminal with the link the Berth API gave you.</p>\n")
    return (HTTPStatus.UNAUTHORIZED, [("Content-Type", "text/html; charset=utf-8"),
                                      ("Cache-Control", "no-store")], body)


# --------------------------------------------------------------------------- main

def make_undumpable():
    """The user's shell runs as our uid; without this it could read /proc/1/environ (the
    callback token) or ptrace us. PR_SET_DUMPABLE=0 makes both need CAP_SYS_PTRACE."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except (OSError, AttributeError) as exc:
        log("warn", "could not set PR_SET_DUMPABLE", error=str(exc))


async def run():
    cfg = None
    try:
        cfg = Config(os.environ)
        cfg.validate()
    except StartupError as exc:
        await report_failure(cfg, str(exc))
        return EXIT_FAILED
    make_undumpable()

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    terminal = Terminal(cfg)

    def reap():
        # We are PID 1: besides the shell, reap orphans the user leaves behind.
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            code = os.waitstatus_to_exitcode(status)
            terminal.on_child_exit(pid, 128 - code if code < 0 else code)  # shell convention

    loop.add_signal_handler(signal.SIGCHLD, reap)

    try:
        app = App(cfg, terminal)
    except OSError as exc:
        await report_failure(cfg, f"static assets missing: {exc.strerror}")
        return EXIT_FAILED

    started = time.monotonic()
    try:
        server = await websockets.serve(
            app.handle_ws, cfg.listen_host, cfg.port,
            process_request=app.process_request,
            compression=None,        # deflate costs ~300 KB per socket; traffic is local/proxied
            max_size=1 << 20, max_queue=16,
            ping_interval=30, ping_timeout=30, close_timeout=1)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)  # asyncio's text is long
        await report_failure(cfg, f"cannot listen on {cfg.listen_host}:{cfg.port}: {reason}")
        return EXIT_FAILED
    port = server.sockets[0].getsockname()[1]
    tunnel_url = cfg.tunnel_url(port)
    log("info", "listening", host=cfg.listen_host, port=port, tunnel_url=tunnel_url)

    register = asyncio.create_task(post_callback(
        cfg, "/tunnel", {"terminal_id": cfg.session_id, "tunnel_url": tunnel_url},
        retry_for=TUNNEL_RETRY_FOR))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait([register, stopping], return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if register.done():
        try:
            register.result()
            log("info", "tunnel registered",
                ms=round((time.monotonic() - started) * 1000))
        except CallbackRejected as exc:
            log("error", "API refused the tunnel; session is gone", error=str(exc))
            stop.set()
            code = EXIT_REJECTED
        except StartupError as exc:
            await report_failure(cfg, str(exc))
            stop.set()
            code = EXIT_FAILED
    else:
        register.cancel()

    await stop.wait()
    log("info", "shutting down", clients=len(terminal.clients))
    server.close()  # stops accepting and closes every WebSocket with 1001 (going away)
    terminal.hangup()
    try:
        await asyncio.wait_for(server.wait_closed(), SHUTDOWN_GRACE)
    except asyncio.TimeoutError:
        log("warn", "clients did not close in time")
    return code


def main():
    ws_logger = logging.getLogger("websockets")
    ws_logger.setLevel(logging.WARNING)
    ws_logger.addHandler(_JsonLogHandler())
    ws_logger.propagate = False
    # Not asyncio.run(): on exit it joins the default executor, which could hold us for a
    # callback still blocked in urllib. The contract is "exit within ~2 s of SIGTERM".
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    code = loop.run_until_complete(run())
    sys.stdout.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
