"""The HTTP side of the web page: the standard library's ThreadingHTTPServer, a handful of JSON routes
and the page's three static files shipped in sr_keras/web/static (nothing fetched from elsewhere).

    GET  /                               the page (index.html, app.js, app.css)
    GET  /api/models                     the models, their scales, the interpolation pair, the limits
    POST /api/jobs?name=&model=&strength=  the picture's bytes as the body -> 202 {id, ...} or 400 {error}
    GET  /api/jobs/ID?wait=S&state=&tiles=  the job's status; waits up to S seconds for a change
    POST /api/jobs/ID/cancel             stop it (queued: never starts; running: after the current tile)
    GET  /api/jobs/ID/result.EXT         the result as png, jpg or webp (?download=1: as an attachment)

Each request runs in its own thread; only the Worker's thread calls a model (sr_keras.web.jobs). Job
ids are random, so one browser cannot fetch another's pictures by counting.
"""
import http.server
import ipaddress
import json
import re
import socket
import urllib.parse
from importlib import resources

from sr_keras.core.errors import UserError, one_line

_STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
           "/app.js": ("app.js", "text/javascript; charset=utf-8"),
           "/app.css": ("app.css", "text/css; charset=utf-8")}
_JOB = re.compile(r"^/api/jobs/([A-Za-z0-9_-]+)(?:/(cancel|result\.(png|jpg|webp)))?$")
# Everything the page needs comes from this server; blob: for the browser's own copy of a chosen file.
_CSP = "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
LONGEST_WAIT = 30  # seconds one status request may wait for a change


def upload_limit(max_megapixels):
    """The largest upload body in bytes: the picture limit at 8 bytes a pixel (uncompressed 16-bit
    RGBA, the most any accepted format stores) plus 1 MiB for headers and metadata."""
    return int(max_megapixels * 1e6 * 8) + 2 ** 20


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "sr-web"

    def log_message(self, format, *values):  # noqa: A002  the worker prints one line per picture instead
        pass

    def _send(self, status, body, content_type, headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", _CSP)
        for key, value in headers:
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status, value):
        self._send(status, json.dumps(value).encode(), "application/json", [("Cache-Control", "no-store")])

    def _error(self, status, message):
        self._json(status, {"error": one_line(message)})

    def _foreign(self):
        """True for a request sent by another site's page (its Origin is not this server), or, on a
        loopback address, one naming another host: a DNS-rebinding page reaching this server by name."""
        host = self.headers.get("Host", "")
        origin = self.headers.get("Origin")
        if origin and urllib.parse.urlsplit(origin).netloc != host:
            return True
        return self.server.loopback and not is_loopback(urllib.parse.urlsplit(f"//{host}").hostname or "")

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        if self._foreign():
            return self._error(403, "this page answers only its own address")
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        worker = self.server.worker
        if url.path in _STATIC:
            name, content_type = _STATIC[url.path]
            body = resources.files("sr_keras.web").joinpath("static", name).read_bytes()
            return self._send(200, body, content_type, [("Cache-Control", "no-cache")])
        if url.path == "/api/models":
            return self._json(200, {**worker.models(), "max_upload_bytes": upload_limit(worker.max_megapixels)})
        found = _JOB.match(url.path)
        job = worker.get(found.group(1)) if found else None
        if job is None or found.group(2) == "cancel":
            return self._error(404, f"no such page or job: {url.path}")
        if found.group(3) is None:
            try:
                wait = min(float(query.get("wait", 0)), LONGEST_WAIT)
                if wait > 0:
                    job.wait(wait, query.get("state", ""), int(query.get("tiles", -1)))
            except ValueError:
                return self._error(400, "wait and tiles must be numbers")
            return self._json(200, worker.status(job))
        if job.state != "done":
            return self._error(409, f"'{job.name}' is {job.state}, not done")
        try:
            body, content_type, filename, warnings = worker.encoded(job, found.group(3))
        except UserError as e:
            return self._error(400, str(e))
        headers = [("Cache-Control", "private, max-age=3600")]
        if warnings:  # metadata the format cannot carry, dropped as upscale.py drops it
            headers.append(("X-Warning", urllib.parse.quote(one_line("; ".join(warnings)))))
        if query.get("download"):
            quoted = urllib.parse.quote(filename)
            headers.append(("Content-Disposition", f"attachment; filename=\"{quoted}\"; filename*=UTF-8''{quoted}"))
        self._send(200, body, content_type, headers)

    def do_POST(self):
        if self._foreign():
            self.close_connection = True
            return self._error(403, "this page answers only its own address")
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        worker = self.server.worker
        found = _JOB.match(url.path)
        if found and found.group(2) == "cancel":
            job = worker.get(found.group(1))
            if job is None:
                return self._error(404, f"no such job: {found.group(1)}")
            worker.cancel(job)
            return self._json(200, worker.status(job))
        if url.path != "/api/jobs":
            return self._error(404, f"no such page: {url.path}")
        name = query.get("name") or "picture"
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.close_connection = True
            return self._error(411, "send the picture with a Content-Length")
        limit = upload_limit(worker.max_megapixels)
        if length > limit:  # refused unread: the connection closes (HTTP/1.0) so no body is left behind
            self.close_connection = True
            return self._error(413, f"'{name}' is {length / 1e6:.1f} MB, over this server's upload limit of "
                                    f"{limit / 1e6:.0f} MB (--max-megapixels {worker.max_megapixels:g})")
        data = self.rfile.read(length)
        try:
            strength = float(query["strength"]) if query.get("strength") not in (None, "") else None
        except ValueError:
            return self._error(400, f"interpolation strength '{query['strength']}' is not a number")
        try:
            job = worker.submit(data, name, query.get("model") or None, strength)
        except UserError as e:
            return self._error(400, str(e))
        except MemoryError:
            return self._error(503, f"not enough memory to read '{name}' now: try again, or a smaller picture")
        self._json(202, worker.status(job))


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True  # a long poll left open by a closed tab does not hold up the shutdown


class _Server6(_Server):
    address_family = socket.AF_INET6


def make_server(worker, host="127.0.0.1", port=0):
    """A ThreadingHTTPServer bound to host:port (0: any free port) serving the page for `worker`;
    call serve_forever(). Raises OSError when the address cannot be bound."""
    server = (_Server6 if ":" in host else _Server)((host, port), Handler)
    server.worker, server.loopback = worker, is_loopback(host)
    return server


def is_loopback(host):
    """True for localhost and loopback addresses (127.0.0.0/8, ::1); a host name may be any interface."""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def address(server):
    """The page's URL, e.g. http://127.0.0.1:8000/."""
    host, port = server.server_address[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"
