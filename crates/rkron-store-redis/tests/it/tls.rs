//! TLS (rustls) against a server that speaks only TLS, with a test certificate authority.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use rkron_store::Store;
use rkron_store_redis::{RedisConfig, RedisStore};

use crate::server::RedisServer;

/// Writes a CA and a server certificate for 127.0.0.1 into `dir`: `ca.pem`, `server.pem`,
/// `server.key`.
fn write_pki(dir: &std::path::Path) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "rkron redis test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().unwrap();
    let mut server_params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    server_params
        .distinguished_name
        .push(DnType::CommonName, "rkron redis test server");
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();

    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), server_cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
}

#[tokio::test]
async fn tls_with_a_private_ca_works_and_plain_text_does_not() {
    let pki = tempfile::tempdir().unwrap();
    write_pki(pki.path());
    let file = |name: &str| pki.path().join(name).to_string_lossy().into_owned();
    let (cert, key, ca) = (file("server.pem"), file("server.key"), file("ca.pem"));
    let server = RedisServer::start_tls(&[
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca,
        "--tls-auth-clients",
        "no",
    ])
    .await;

    let config = RedisConfig {
        tls: true,
        tls_ca_file: Some(pki.path().join("ca.pem")),
        timeout: std::time::Duration::from_secs(3),
        ..server.config("tls")
    };
    let store = RedisStore::connect(config.clone())
        .await
        .unwrap_or_else(|error| panic!("TLS connect: {error}\n{}", server.log()));
    store.put_meta("k", "over tls").await.unwrap();
    assert_eq!(
        store.get_meta("k").await.unwrap().as_deref(),
        Some("over tls")
    );

    // The system roots do not know the test CA.
    let untrusted = RedisConfig {
        tls_ca_file: None,
        ..config.clone()
    };
    assert!(RedisStore::connect(untrusted).await.is_err());
    // Plain text to a TLS port never gets an answer.
    let plain = RedisConfig {
        tls: false,
        tls_ca_file: None,
        ..config
    };
    assert!(RedisStore::connect(plain).await.is_err());
}
