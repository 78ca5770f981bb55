"""UserSpace: the library's methods, arguments and return values, over the daemon's HTTP API."""

import datetime
import json
import math
import os
import re
import threading
import urllib.parse

from . import _wire

OK = 0
NOT_FOUND = 1
EXPIRED = 2
REJECTED = 3

DEFAULT_TTL = 864000.0  # the daemon's default session.ttl (10 days), as in the library

_MAX_USERID = 2**63 - 1
_MAX_USERNAME_CHARS = 64  # longer names cannot belong to any account
_MAX_PASSWORD_BYTES = 1024
_PAGE = 1000  # users or sessions per request in all_users() and list_sessions()

# The keyword arguments the library passed on to psycopg.connect(): libpq's connection
# keywords and psycopg's own. The daemon owns its database connection, so they are accepted
# (an application's call site needs no change) and ignored.
_LIBRARY_KWARGS = frozenset(
    """host hostaddr port dbname user password passfile channel_binding connect_timeout
    client_encoding options application_name fallback_application_name keepalives
    keepalives_idle keepalives_interval keepalives_count tcp_user_timeout replication
    gssencmode gssdelegation sslmode requiressl sslcompression sslcert sslkey sslcertmode
    sslpassword sslrootcert sslcrl sslcrldir sslsni requirepeer require_auth
    ssl_min_protocol_version ssl_max_protocol_version krbsrvname gsslib service
    target_session_attrs load_balance_hosts autocommit prepare_threshold row_factory
    cursor_factory context""".split()
)

class BadCallError(Exception):
    """A call the library would refuse too: a missing argument, an invalid or taken value."""


class DaemonError(Exception):
    """The daemon could not be reached, refused the API token, or had no answer the library
    has a value for (database unavailable, overloaded, internal error). The library raised
    psycopg's errors in the same places."""

    def __init__(self, message, status=None, code=None):
        super().__init__(message)
        self.status = status
        self.code = code


def _userid(value):
    """A userid the daemon can hold, or None (then no such user can exist)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        n = value
    elif isinstance(value, str) and value.strip().isdigit():
        n = int(value)
    else:
        return None
    return n if 0 < n <= _MAX_USERID else None


def _uid_filter(uid):
    """list_sessions()/kill_sessions()'s uid: a userid, or 0 for every user."""
    if isinstance(uid, int) and not isinstance(uid, bool) and 0 <= uid <= _MAX_USERID:
        return uid
    raise BadCallError("uid must be a userid, or 0 for every user")


def _check_json(value, path="extra_data"):
    """extra_data is stored as JSON: refuse what has no JSON form rather than change it."""
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BadCallError(f"{path}: {value!r} has no JSON form")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_json(item, f"{path}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise BadCallError(
                    f"{path}: key {key!r} is not a string; JSON objects have string keys"
                )
            _check_json(item, f"{path}[{key!r}]")
        return
    raise BadCallError(
        f"{path}: a {type(value).__name__} has no JSON form "
        "(the daemon stores extra_data as JSON)"
    )


_HEADER_SAFE = re.compile(r"^[\x21-\x7e]*$")  # a token goes into a header as it is

_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def _epoch(timestamp):
    """An RFC 3339 timestamp as epoch seconds (float), like the library's `expiration`."""
    m = _TIMESTAMP.match(timestamp)
    if m is None:
        raise DaemonError(f"the daemon sent an unreadable timestamp: {timestamp!r}")
    whole, fraction, zone = m.groups()
    zone = "+00:00" if zone == "Z" else zone
    seconds = datetime.datetime.fromisoformat(whole + zone).timestamp()
    return seconds + (float(fraction) if fraction else 0.0)


def _str_arg(name, value):
    if not isinstance(value, str):
        raise BadCallError(f"{name} must be a string")
    return value


class UserSpace:
    """The library's UserSpace, answered by a pgusers daemon.

    Configured from keyword arguments or the environment: ``url`` (``PGUSERS_URL``, e.g.
    ``http://127.0.0.1:8080``) and ``api_token`` (``PGUSERS_API_TOKEN``, needed by every call
    but ``validate_user`` and ``check_key``). ``timeout`` (seconds, default 10),
    ``pool_size`` (keep-alive connections kept, default 10) and ``ca_certs`` (a PEM file for
    an https daemon with a private CA) tune the connection. The library's database keyword
    arguments (``dbname``, ``user``, ``password``, ``host``, ``port``, any libpq keyword) are
    accepted and ignored: the daemon owns the database connection.

    As with the library, constructing it again with the same configuration returns the same
    object. One object is safe to share between threads.
    """

    userspaces = {}  # (url, api_token) -> the one object for them, as the library's by dbname
    _instances_lock = threading.Lock()

    def __new__(
        cls,
        *,
        url=None,
        api_token=None,
        timeout=None,
        pool_size=None,
        ca_certs=None,
        **kwargs,
    ):
        unknown = sorted(set(kwargs) - _LIBRARY_KWARGS)
        if unknown:
            raise BadCallError(f"unknown keyword argument(s): {', '.join(unknown)}")
        url = url if url is not None else os.getenv("PGUSERS_URL")
        if not url:
            raise BadCallError(
                "No daemon URL specified for UserSpace. "
                "Use the 'url' param or the 'PGUSERS_URL' environment variable."
            )
        token = api_token if api_token is not None else os.getenv("PGUSERS_API_TOKEN")
        key = (url, token or None)
        with cls._instances_lock:
            existing = cls.userspaces.get(key)
            if existing is not None:
                return existing
            obj = super().__new__(cls)
            obj._setup(url, token or None, timeout, pool_size, ca_certs)
            cls.userspaces[key] = obj
            return obj

    def __init__(
        self,
        *,
        url=None,
        api_token=None,
        timeout=None,
        pool_size=None,
        ca_certs=None,
        **kwargs,
    ):
        # Everything was done by __new__ (which may have returned an existing object).
        pass

    def _setup(self, url, token, timeout, pool_size, ca_certs):
        if not isinstance(url, str):
            raise BadCallError("url must be a string")
        parts = urllib.parse.urlsplit(url)
        if parts.username is not None or parts.password is not None:
            raise BadCallError("PGUSERS_URL must not carry credentials: use PGUSERS_API_TOKEN")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadCallError("PGUSERS_URL must be an http:// or https:// URL with a host")
        if parts.query or parts.fragment:
            raise BadCallError("PGUSERS_URL must not have a query or a fragment")
        try:
            _ = parts.port
        except ValueError:
            raise BadCallError("PGUSERS_URL has an invalid port") from None
        if token is not None and not isinstance(token, str):
            raise BadCallError("api_token must be a string")
        self.url = url
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._prefix = parts.path.rstrip("/")
        try:
            seconds = 10.0 if timeout is None else float(timeout)
            self._pool_size = 10 if pool_size is None else int(pool_size)
        except (TypeError, ValueError):
            raise BadCallError("timeout and pool_size must be numbers") from None
        if not (math.isfinite(seconds) and seconds > 0):
            raise BadCallError("timeout must be a positive number of seconds")
        if self._pool_size < 1:
            raise BadCallError("pool_size must be at least 1")
        self._timeout = seconds
        self._ca_certs = ca_certs
        if token is not None and not _HEADER_SAFE.match(token):
            raise BadCallError("api_token has characters a header cannot carry")
        plain = b"User-Agent: pgusers-client/0.1\r\n"
        json_type = b"Content-Type: application/json\r\n"
        self._plain_headers = plain
        self._plain_json_headers = plain + json_type
        if token is None:
            self._admin_headers = self._admin_json_headers = None
        else:
            auth = b"Authorization: Bearer " + token.encode("ascii") + b"\r\n"
            self._admin_headers = plain + auth
            self._admin_json_headers = plain + json_type + auth
        self._pool = None
        self._pool_lock = threading.Lock()

    def __repr__(self):
        return f"<pgusers_client.UserSpace url={self.url!r}>"

    # ---- connection -------------------------------------------------------------------

    def _new_pool(self):
        parts = urllib.parse.urlsplit(self._origin)
        return _wire.Pool(
            parts.scheme,
            parts.hostname,
            parts.port or (443 if parts.scheme == "https" else 80),
            timeout=self._timeout,
            maxsize=self._pool_size,
            ca_certs=self._ca_certs,
        )

    def _get_pool(self):
        pool = self._pool
        if pool is None:
            with self._pool_lock:
                if self._pool is None:
                    self._pool = self._new_pool()
                pool = self._pool
        return pool

    def close(self):
        """Closes the pooled connections; a later call opens new ones, as the library's did."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        self.close()

    def _call(self, method, path, body=None, admin=True, query=None, idempotent=None):
        """One request; returns (status, decoded JSON body or None). A request broken off
        before its answer is repeated once only if it is idempotent (by default: GET, PUT,
        DELETE), never a POST that may have taken effect."""
        if admin:
            headers = self._admin_json_headers if body is not None else self._admin_headers
            if headers is None:
                raise BadCallError(
                    "this call needs the daemon's API token: set PGUSERS_API_TOKEN "
                    "or pass api_token="
                )
        else:
            headers = self._plain_json_headers if body is not None else self._plain_headers
        data = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":"), allow_nan=False).encode("utf-8")
        target = self._prefix + path
        if query:
            target += "?" + urllib.parse.urlencode(query)
        for attempt in (1, 2):
            pool = self._get_pool()
            try:
                status, raw = pool.request(method, target, headers, data, idempotent)
                break
            except _wire.PoolClosed:
                # close() ran in another thread meanwhile: once more on a fresh pool
                if attempt == 2:
                    raise DaemonError("the connection pool was closed") from None
            except _wire.TransportError as err:
                raise DaemonError(
                    f"cannot reach the pgusers daemon at {self._origin}: {err}"
                ) from None
        payload = None
        if raw:
            try:
                payload = json.loads(raw)
            except ValueError:
                raise DaemonError(
                    f"the daemon answered {status} with a body that is not JSON",
                    status=status,
                ) from None
        return status, payload

    def _unexpected(self, status, payload):
        """The error for an answer the library has no return value for."""
        code = payload.get("error") if isinstance(payload, dict) else None
        message = payload.get("message") if isinstance(payload, dict) else None
        if status in (400, 409, 413):
            return BadCallError(message or f"the daemon refused the call ({code or status})")
        if status == 401 and code == "UNAUTHENTICATED":
            return DaemonError(
                "the daemon refused the API token (PGUSERS_API_TOKEN)", status, code
            )
        text = f"the daemon answered {status}"
        if code:
            text += f" {code}"
        if message:
            text += f": {message}"
        return DaemonError(text, status, code)

    # ---- users ------------------------------------------------------------------------

    def create_user(self, username, password, email, admin=False, extra_data=None):
        """Creates a user; returns its numeric userid. BadCallError when the username or
        email is taken or invalid, or the password does not meet the daemon's policy."""
        body = {
            "username": _str_arg("username", username),
            "password": _str_arg("password", password),
            "email": _str_arg("email", email),
            "admin": bool(admin),
        }
        if extra_data is not None:
            _check_json(extra_data)
            body["extra_data"] = extra_data
        status, payload = self._call("POST", "/v1/users", body)
        if status == 201:
            return int(payload["userid"])
        raise self._unexpected(status, payload)

    def is_admin(self, userid):
        """True if the user is an admin; BadCallError if there is no such user."""
        uid = _userid(userid)
        if uid is not None:
            status, payload = self._call("GET", f"/v1/users/{uid}/admin")
            if status == 200:
                return bool(payload["admin"])
            if status != 404:
                raise self._unexpected(status, payload)
        raise BadCallError(f"User {userid} not found.")

    def set_admin(self, userid, admin=True):
        """Grants (or with admin=False revokes) admin rights; an unknown user is ignored."""
        uid = _userid(userid)
        if uid is None:
            return
        status, payload = self._call("PUT", f"/v1/users/{uid}/admin", {"admin": bool(admin)})
        if status not in (204, 404):
            raise self._unexpected(status, payload)

    def validate_user(self, username, password, extra_data=None):
        """Logs a user in: (key, admin, userid), or ("", False, None) when the username or
        password is wrong (and while the daemon holds logins of that account back)."""
        _str_arg("username", username)
        _str_arg("password", password)
        if extra_data is not None:
            _check_json(extra_data)
        if (
            len(username) > _MAX_USERNAME_CHARS
            or len(password.encode("utf-8", "surrogatepass")) > _MAX_PASSWORD_BYTES
        ):
            return "", False, None
        body = {"username": username, "password": password}
        if extra_data is not None:
            body["extra_data"] = extra_data
        status, payload = self._call("POST", "/v1/login", body, admin=False)
        if status == 201:
            return payload["key"], bool(payload["admin"]), int(payload["userid"])
        if status in (401, 429):
            return "", False, None
        raise self._unexpected(status, payload)

    def _userid_of(self, username):
        status, payload = self._call("GET", "/v1/users", query={"username": username})
        if status == 200:
            return int(payload["userid"])
        if status == 404:
            return None
        raise self._unexpected(status, payload)

    def delete_user(self, username=None, userid=None):
        """Deletes a user (and its sessions) by username or userid: OK, or NOT_FOUND."""
        if username is not None:
            uid = self._userid_of(_str_arg("username", username))
        elif userid is not None:
            uid = _userid(userid)
        else:
            raise BadCallError(
                "delete_user(): Either 'username'" + " or 'userid' must be specified."
            )
        if uid is None:
            return NOT_FOUND
        status, payload = self._call("DELETE", f"/v1/users/{uid}")
        if status == 204:
            return OK
        if status == 404:
            return NOT_FOUND
        raise self._unexpected(status, payload)

    def change_password(self, userid, newpassword, oldpassword=None):
        """Changes a password: OK, NOT_FOUND, or REJECTED when oldpassword is given and wrong.
        The daemon ends every session of the user with it."""
        body = {"new_password": _str_arg("newpassword", newpassword)}
        if oldpassword is not None:
            body["old_password"] = _str_arg("oldpassword", oldpassword)
        uid = _userid(userid)
        if uid is None:
            return NOT_FOUND
        status, payload = self._call("PUT", f"/v1/users/{uid}/password", body)
        if status == 204:
            return OK
        if status == 404:
            return NOT_FOUND
        if status == 403 and isinstance(payload, dict) and payload.get("error") == "REJECTED":
            return REJECTED
        raise self._unexpected(status, payload)

    def find_user(self, username=None, email=None, userid=None):
        """A dict with userid, username, email, admin and extra_data, or None if not found."""
        if username is not None:
            status, payload = self._call(
                "GET", "/v1/users", query={"username": _str_arg("username", username)}
            )
        elif email is not None:
            status, payload = self._call(
                "GET", "/v1/users", query={"email": _str_arg("email", email)}
            )
        elif userid is not None:
            uid = _userid(userid)
            if uid is None:
                return None
            status, payload = self._call("GET", f"/v1/users/{uid}")
        else:
            raise BadCallError(
                "find_user(): Either 'username', " "'email' or 'userid' must be specified."
            )
        if status == 200:
            return {
                "userid": payload["userid"],
                "username": payload["username"],
                "email": payload["email"],
                "admin": payload["admin"],
                "extra_data": payload["extra_data"],
            }
        if status == 404:
            return None
        raise self._unexpected(status, payload)

    def modify_user(self, userid, username=None, email=None, extra_data=None):
        """Changes the given fields (None leaves a field as it is): OK, or NOT_FOUND."""
        body = {}
        if username is not None:
            body["username"] = _str_arg("username", username)
        if email is not None:
            body["email"] = _str_arg("email", email)
        if extra_data is not None:
            _check_json(extra_data)
            body["extra_data"] = extra_data
        if not body:
            return OK  # nothing to change, as the library answered
        uid = _userid(userid)
        if uid is None:
            return NOT_FOUND
        status, payload = self._call("PATCH", f"/v1/users/{uid}", body)
        if status == 200:
            return OK
        if status == 404:
            return NOT_FOUND
        raise self._unexpected(status, payload)

    def all_users(self):
        """Generator of (userid, username, email, admin) for every user, ordered by username."""
        rows = []
        after = 0
        while True:
            status, payload = self._call(
                "GET", "/v1/users", query={"after": after, "limit": _PAGE}
            )
            if status != 200:
                raise self._unexpected(status, payload)
            rows.extend(
                (u["userid"], u["username"], u["email"], u["admin"]) for u in payload["users"]
            )
            after = payload.get("next_after")
            if after is None:
                break
        rows.sort(key=lambda row: (row[1], row[0]))
        yield from rows

    # ---- sessions ---------------------------------------------------------------------

    def check_key(self, key):
        """Checks a session key and slides its expiry: (rc, username, userid, extra_data)
        with rc OK, NOT_FOUND or EXPIRED (then the other three are None)."""
        if not isinstance(key, str):
            return NOT_FOUND, None, None, None
        # a check changes nothing but the expiry it slides: safe to repeat
        status, payload = self._call(
            "POST", "/v1/sessions/check", {"key": key}, admin=False, idempotent=True
        )
        if status == 200:
            return OK, payload["username"], payload["userid"], payload["extra_data"]
        if status == 401 and isinstance(payload, dict) and payload.get("error") == "EXPIRED":
            return EXPIRED, None, None, None
        if status in (400, 401, 413):
            return NOT_FOUND, None, None, None
        raise self._unexpected(status, payload)

    def set_session_TTL(self, secs):
        """Sets the sessions' time to live, in seconds, for every new or checked session.
        On the daemon this is one setting for every client and instance (rounded up to
        whole seconds, 1 second to 10 years)."""
        if isinstance(secs, bool) or not isinstance(secs, (int, float)):
            raise BadCallError("secs must be a number of seconds")
        if isinstance(secs, float):
            if not math.isfinite(secs):
                raise BadCallError("secs must be a finite number of seconds")
            secs = math.ceil(secs)
        status, payload = self._call("PUT", "/v1/settings/session_ttl", {"seconds": secs})
        if status != 204:
            raise self._unexpected(status, payload)

    @property
    def ttl(self):
        """The sessions' time to live in seconds, as the daemon applies it now."""
        status, payload = self._call("GET", "/v1/settings")
        if status != 200:
            raise self._unexpected(status, payload)
        return float(payload["session_ttl"]["seconds"])

    @ttl.setter
    def ttl(self, secs):
        self.set_session_TTL(secs)

    def list_sessions(self, uid, expired=False):
        """Generator of (username, session_id, expiration) for the sessions of user uid, or
        of every user if uid is 0; with expired=True only the expired ones. The daemon never
        reveals a session key: the second item is the session's public id, not its key.
        """
        query = {"userid": _uid_filter(uid), "expired": "true" if expired else "false"}
        query["limit"] = _PAGE
        while True:
            status, payload = self._call("GET", "/v1/sessions", query=query)
            if status != 200:
                raise self._unexpected(status, payload)
            for s in payload["sessions"]:
                yield s["username"], s["session_id"], _epoch(s["expires_at"])
            after = payload.get("next_after")
            if after is None:
                return
            query["after"] = after

    def kill_sessions(self, uid, expired=False):
        """Ends the sessions of user uid, or of every user if uid is 0; with expired=True
        only the expired ones."""
        query = {"userid": _uid_filter(uid), "expired": "true" if expired else "false"}
        status, payload = self._call("DELETE", "/v1/sessions", query=query)
        if status != 200:
            raise self._unexpected(status, payload)
