"""Smoke test for the terminal image; run by smoke-test.sh inside the image itself (it has
python3-websockets), so the host needs nothing but Docker.

  smoke_test.py receiver PORTFILE STATUS   callback stand-in: logs POSTs as JSON lines
  smoke_test.py client URL TOKEN COOKIE    HTTP, auth and WebSocket checks against a session
"""
import asyncio
import http.client
import http.server
import json
import sys
import time

import websockets


def receiver(portfile, status):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            print(json.dumps({"path": self.path, "auth": self.headers.get("Authorization"),
                              "body": json.loads(body)}), flush=True)
            self.send_response(int(status))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(portfile, "w") as f:
        f.write(str(server.server_address[1]))
    server.serve_forever()


FAILED = []


def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + (f"  ({detail})" if detail and not ok else ""))
    if not ok:
        FAILED.append(name)


async def read_until(ws, needle, timeout=5):
    buf = b""
    deadline = time.monotonic() + timeout
    while needle not in buf:
        msg = await asyncio.wait_for(ws.recv(), deadline - time.monotonic())
        buf += msg if isinstance(msg, bytes) else msg.encode()
    return buf


async def refused(url, **kwargs):
    try:
        async with websockets.connect(url, **kwargs):
            return None
    except websockets.exceptions.InvalidStatusCode as exc:
        return exc.status_code


def client(url, token, cookie_name):
    host = url.split("//", 1)[1].rstrip("/")

    def get(path, headers=None):
        conn = http.client.HTTPConnection(host, timeout=5)
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.getheader("Location"), resp.getheader("Set-Cookie"), resp.read()

    status, _, _, body = get("/healthz")
    check("GET /healthz is 200 ok", status == 200 and body == b"ok\n")
    check("GET / without token is 401", get("/")[0] == 401)
    check("GET /?token=wrong is 401", get("/?token=wrong")[0] == 401)
    status, location, set_cookie, _ = get("/?token=" + token)
    check("GET /?token=T sets the cookie and 303s to /",
          status == 303 and location == "/" and set_cookie is not None
          and set_cookie.startswith(f"{cookie_name}=") and "HttpOnly" in set_cookie
          and "SameSite=Strict" in set_cookie, f"{status} {location} {set_cookie}")
    cookie = (set_cookie or "").split(";")[0]
    status, _, _, body = get("/", {"Cookie": cookie})
    check("GET / with cookie serves the page", status == 200 and b"Berth terminal" in body)
    check("GET /static/xterm.js without auth", get("/static/xterm.js")[0] == 200)
    check("unknown paths are 404", get("/static/index.html")[0] == 404 and get("/x")[0] == 404)

    async def ws_checks():
        ws_url = url.replace("http", "ws", 1).rstrip("/") + "/ws"
        check("WebSocket without token is 401", await refused(ws_url) == 401)
        check("WebSocket with wrong token is 401", await refused(ws_url + "?token=no") == 401)
        check("cookie WebSocket from another origin is 403",
              await refused(ws_url, extra_headers={"Cookie": cookie},
                            origin="http://evil.example") == 403)
        async with websockets.connect(ws_url, extra_headers={"Authorization": "Bearer " + token}):
            check("WebSocket with bearer token", True)
        async with websockets.connect(ws_url, extra_headers={"Cookie": cookie},
                                      origin="http://" + host) as ws:
            await ws.send("garbage")
            await ws.send(json.dumps({"type": "resize", "cols": 100, "rows": 30}))
            await ws.send(json.dumps({"type": "input", "data": "echo berth-$((100+23))\r"}))
            check("shell echoes berth-123", b"berth-123" in await read_until(ws, b"berth-123"))
            await ws.send(b"stty size\r")
            check("resize applied, binary input", b"30 100" in await read_until(ws, b"30 100"))
            async with websockets.connect(ws_url + "?token=" + token) as second:
                check("second client gets the scrollback",
                      b"berth-123" in await read_until(second, b"berth-123"))
            await ws.send(json.dumps({"type": "input", "data": "exit 7\r"}))
            out = await read_until(ws, b"new shell]")
            check("shell exit is announced", b"exited with code 7" in out)
            try:
                await asyncio.wait_for(ws.recv(), 3)
                code = None
            except websockets.exceptions.ConnectionClosed as exc:
                code = exc.code
            check("closed with 4000 after shell exit", code == 4000, code)
        async with websockets.connect(ws_url + "?token=" + token) as ws:
            await ws.send(json.dumps({"type": "input", "data": "echo again-$((1+1))\r"}))
            check("new shell on reconnect", b"again-2" in await read_until(ws, b"again-2"))

    asyncio.run(ws_checks())
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    {"receiver": receiver, "client": client}[sys.argv[1]](*sys.argv[2:])
