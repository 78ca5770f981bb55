//! The daemon's own HTTPS listener: it serves with the configured certificate, and a reload picks
//! up a new certificate (a broken new pair is refused and the old one kept).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::path::Path;
use std::process::Command;

use support::{openssl, TestApp};

/// A CA named `name` and a certificate it signed for localhost and 127.0.0.1.
fn issue(dir: &Path, name: &str) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let (ca_key, ca_pem) = (format!("{name}-ca.key"), format!("{name}-ca.pem"));
    let subject = format!("/CN={name} CA");
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout", &ca_key, "-out", &ca_pem, "-days", "2", "-subj", &subject,
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
                &format!("{name}.key"),
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat(),
    );
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
}

/// `curl --cacert CA https://ADDR/healthz`: whether it answered 200.
fn healthy_with(addr: &str, ca: &Path) -> bool {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
            "--cacert",
        ])
        .arg(ca)
        .arg(format!("https://{addr}/healthz"))
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout) == "200"
}

#[actix_web::test]
async fn https_serves_the_configured_certificate_and_reloads_it() {
    for tool in ["openssl", "curl"] {
        if Command::new(tool).arg("--version").output().is_err()
            && Command::new(tool).arg("version").output().is_err()
        {
            assert!(std::env::var_os("CI").is_none(), "{tool} is missing");
            eprintln!("SKIP: {tool} is not installed");
            return;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    issue(dir.path(), "first");
    issue(dir.path(), "second");
    let (cert, key) = (dir.path().join("tls.pem"), dir.path().join("tls.key"));
    std::fs::copy(dir.path().join("first.pem"), &cert).unwrap();
    std::fs::copy(dir.path().join("first.key"), &key).unwrap();
    let (c, k) = (cert.clone(), key.clone());
    let app = TestApp::start_with(move |s| {
        s.server.tls_listen = vec!["127.0.0.1:0".into()];
        s.server.tls_cert_file = Some(c);
        s.server.tls_key_file = Some(k);
    })
    .await;
    let addr = app.daemon.tls_addresses[0].clone();
    let (first_ca, second_ca) = (
        dir.path().join("first-ca.pem"),
        dir.path().join("second-ca.pem"),
    );
    let a = addr.clone();
    let (f, s2) = (first_ca.clone(), second_ca.clone());
    let (ok_first, ok_second) =
        tokio::task::spawn_blocking(move || (healthy_with(&a, &f), healthy_with(&a, &s2)))
            .await
            .unwrap();
    assert!(ok_first && !ok_second, "served with the first certificate");

    // A broken pair is refused; the old certificate keeps serving.
    std::fs::write(&cert, "not a certificate").unwrap();
    assert!(app.daemon.reload_tls().is_err());
    let (a, f) = (addr.clone(), first_ca.clone());
    assert!(tokio::task::spawn_blocking(move || healthy_with(&a, &f))
        .await
        .unwrap());

    // A new pair is picked up without a restart.
    std::fs::copy(dir.path().join("second.pem"), &cert).unwrap();
    std::fs::copy(dir.path().join("second.key"), &key).unwrap();
    assert!(matches!(app.daemon.reload_tls(), Ok(true)));
    let (a, f, s2) = (addr.clone(), first_ca, second_ca);
    let (ok_first, ok_second) =
        tokio::task::spawn_blocking(move || (healthy_with(&a, &f), healthy_with(&a, &s2)))
            .await
            .unwrap();
    assert!(
        !ok_first && ok_second,
        "served with the second certificate after the reload"
    );
    assert_eq!(
        app.get("/healthz", None).await.status,
        reqwest::StatusCode::OK,
        "plain HTTP still served"
    );
}
