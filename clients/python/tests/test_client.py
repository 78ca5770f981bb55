"""What the client adds to the library's contract: configuration, the daemon's errors, one
pooled keep-alive connection shared by threads, and the documented differences.

Needs the same daemon as test_users.py (PGUSERS_URL, PGUSERS_API_TOKEN).
"""

import datetime
import os
import threading
import time

import pytest

import pgusers_client as pgusers
from pgusers_client import _userspace


@pytest.fixture
def us():
    space = pgusers.UserSpace()
    yield space
    for userid, *_ in list(space.all_users()):
        space.delete_user(userid=userid)
    space.kill_sessions(0)
    space.set_session_TTL(pgusers.DEFAULT_TTL)
    space.close()


def test_keyword_arguments_take_precedence_over_the_environment():
    url = os.environ["PGUSERS_URL"]
    space = pgusers.UserSpace(url=url + "/", api_token=os.environ["PGUSERS_API_TOKEN"])
    assert space is not pgusers.UserSpace()  # another URL spelling, another object
    assert space.find_user(userid=1) is None


def test_the_librarys_connection_arguments_are_accepted_and_others_refused():
    space = pgusers.UserSpace(dbname="pytestdb", user="admin", password="x", host="h", port=5432)
    assert space is pgusers.UserSpace()
    with pytest.raises(pgusers.BadCallError, match="unknown keyword argument"):
        pgusers.UserSpace(ulr="http://127.0.0.1:1")


@pytest.mark.parametrize(
    "url, problem",
    [
        ("127.0.0.1:8080", "http:// or https://"),
        ("ftp://127.0.0.1", "http:// or https://"),
        ("http://tok:secret-token@127.0.0.1", "must not carry credentials"),
        ("ftp://tok:secret-token@127.0.0.1", "must not carry credentials"),
        ("http://127.0.0.1/?a=b", "query"),
        ("http://127.0.0.1:99999", "invalid port"),
    ],
)
def test_a_bad_url_is_a_bad_call_that_does_not_echo_credentials(url, problem):
    with pytest.raises(pgusers.BadCallError, match=problem) as err:
        pgusers.UserSpace(url=url)
    assert "secret-token" not in str(err.value)


def test_without_an_api_token_only_logins_and_checks_work(us):
    us.create_user("tokenless", "pw1", "tokenless@example.org")
    anonymous = pgusers.UserSpace(url=os.environ["PGUSERS_URL"], api_token="")
    key, admin, userid = anonymous.validate_user("tokenless", "pw1")
    assert key and anonymous.check_key(key)[:3] == (pgusers.OK, "tokenless", userid)
    with pytest.raises(pgusers.BadCallError, match="PGUSERS_API_TOKEN"):
        anonymous.find_user(userid=userid)


def test_a_wrong_api_token_is_a_daemon_error_that_does_not_show_the_token():
    space = pgusers.UserSpace(api_token="not-the-token-0123456789")
    with pytest.raises(pgusers.DaemonError) as err:
        space.find_user(userid=1)
    assert err.value.status == 401
    assert "not-the-token" not in str(err.value)


def test_an_unreachable_daemon_is_a_daemon_error():
    space = pgusers.UserSpace(url="http://127.0.0.1:1", timeout=2)
    with pytest.raises(pgusers.DaemonError, match="cannot reach"):
        space.check_key("k")


def test_calls_share_one_keep_alive_connection(us):
    userid = us.create_user("alive", "pw1", "alive@example.org")
    key = us.validate_user("alive", "pw1")[0]
    for _ in range(50):
        assert us.check_key(key)[0] == pgusers.OK
        assert us.find_user(userid=userid)["username"] == "alive"
    assert us._get_pool().num_connections == 1


def test_threads_share_one_object(us):
    keys = {}
    for i in range(8):
        us.create_user(f"t{i}", "pw1", f"t{i}@example.org")
        keys[i] = us.validate_user(f"t{i}", "pw1")[0]
    failures = []

    def work(i):
        for _ in range(40):
            rc, name, _uid, _extra = us.check_key(keys[i])
            if (rc, name) != (pgusers.OK, f"t{i}"):
                failures.append((i, rc, name))
            if us.find_user(username=f"t{i}")["username"] != f"t{i}":
                failures.append((i, "find"))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert us._get_pool().num_connections <= 10  # the pool's size


def test_close_then_use_again_reconnects(us):
    with pgusers.UserSpace() as space:
        assert space is us
        us.create_user("again", "pw1", "again@example.org")
    assert us.find_user(username="again")["email"] == "again@example.org"


def test_find_user_answers_the_librarys_five_fields(us):
    userid = us.create_user(
        "five", "pw1", "five@example.org", True, {"nested": {"a": [1, 2.5, None]}}
    )
    assert us.find_user(userid=userid) == {
        "userid": userid,
        "username": "five",
        "email": "five@example.org",
        "admin": True,
        "extra_data": {"nested": {"a": [1, 2.5, None]}},
    }


def test_lookups_ignore_letter_case_unlike_the_library(us):
    userid = us.create_user("Casey", "pw1", "Casey@Example.org")
    assert us.find_user(username="casey")["userid"] == userid
    assert us.find_user(email="CASEY@example.ORG")["userid"] == userid
    with pytest.raises(pgusers.BadCallError):
        us.create_user("CASEY", "pw1", "other@example.org")
    assert us.validate_user("CASEY", "pw1")[2] == userid


@pytest.mark.parametrize(
    "extra",
    [
        {1: "int key"},
        {"when": datetime.datetime(2020, 1, 1)},
        {1, 2},
        b"bytes",
        float("nan"),
    ],
)
def test_extra_data_without_a_json_form_is_refused_and_nothing_is_written(us, extra):
    with pytest.raises(pgusers.BadCallError, match="JSON"):
        us.create_user("pickled", "pw1", "pickled@example.org", extra_data=extra)
    assert us.find_user(username="pickled") is None


def test_tuples_in_extra_data_come_back_as_lists(us):
    us.create_user("tuple", "pw1", "tuple@example.org", extra_data={"t": (1, 2)})
    assert us.find_user(username="tuple")["extra_data"] == {"t": [1, 2]}


def test_the_password_policy_is_the_daemons(us):
    with pytest.raises(pgusers.BadCallError, match="password"):
        us.create_user("empty", "", "empty@example.org")


def test_list_sessions_yields_public_ids_never_keys(us):
    userid = us.create_user("lister", "pw1", "lister@example.org")
    key = us.validate_user("lister", "pw1")[0]
    [(username, session_id, expiration)] = list(us.list_sessions(userid))
    assert username == "lister"
    assert isinstance(session_id, int) and str(session_id) != key
    assert abs(expiration - (time.time() + pgusers.DEFAULT_TTL)) < 60


def test_list_sessions_reads_every_page(us, monkeypatch):
    monkeypatch.setattr(_userspace, "_PAGE", 2)
    userid = us.create_user("pager", "pw1", "pager@example.org")
    for _ in range(5):
        us.validate_user("pager", "pw1")
    ids = [session_id for _, session_id, _ in us.list_sessions(userid)]
    assert len(ids) == 5 and len(set(ids)) == 5


def test_set_session_ttl_is_the_daemons_setting_in_whole_seconds(us):
    us.set_session_TTL(1.2)
    assert us.ttl == 2.0
    us.ttl = 30
    assert pgusers.UserSpace(url=os.environ["PGUSERS_URL"] + "/").ttl == 30.0
    for bad in (0, -5, float("inf"), "10", True):
        with pytest.raises(pgusers.BadCallError):
            us.set_session_TTL(bad)
    assert us.ttl == 30.0


def test_deleting_a_user_ends_its_sessions(us):
    us.create_user("leaver", "pw1", "leaver@example.org")
    key = us.validate_user("leaver", "pw1")[0]
    assert us.delete_user(username="leaver") == pgusers.OK
    assert us.check_key(key) == (pgusers.NOT_FOUND, None, None, None)


def test_a_password_change_ends_the_users_sessions_unlike_the_library(us):
    userid = us.create_user("changer", "pw1", "changer@example.org")
    key = us.validate_user("changer", "pw1")[0]
    assert us.change_password(userid, "pw2", "pw1") == pgusers.OK
    assert us.check_key(key)[0] == pgusers.NOT_FOUND
    assert us.validate_user("changer", "pw2")[2] == userid


def test_a_throttled_login_is_a_failed_login(us):
    userid = us.create_user("locked", "pw1", "locked@example.org")
    for _ in range(6):
        assert us.validate_user("locked", "wrong") == ("", False, None)
    assert us.validate_user("locked", "pw1") == ("", False, None)
    assert us.find_user(userid=userid) is not None


def test_all_users_reads_every_page_in_username_order(us, monkeypatch):
    monkeypatch.setattr(_userspace, "_PAGE", 2)
    for name in ["delta", "alpha", "echo", "charlie", "bravo"]:
        us.create_user(name, "pw1", f"{name}@example.org")
    assert [row[1] for row in us.all_users()] == [
        "alpha",
        "bravo",
        "charlie",
        "delta",
        "echo",
    ]


def test_bad_arguments_are_bad_calls(us):
    with pytest.raises(pgusers.BadCallError):
        us.create_user(None, "pw1", "x@example.org")
    with pytest.raises(pgusers.BadCallError):
        us.is_admin(424242)
    with pytest.raises(pgusers.BadCallError):
        list(us.list_sessions(-1))
    assert us.find_user(userid="not a number") is None
    assert us.check_key(None) == (pgusers.NOT_FOUND, None, None, None)
    assert us.check_key("") == (pgusers.NOT_FOUND, None, None, None)
    assert us.modify_user(424242) == pgusers.OK  # nothing to change, as the library answers
    assert us.modify_user(424242, email="x@example.org") == pgusers.NOT_FOUND
