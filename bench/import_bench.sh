#!/usr/bin/env bash
# pgusers import at scale: seeds the Python library's tables (public.users, public.sessions) with
# IMPORT_USERS users and IMPORT_SESSIONS live sessions, as pgusers 0.9.4 writes them (hex PBKDF2
# hashes, 32-hex keys, real expirations, pickled extra_data), then times `pgusers import`
# (release build) into the daemon's schema. See bench/README.md.
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${IMPORT_USERS:=1000000}"
: "${IMPORT_SESSIONS:=1000000}"

bench_begin --no-wrk

library() { psql "$BENCH_DB_URL" -v ON_ERROR_STOP=1 -Atq "$@"; }

log "seeding the library's tables: $IMPORT_USERS users, $IMPORT_SESSIONS sessions"
library <<SQL
create table if not exists users (
    userid serial primary key, username varchar(20), email varchar(128), salt varchar(32),
    kpasswd varchar(128), admin boolean not null default 'no', extra_data bytea);
create table if not exists sessions (
    userid integer, key varchar(32), expiration real, extra_data bytea);
truncate users, sessions;
-- pickle.dumps({"phone": "123", "n": [1, 2.5, None, True], "t": (1, "a"), "d": {"x": {}}})
insert into users (username, email, salt, kpasswd, admin, extra_data)
select 'u' || i, 'u' || i || '@example.com', md5(i::text),
       md5(i::text) || md5((i + 1)::text) || md5((i + 2)::text) || md5((i + 3)::text), i % 100 = 0,
       decode('gASVQQAAAAAAAAB9lCiMBXBob25llIwDMTIzlIwBbpRdlChLAUdABAAAAAAAAE6IZYwBdJRLAYwBYZSGlIwBZJR9lIwBeJR9lHN1Lg==', 'base64')
from generate_series(1, $IMPORT_USERS) i;
-- pickle.dumps(None), the library's default
insert into sessions
select 1 + (i % $IMPORT_USERS), md5('s' || i), extract(epoch from now()) + 864000, '\x80044e2e'
from generate_series(1, $IMPORT_SESSIONS) i;
vacuum analyze users, sessions;
SQL

export PGUSERS_CONNECTION_STRING="$BENCH_DB_URL"
"$REPO_DIR/target/release/pgusers" migrate >/dev/null
log "pgusers import"
started=$(date +%s.%N)
"$REPO_DIR/target/release/pgusers" import | tail -1
ended=$(date +%s.%N)
secs=$(echo "$ended - $started" | bc)
imported=$(sql -c "select (select count(*) from users) || ' users, ' || (select count(*) from sessions) || ' sessions'")
log "imported $imported in ${secs} s"
echo "{\"scenario\": \"import\", \"users\": $IMPORT_USERS, \"sessions\": $IMPORT_SESSIONS, \"seconds\": $secs}"
