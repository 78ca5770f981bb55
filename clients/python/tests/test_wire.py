"""The client's HTTP/1.1 exchange against a scripted server: what the daemon does not show
on its own (chunked answers, connections closed while idle or before an answer)."""

import socket
import threading
import time

import pytest

from pgusers_client import _wire


class ScriptedServer:
    """Accepts connections and answers requests in turn from a list: bytes to send, None to
    close without answering, or (bytes, CLOSE) to answer and then close."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.requests = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while self.answers:
            conn, _ = self.listener.accept()
            with conn:
                while self.answers:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    if not data:
                        break
                    self.requests.append(data.split(b"\r\n", 1)[0].decode())
                    answer = self.answers.pop(0)
                    if answer is None:
                        break  # closes without answering
                    if isinstance(answer, tuple):
                        conn.sendall(answer[0])
                        break
                    conn.sendall(answer)

    def pool(self):
        return _wire.Pool("http", "127.0.0.1", self.port, timeout=5, maxsize=2)


CLOSE = "close"
OK_JSON = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}'


def test_a_chunked_answer_is_read_whole_and_the_connection_kept():
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\n{\"a\"\r\n3;ext=1\r\n:1}\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    server = ScriptedServer([chunked, OK_JSON])
    pool = server.pool()
    assert pool.request("GET", "/x", b"") == (200, b'{"a":1}')
    assert pool.request("GET", "/y", b"") == (200, b"{}")
    assert pool.num_connections == 1


def test_an_answer_without_a_body_leaves_the_connection_usable():
    server = ScriptedServer([b"HTTP/1.1 204 No Content\r\n\r\n", OK_JSON])
    pool = server.pool()
    assert pool.request("DELETE", "/x", b"") == (204, b"")
    assert pool.request("GET", "/y", b"") == (200, b"{}")
    assert pool.num_connections == 1


def test_a_connection_the_server_closed_while_idle_is_replaced_before_use():
    server = ScriptedServer([(OK_JSON, CLOSE), OK_JSON])
    pool = server.pool()
    assert pool.request("POST", "/v1/login", b"", b"{}") == (200, b"{}")
    time.sleep(0.2)  # the server's FIN arrives while the connection is idle
    assert pool.request("POST", "/v1/login", b"", b"{}") == (200, b"{}")
    assert pool.num_connections == 2
    assert server.requests == ["POST /v1/login HTTP/1.1"] * 2


def test_an_answer_saying_connection_close_is_not_kept():
    closing = OK_JSON.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
    server = ScriptedServer([closing, OK_JSON])
    pool = server.pool()
    assert pool.request("GET", "/a", b"") == (200, b"{}")
    assert pool.request("GET", "/b", b"") == (200, b"{}")
    assert pool.num_connections == 2


def test_a_post_broken_off_before_its_answer_is_not_repeated():
    server = ScriptedServer([None, OK_JSON])
    pool = server.pool()
    with pytest.raises(_wire.TransportError, match="closed the connection"):
        pool.request("POST", "/v1/login", b"", b"{}")
    assert server.requests == ["POST /v1/login HTTP/1.1"]


def test_an_idempotent_call_broken_off_before_its_answer_is_repeated_once():
    server = ScriptedServer([None, OK_JSON])
    pool = server.pool()
    assert pool.request("GET", "/v1/users/1", b"") == (200, b"{}")
    assert server.requests == ["GET /v1/users/1 HTTP/1.1"] * 2
    assert pool.num_connections == 2


def test_an_answer_that_is_not_http_is_an_error():
    server = ScriptedServer([b"SSH-2.0-OpenSSH\r\n\r\n"])
    with pytest.raises(_wire.TransportError, match="not HTTP"):
        server.pool().request("GET", "/", b"")
