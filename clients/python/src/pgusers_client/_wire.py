"""HTTP/1.1 to one pgusers daemon over pooled keep-alive connections, and nothing more.

The client talks to one server whose answers it knows: JSON bodies with a Content-Length (or
chunked, or none). A general HTTP library (urllib3, http.client) spends most of a session
check parsing headers with the email package; this module sends a request in one write and
reads the answer with a few byte searches, which is what makes ``check_key`` a loopback round
trip rather than a Python workload (bench/python_client_bench.sh).

It does not follow redirects, does not decompress and does not speak HTTP/2: the daemon needs
none of it.
"""

import collections
import select
import socket
import ssl
import threading

_MAX_HEAD = 64 * 1024  # the daemon's answers have a few short headers
_MAX_BODY = 64 * 1024 * 1024
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


class TransportError(Exception):
    """The daemon could not be reached or broke the exchange off; ``str()`` says how."""


class PoolClosed(Exception):
    """close() ran while a call was being made."""


class _Eof(Exception):
    """The peer closed the connection; ``answered`` says whether any of the answer came."""

    def __init__(self, answered):
        super().__init__("the connection was closed")
        self.answered = answered


class _Connection:
    """One socket and the bytes read from it but not yet consumed."""

    __slots__ = ("sock", "buf")

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def dropped(self):
        """True if the peer closed this idle connection (or sent something unasked)."""
        if self.buf:
            return True
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _fill(self, answered):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise _Eof(answered)
        self.buf += chunk

    def read_until(self, marker, limit, answered=True):
        """The bytes up to ``marker`` (consumed with it)."""
        start = 0
        while True:
            end = self.buf.find(marker, start)
            if end >= 0:
                line = bytes(self.buf[:end])
                del self.buf[: end + len(marker)]
                return line
            if len(self.buf) > limit:
                raise TransportError("the daemon sent an over-long answer header")
            start = max(0, len(self.buf) - len(marker) + 1)
            self._fill(answered)

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill(True)
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_to_end(self):
        try:
            while len(self.buf) <= _MAX_BODY:
                self._fill(True)
        except _Eof:
            pass
        data = bytes(self.buf)
        self.buf.clear()
        return data


def _read_answer(conn, method):
    """(status, body, reusable) of one answer on ``conn``."""
    head = conn.read_until(b"\r\n\r\n", _MAX_HEAD, answered=False)
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise TransportError("the daemon sent something that is not HTTP/1.1")
    status = int(parts[1])
    length = None
    chunked = False
    reusable = parts[0] == b"HTTP/1.1"
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            value = value.strip()
            if not value.isdigit():
                raise TransportError("the daemon sent an invalid Content-Length")
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = value.strip().lower() == b"chunked"
        elif name == b"connection":
            token = value.strip().lower()
            if token == b"close":
                reusable = False
            elif token == b"keep-alive":
                reusable = True
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return status, b"", reusable
    if chunked:
        body = bytearray()
        while True:
            size_line = conn.read_until(b"\r\n", 1024).split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise TransportError("the daemon sent an invalid chunk size") from None
            if size == 0:
                while conn.read_until(b"\r\n", _MAX_HEAD):  # trailers, up to the blank line
                    pass
                return status, bytes(body), reusable
            if len(body) + size > _MAX_BODY:
                raise TransportError("the daemon's answer is too large")
            body += conn.read_exact(size + 2)[:size]
    if length is not None:
        if length > _MAX_BODY:
            raise TransportError("the daemon's answer is too large")
        return status, conn.read_exact(length), reusable
    return status, conn.read_to_end(), False


class Pool:
    """Keep-alive connections to one origin, shared by threads.

    A call takes an idle connection (or opens one), makes its exchange and puts the connection
    back; at most ``maxsize`` idle connections are kept. ``num_connections`` counts the
    connections opened so far.
    """

    def __init__(self, scheme, host, port, timeout, maxsize, ca_certs=None):
        self._address = (host, port)
        self._host_header = host if ":" not in host else f"[{host}]"
        default_port = 443 if scheme == "https" else 80
        if port != default_port:
            self._host_header += f":{port}"
        self._timeout = timeout
        self._maxsize = maxsize
        self._tls = None
        if scheme == "https":
            self._tls = ssl.create_default_context(cafile=ca_certs)
        self._idle = collections.deque()
        self._closed = False
        self._count_lock = threading.Lock()
        self.num_connections = 0

    def _open(self):
        try:
            sock = socket.create_connection(self._address, timeout=self._timeout)
        except OSError as err:
            raise TransportError(err.strerror or str(err)) from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_hostname=self._address[0])
        except (OSError, ssl.SSLError) as err:
            sock.close()
            raise TransportError(str(err)) from None
        with self._count_lock:
            self.num_connections += 1
        return _Connection(sock)

    def _take(self):
        """An idle connection that is still open, or None."""
        while True:
            try:
                conn = self._idle.pop()
            except IndexError:
                return None
            if not conn.dropped():
                return conn
            conn.close()

    def _give_back(self, conn):
        if self._closed or len(self._idle) >= self._maxsize:
            conn.close()
            return
        self._idle.append(conn)
        if self._closed:  # close() ran meanwhile and may have missed it
            self._drain()

    def _drain(self):
        while True:
            try:
                self._idle.pop().close()
            except IndexError:
                return

    def close(self):
        self._closed = True
        self._drain()

    def request(self, method, target, headers, body=None, idempotent=None):
        """One exchange: (status, body bytes). ``headers`` is the header block as bytes, each
        line ending in CRLF. Connection failures are retried twice; a connection broken off
        before any answer came, once, and only for an idempotent request."""
        if self._closed:
            raise PoolClosed()
        if idempotent is None:
            idempotent = method in _IDEMPOTENT
        request = b"".join(
            (
                f"{method} {target} HTTP/1.1\r\nHost: {self._host_header}\r\n".encode("ascii"),
                headers,
                b"Content-Length: %d\r\n\r\n" % len(body) if body is not None else b"\r\n",
                body or b"",
            )
        )
        connect_tries = 3
        read_tries = 2 if idempotent else 1
        while True:
            conn = self._take()
            if conn is None:
                connect_tries -= 1
                try:
                    conn = self._open()
                except TransportError:
                    if connect_tries > 0:
                        continue
                    raise
            try:
                conn.sock.sendall(request)
                status, data, reusable = _read_answer(conn, method)
            except _Eof as eof:
                conn.close()
                read_tries -= 1
                if not eof.answered and read_tries > 0:
                    continue
                raise TransportError("the daemon closed the connection") from None
            except (OSError, TransportError) as err:
                conn.close()
                read_tries -= 1
                if isinstance(err, OSError) and read_tries > 0:
                    continue
                if isinstance(err, TransportError):
                    raise
                raise TransportError(str(err) or type(err).__name__) from None
            if reusable:
                self._give_back(conn)
            else:
                conn.close()
            return status, data
