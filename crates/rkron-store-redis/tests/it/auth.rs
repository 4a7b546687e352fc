//! Passwords and ACL users.

use rkron_store::{Store, StoreError};
use rkron_store_redis::RedisStore;

use crate::server::RedisServer;

const PASSWORD: &str = "s3cret-pass";

#[tokio::test]
async fn a_password_protected_server_needs_the_password() {
    let server = RedisServer::start_with(&[
        "--requirepass",
        PASSWORD,
        // An ACL user besides the default one.
        "--user",
        "rkron",
        "on",
        ">user-pass",
        "~*",
        "&*",
        "+@all",
    ])
    .await;

    let without = RedisStore::connect(server.config("auth")).await;
    match without {
        Err(StoreError::Backend(reason)) => {
            assert!(reason.contains("NOAUTH"), "{reason}");
        }
        other => panic!("connecting without the password: {other:?}"),
    }

    let mut wrong = server.config("auth");
    wrong.password = Some("wrong".to_owned());
    let answer = RedisStore::connect(wrong).await;
    assert!(
        matches!(answer, Err(StoreError::Backend(_))),
        "a wrong password: {answer:?}"
    );

    let mut right = server.config("auth");
    right.password = Some(PASSWORD.to_owned());
    let shown = format!("{right:?}");
    assert!(
        !shown.contains(PASSWORD),
        "Debug shows the password: {shown}"
    );
    let store = RedisStore::connect(right)
        .await
        .expect("the right password");
    assert!(!format!("{store:?}").contains(PASSWORD));
    store.put_meta("k", "v").await.unwrap();
    assert_eq!(store.get_meta("k").await.unwrap().as_deref(), Some("v"));

    let mut user = server.config("auth");
    user.username = Some("rkron".to_owned());
    user.password = Some("user-pass".to_owned());
    let store = RedisStore::connect(user).await.expect("an ACL user");
    assert_eq!(store.get_meta("k").await.unwrap().as_deref(), Some("v"));

    let mut url = server.config("auth");
    url.addresses = vec![format!("redis://rkron:user-pass@{}/0", server.address())];
    let shown = format!("{url:?}");
    assert!(
        !shown.contains("user-pass"),
        "Debug shows the password: {shown}"
    );
    let store = RedisStore::connect(url)
        .await
        .expect("credentials in the URL");
    assert_eq!(store.get_meta("k").await.unwrap().as_deref(), Some("v"));
}
