//! Embedded mode's files: the API token is trusted only when nothing but the daemon's own
//! account could have written or can read it, and as root PostgreSQL runs as its dedicated
//! account.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use pgusers::store::embedded::api_token;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().mode() & 0o777
}

#[test]
fn a_missing_token_is_created_private_and_then_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let (path, token) = api_token(dir.path()).unwrap();
    assert_eq!(token.len(), 64);
    assert_eq!(mode(&path), 0o600);
    assert_eq!(
        std::fs::metadata(&path).unwrap().uid(),
        nix::unistd::geteuid().as_raw()
    );
    assert_eq!(
        api_token(dir.path()).unwrap().1,
        token,
        "the same token next time"
    );

    std::fs::write(&path, "short").unwrap();
    let (_, replaced) = api_token(dir.path()).unwrap();
    assert_eq!(replaced.len(), 64, "a token too short is replaced");
}

#[test]
fn a_token_file_others_can_read_or_that_is_a_link_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("api-token");
    std::fs::write(&path, "planted-token-0123456789").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = api_token(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("mode 644") && err.contains("chmod 600"),
        "{err}"
    );
    assert!(
        !err.contains("planted-token"),
        "the token is never shown: {err}"
    );

    std::fs::remove_file(&path).unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::write(&elsewhere, "another-file-0123456789").unwrap();
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
    let err = api_token(dir.path()).unwrap_err().to_string();
    assert!(err.contains("symbolic link"), "{err}");

    std::fs::remove_file(&path).unwrap();
    std::fs::hard_link(&elsewhere, &path).unwrap();
    let err = api_token(dir.path()).unwrap_err().to_string();
    assert!(err.contains("hard links"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&elsewhere).unwrap(),
        "another-file-0123456789",
        "nothing is written through a link"
    );
}

#[tokio::test]
async fn as_root_postgres_runs_as_its_own_account_and_cannot_plant_the_api_token() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("not root: PostgreSQL runs as this user and there is no other account to test");
        return;
    }
    let (dir, _pg) = support::private_cluster("pgusers-embedded-").await;
    let postgres = nix::unistd::User::from_name("postgres").unwrap().unwrap();
    let owner = std::fs::metadata(dir.path()).unwrap().uid();
    assert_eq!(
        owner,
        postgres.uid.as_raw(),
        "the cluster's directory is postgres's"
    );

    let (path, token) = api_token(dir.path()).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().uid(), 0);
    assert_eq!(mode(&path), 0o600);

    // The PostgreSQL account owns the directory, so it can replace the file with its own.
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, "planted-admin-token-0123").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&path, Some(postgres.uid.as_raw()), None).unwrap();
    let err = api_token(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains(&format!("owned by uid {}", postgres.uid)),
        "{err}"
    );
    assert!(
        !err.contains(&token) && !err.contains("planted-admin"),
        "{err}"
    );
}
