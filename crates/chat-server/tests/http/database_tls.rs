//! The server on a PostgreSQL server that accepts TLS clients only,
//! configured by the `DB_*` parts with `DB_SSLMODE` and `DB_SSLROOTCERT`,
//! as an operator would: the API works over the encrypted connection, and
//! a certificate that does not match stops the start with a clear error.

use chat_test_support::pg_server::PgServer;
use chat_test_support::tls::TestCa;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::TestApp;

/// A TLS-only server with a certificate for `localhost`, and the CA file.
async fn tls_database() -> (PgServer, String) {
    let ca = TestCa::new();
    let pg = PgServer::start_tls(&ca.server_certificate(&["localhost"])).await;
    let ca_file = pg.data_dir().with_file_name("ca.pem");
    std::fs::write(&ca_file, ca.pem()).expect("CA file written");
    (pg, ca_file.display().to_string())
}

#[tokio::test]
async fn the_api_works_over_a_verified_tls_connection_configured_by_parts() {
    let (pg, ca_file) = tls_database().await;
    let port = pg.port().to_string();
    let app = TestApp::spawn_on_postgres_configured_by(&[
        ("DB_HOST", "localhost"),
        ("DB_PORT", &port),
        ("DB_NAME", "postgres"),
        ("DB_USER", "postgres"),
        ("DB_SSLMODE", "verify-full"),
        ("DB_SSLROOTCERT", &ca_file),
    ])
    .await;
    let health: Value = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .expect("health answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(health["database"], "connected", "{health}");

    let alice = app.user("alice").await;
    let sent = app.send_ok(&alice, json!({"content": "over TLS"})).await;
    let history: Vec<Value> = app
        .get("/api/messages", &alice.token)
        .send()
        .await
        .expect("history answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0]["id"], sent["id"]);
    assert_eq!(history[0]["content"], "over TLS");
    let refused = app
        .client
        .get(app.url("/api/messages"))
        .send()
        .await
        .expect("answers");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_certificate_for_another_name_stops_the_start_saying_so() {
    let (pg, ca_file) = tls_database().await;
    let port = pg.port().to_string();
    let message = TestApp::start_error(&[
        ("DB_HOST", "127.0.0.1"),
        ("DB_PORT", &port),
        ("DB_SSLMODE", "verify-full"),
        ("DB_SSLROOTCERT", &ca_file),
    ])
    .await;
    assert!(
        message.contains(&format!("127.0.0.1:{port}/chatapi")),
        "{message}"
    );
    assert!(message.contains("not valid for name"), "{message}");
}
