//! TLS to PostgreSQL through rustls against a real server started with a test certificate:
//! `verify-full` checks chain and name, `verify-ca` the chain only, `require` encrypts without
//! checking; a wrong CA is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use support::openssl;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use pgusers::config::Settings;
use pgusers::store::embedded::{self, EmbeddedPostgres};
use pgusers::store::tls::SslPolicy;

/// A CA, a server certificate it signed for the name `db.internal` only, and an unrelated CA.
fn certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=pgusers test CA",
            ],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=db.internal",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:db.internal\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "other.key",
                "-out",
                "other.pem",
                "-days",
                "2",
                "-subj",
                "/CN=another CA",
            ],
        ]
        .concat(),
    );
}

fn settings(port: u16, host: &str, mode: SslPolicy, ca: &Path) -> Settings {
    let mut s = Settings::default();
    s.database.host = Some(host.into());
    s.database.port = Some(port);
    s.database.user = Some(embedded::ROLE.into());
    s.database.dbname = Some("postgres".into());
    s.database.sslmode = Some(mode);
    s.database.sslrootcert = Some(ca.to_path_buf());
    s.database.pool_size = 2;
    s
}

/// Whether a connection of the pool is encrypted, as the server sees it.
async fn encrypted(pool: &deadpool_postgres::Pool) -> bool {
    let client = pool.get().await.unwrap();
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn connections_are_encrypted_and_verified_as_configured() {
    if Command::new("openssl").arg("version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "openssl is missing (apt install openssl)"
        );
        eprintln!("SKIP: openssl is not installed");
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    std::fs::set_permissions(certs.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    certificates(certs.path());
    let key = certs.path().join("server.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    if nix::unistd::geteuid().is_root() {
        if let Ok(Some(pg)) = nix::unistd::User::from_name("postgres") {
            nix::unistd::chown(&key, Some(pg.uid), Some(pg.gid)).unwrap();
        }
    }
    let port = support::free_port();
    let dir = tempfile::Builder::new()
        .prefix("pgusers-tls-")
        .tempdir()
        .unwrap();
    let options = embedded::Options {
        tcp_port: Some(port),
        settings: vec![
            "ssl=on".into(),
            format!(
                "ssl_cert_file={}",
                certs.path().join("server.pem").display()
            ),
            format!("ssl_key_file={}", key.display()),
        ],
        ..Default::default()
    };
    let path = dir.path().to_path_buf();
    let _pg = tokio::task::spawn_blocking(move || EmbeddedPostgres::start(&path, options).unwrap())
        .await
        .unwrap();
    let (ca, other) = (certs.path().join("ca.pem"), certs.path().join("other.pem"));

    // verify-ca: the chain is checked, the name is not (the certificate is for db.internal).
    let pool = pgusers::daemon::startup::connect_and_migrate(&settings(
        port,
        "127.0.0.1",
        SslPolicy::VerifyCa,
        &ca,
    ))
    .await
    .expect("verify-ca accepts a certificate of the right CA");
    assert!(encrypted(&pool).await, "the connection is encrypted");

    // verify-full: the name must match too.
    let err = pgusers::daemon::startup::connect_and_migrate(&settings(
        port,
        "localhost",
        SslPolicy::VerifyFull,
        &ca,
    ))
    .await
    .map(|_| ())
    .expect_err("verify-full refuses a certificate for another name");
    assert!(
        pgusers::telemetry::cause_chain(&err)
            .to_lowercase()
            .contains("certificate"),
        "{err}"
    );

    // A wrong CA is refused by both verifying modes.
    for mode in [SslPolicy::VerifyCa, SslPolicy::VerifyFull] {
        let r = pgusers::daemon::startup::connect_and_migrate(&settings(
            port,
            "127.0.0.1",
            mode,
            &other,
        ))
        .await;
        assert!(r.is_err(), "{mode:?} with the wrong CA must fail");
    }

    // require: encrypted, certificate not checked.
    let pool = pgusers::daemon::startup::connect_and_migrate(&settings(
        port,
        "127.0.0.1",
        SslPolicy::Require,
        &other,
    ))
    .await
    .expect("require does not check the certificate");
    assert!(encrypted(&pool).await);
}
