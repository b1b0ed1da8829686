//! TLS to PostgreSQL: each `sslmode` against a private server that speaks
//! TLS with a certificate from a throwaway CA and refuses plain-text TCP
//! clients, so getting in at all proves the connection is encrypted.

use chat_domain::{StoreHealth, UserStore};
use chat_store_postgres::{PgStore, StartupError};
use chat_test_support::pg_server::PgServer;
use chat_test_support::tls::TestCa;
use chat_test_support::{seed_user, username};
use diesel::sql_types::Bool;
use diesel_async::RunQueryDsl;

/// A TLS-only server whose certificate names `localhost` (not 127.0.0.1),
/// the CA file that signed it, and another CA's file that did not.
struct TlsServer {
    pg: PgServer,
    ca_file: String,
    stranger_ca_file: String,
}

impl TlsServer {
    async fn start() -> Self {
        let ca = TestCa::new();
        let pg = PgServer::start_tls(&ca.server_certificate(&["localhost"])).await;
        let dir = pg.data_dir().with_file_name("client");
        std::fs::create_dir_all(&dir).expect("client directory");
        let write = |name: &str, pem: &str| {
            let path = dir.join(name);
            std::fs::write(&path, pem).expect("CA file written");
            path.display().to_string()
        };
        let ca_file = write("ca.pem", ca.pem());
        let stranger_ca_file = write("stranger-ca.pem", TestCa::new().pem());
        Self {
            pg,
            ca_file,
            stranger_ca_file,
        }
    }

    /// The server's `postgres` database reached by `host`, with `options`.
    fn url(&self, host: &str, options: &str) -> String {
        let port = self.pg.port();
        format!("postgres://postgres@{host}:{port}/postgres{options}")
    }
}

/// Whether the store's pooled connections are encrypted, as the server
/// sees them.
async fn encrypted(store: &PgStore) -> bool {
    let mut conn = store.pool().get().await.expect("a pooled connection");
    diesel::select(diesel::dsl::sql::<Bool>(
        "(SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())",
    ))
    .get_result(&mut conn)
    .await
    .expect("pg_stat_ssl answers")
}

async fn refusal(url: &str) -> String {
    match PgStore::connect(url, 1).await {
        Ok(_) => panic!("{url}: connected, expected a refusal"),
        Err(err) => {
            assert!(
                matches!(err, StartupError::Unreachable { .. }),
                "{url}: {err:?}"
            );
            err.to_string()
        }
    }
}

#[tokio::test]
async fn require_and_the_default_encrypt_and_the_store_works_over_tls() {
    let server = TlsServer::start().await;
    let store = PgStore::connect(&server.url("127.0.0.1", "?sslmode=require"), 2)
        .await
        .expect("require connects without checking the certificate");
    assert!(encrypted(&store).await);
    store.check().await.expect("healthy");
    let alice = seed_user(&store, "alice").await;
    let found = store.user_by_username(&username("alice")).await;
    assert_eq!(found.expect("read back").map(|a| a.id), Some(alice.id));

    // No sslmode means prefer, as in libpq: TLS when the server offers it.
    let store = PgStore::connect(&server.url("127.0.0.1", ""), 1)
        .await
        .expect("prefer connects over TLS");
    assert!(encrypted(&store).await);

    // The server does refuse plain text, so the above was TLS.
    let message = refusal(&server.url("127.0.0.1", "?sslmode=disable")).await;
    assert!(message.contains("no encryption"), "{message}");
}

#[tokio::test]
async fn verify_full_checks_the_chain_and_the_host_name_and_verify_ca_the_chain() {
    let server = TlsServer::start().await;
    let trusted = format!("?sslmode=verify-full&sslrootcert={}", server.ca_file);
    let store = PgStore::connect(&server.url("localhost", &trusted), 1)
        .await
        .expect("the certificate names localhost and our CA signed it");
    assert!(encrypted(&store).await);

    // Reached as 127.0.0.1, a name the certificate does not hold.
    let message = refusal(&server.url("127.0.0.1", &trusted)).await;
    assert!(message.contains("not valid for name"), "{message}");
    // verify-ca checks only the chain: any name will do.
    let chain_only = format!("?sslmode=verify-ca&sslrootcert={}", server.ca_file);
    let store = PgStore::connect(&server.url("127.0.0.1", &chain_only), 1)
        .await
        .expect("verify-ca ignores the name");
    assert!(encrypted(&store).await);
    // So does require once a root is named (libpq's rule).
    let require = format!("?sslmode=require&sslrootcert={}", server.ca_file);
    PgStore::connect(&server.url("127.0.0.1", &require), 1)
        .await
        .expect("require with a root checks the chain");

    // A certificate from a CA we do not trust is refused by every checking
    // mode, and by require with that root.
    for mode in ["verify-full", "verify-ca", "require"] {
        let options = format!("?sslmode={mode}&sslrootcert={}", server.stranger_ca_file);
        let message = refusal(&server.url("localhost", &options)).await;
        assert!(message.contains("UnknownIssuer"), "{mode}: {message}");
    }
    // Without sslrootcert the system's roots are used: they do not hold
    // our throwaway CA either.
    let message = refusal(&server.url("localhost", "?sslmode=verify-full")).await;
    assert!(message.contains("UnknownIssuer"), "{message}");
}

#[tokio::test]
async fn an_unreadable_root_file_fails_at_start_naming_it() {
    let err = PgStore::connect(
        "postgres://postgres@127.0.0.1:1/chat?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        1,
    )
    .await
    .expect_err("no such file");
    assert!(matches!(err, StartupError::Tls(_)), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}
