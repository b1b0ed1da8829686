//! The HTTP side of the wire API the benchmark needs: register, log in,
//! post a message. Plain JSON over reqwest, no server crate involved.

use std::sync::Once;
use std::time::Duration;

use futures_util::{stream, StreamExt};
use reqwest::header::HeaderMap;
use reqwest::{Client, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::error::{BenchError, BenchResult, Context};
use crate::progress::Progress;
use crate::target::Target;

/// Every benchmark user's password (SPEC: 8-128 characters).
const PASSWORD: &str = "bench-password-8";
/// How often one registration or login may be told 429 before giving up.
const MAX_RATE_LIMITED: u32 = 30;
/// Longest pause after a 429, whatever `Retry-After` says.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Says once per process why sign-ins are slow.
static RATE_LIMIT_NOTICE: Once = Once::new();

/// A logged-in benchmark user.
#[derive(Clone, Debug)]
pub struct Session {
    /// The user's id.
    pub id: String,
    /// The username (`b<run>_<role><n>`).
    pub username: String,
    /// The JWT for `Authorization: Bearer` or the `jwt_token` cookie.
    pub token: String,
}

/// An HTTP client for one server.
#[derive(Clone, Debug)]
pub struct Api {
    client: Client,
    target: Target,
}

#[derive(Deserialize)]
struct LoginReply {
    token: String,
    user: Identified,
}

/// Anything with an `id` (a user, a room, a message).
#[derive(Deserialize)]
struct Identified {
    id: String,
}

/// A message of a list: its id and content.
#[derive(Deserialize)]
struct Listed {
    id: String,
    #[serde(default)]
    content: String,
}

/// A page of a message list, as the pagers read it.
#[derive(Debug, Default)]
pub struct MessagePage {
    /// The messages' ids, oldest first.
    pub ids: Vec<String>,
    /// Their contents, in the same order.
    pub contents: Vec<String>,
    /// Whether the server linked a newer page (`Link: ...; rel="next"`).
    pub has_next: bool,
    /// Whether the server linked an older page (`Link: ...; rel="prev"`).
    pub has_prev: bool,
}

impl Api {
    /// A client keeping up to `pool` idle connections, ignoring any proxy
    /// settings in the environment (the target is loopback).
    pub fn new(target: &Target, pool: usize) -> BenchResult<Self> {
        let client = Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(pool)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(30))
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            client,
            target: target.clone(),
        })
    }

    /// Whether `GET path` answers 404 (the route does not exist yet).
    pub async fn is_missing(&self, path: &str) -> BenchResult<bool> {
        let response = self
            .client
            .get(self.target.http(path))
            .send()
            .await
            .context(&format!("GET {path}"))?;
        Ok(response.status() == StatusCode::NOT_FOUND)
    }

    /// Registers (tolerating "already taken") and logs in `username`.
    pub async fn sign_in(&self, username: &str) -> BenchResult<Session> {
        let register = json!({
            "username": username,
            "email": format!("{username}@bench.example"),
            "password": PASSWORD,
        });
        let status = self
            .post_patiently("/api/auth/register", &register)
            .await?
            .0;
        if !(status == StatusCode::CREATED || status == StatusCode::CONFLICT) {
            return Err(BenchError::new(format!(
                "registering {username}: HTTP {status}"
            )));
        }
        self.log_in(username, PASSWORD).await
    }

    /// Logs in an existing `username` with `password`.
    pub async fn log_in(&self, username: &str, password: &str) -> BenchResult<Session> {
        let login = json!({ "username": username, "password": password });
        let (status, body) = self.post_patiently("/api/auth/login", &login).await?;
        if status != StatusCode::OK {
            return Err(BenchError::new(format!(
                "logging in {username}: HTTP {status}: {body}"
            )));
        }
        let reply: LoginReply =
            serde_json::from_str(&body).context(&format!("login reply for {username}"))?;
        Ok(Session {
            id: reply.user.id,
            username: username.to_owned(),
            token: reply.token,
        })
    }

    /// POSTs `body`, waiting out 429s (bounded in number and length).
    async fn post_patiently(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> BenchResult<(StatusCode, String)> {
        for _ in 0..MAX_RATE_LIMITED {
            let response = self
                .client
                .post(self.target.http(path))
                .json(body)
                .send()
                .await
                .context(&format!("POST {path}"))?;
            let status = response.status();
            if status != StatusCode::TOO_MANY_REQUESTS {
                let text = response.text().await.context(&format!("POST {path}"))?;
                return Ok((status, text));
            }
            RATE_LIMIT_NOTICE.call_once(|| {
                eprintln!(
                    "note: the server answers 429 to sign-ins; waiting as Retry-After says \
                     (start it with AUTH_RATE_LIMIT=0 for benchmarks)"
                );
            });
            tokio::time::sleep(retry_after(response.headers())).await;
        }
        Err(BenchError::new(format!(
            "POST {path}: still rate limited after {MAX_RATE_LIMITED} tries; \
             run the server with AUTH_RATE_LIMIT=0 for benchmarks"
        )))
    }

    /// `GET path` as the holder of `token`; the status, or the transport
    /// error (the body is read and dropped).
    pub async fn get_status(&self, token: &str, path: &str) -> Result<StatusCode, reqwest::Error> {
        let response = self
            .client
            .get(self.target.http(path))
            .bearer_auth(token)
            .send()
            .await?;
        let status = response.status();
        response.bytes().await?;
        Ok(status)
    }

    /// How many entries the JSON list at `GET path` holds, as the holder of
    /// `token`.
    pub async fn list_len(&self, token: &str, path: &str) -> BenchResult<usize> {
        let (_, text) = self.get_ok(token, path).await?;
        let items: Vec<serde_json::Value> =
            serde_json::from_str(&text).context(&format!("the list of GET {path}"))?;
        Ok(items.len())
    }

    /// `GET path` as the holder of `token`: the headers and body of a 200,
    /// any other status an error naming it.
    async fn get_ok(&self, token: &str, path: &str) -> BenchResult<(HeaderMap, String)> {
        let response = self
            .client
            .get(self.target.http(path))
            .bearer_auth(token)
            .send()
            .await
            .context(&format!("GET {path}"))?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.context(&format!("GET {path}"))?;
        if status != StatusCode::OK {
            return Err(BenchError::new(format!(
                "GET {path}: HTTP {status}: {text}"
            )));
        }
        Ok((headers, text))
    }

    /// POSTs a message as the holder of `token`; the status, or the
    /// transport error.
    pub async fn post_message(
        &self,
        token: &str,
        body: &serde_json::Value,
    ) -> Result<StatusCode, reqwest::Error> {
        let response = self
            .client
            .post(self.target.http("/api/messages"))
            .bearer_auth(token)
            .json(body)
            .send()
            .await?;
        let status = response.status();
        // Reading the body lets the connection go back to the pool.
        response.bytes().await?;
        Ok(status)
    }
}

/// A change to a message the caller sent (`PATCH /api/messages/{id}`,
/// `PUT`/`DELETE /api/messages/{id}/reactions/{emoji}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageChange<'a> {
    /// New content.
    Edit(&'a str),
    /// The caller reacts with this emoji.
    React(&'a str),
    /// The caller takes its reaction with this emoji back.
    Unreact(&'a str),
}

impl Api {
    /// Applies `change` to message `id` as the holder of `token`; the
    /// status, or why no answer came.
    pub async fn change_message(
        &self,
        token: &str,
        id: &str,
        change: MessageChange<'_>,
    ) -> BenchResult<StatusCode> {
        let request = match change {
            MessageChange::Edit(content) => self
                .client
                .patch(self.message_url(id, None)?)
                .json(&json!({ "content": content })),
            MessageChange::React(emoji) => self.client.put(self.message_url(id, Some(emoji))?),
            MessageChange::Unreact(emoji) => self.client.delete(self.message_url(id, Some(emoji))?),
        };
        let response = request
            .bearer_auth(token)
            .send()
            .await
            .context("changing a message")?;
        let status = response.status();
        // Reading the body lets the connection go back to the pool.
        response.bytes().await.context("changing a message")?;
        Ok(status)
    }

    /// `/api/messages/{id}`, or its `/reactions/{emoji}`, each segment
    /// percent-encoded.
    fn message_url(&self, id: &str, emoji: Option<&str>) -> BenchResult<reqwest::Url> {
        let mut url = reqwest::Url::parse(&self.target.base).context("the server's URL")?;
        url.path_segments_mut()
            .map_err(|()| BenchError::new("the server's URL cannot take a path"))?
            .clear()
            .extend(["api", "messages", id])
            .extend(emoji.map(|e| ["reactions", e]).into_iter().flatten());
        Ok(url)
    }
}

impl Api {
    /// Creates a room as the holder of `token` with these member ids; its
    /// id.
    pub async fn create_room(
        &self,
        token: &str,
        name: &str,
        members: &[String],
    ) -> BenchResult<String> {
        let body = json!({ "name": name, "members": members });
        let (status, text) = self.post_json(token, "/api/rooms", &body).await?;
        if status != StatusCode::CREATED {
            return Err(BenchError::new(format!(
                "creating a room: HTTP {status}: {text}"
            )));
        }
        let room: Identified = serde_json::from_str(&text).context("the created room")?;
        Ok(room.id)
    }

    /// POSTs a message as the holder of `token`; the stored message's id.
    pub async fn post_message_id(
        &self,
        token: &str,
        body: &serde_json::Value,
    ) -> BenchResult<String> {
        let (status, text) = self.post_json(token, "/api/messages", body).await?;
        if !status.is_success() {
            return Err(BenchError::new(format!(
                "posting a message: HTTP {status}: {text}"
            )));
        }
        let message: Identified = serde_json::from_str(&text).context("the stored message")?;
        Ok(message.id)
    }

    /// `GET path` (a message list) as the holder of `token`.
    pub async fn message_page(&self, token: &str, path: &str) -> BenchResult<MessagePage> {
        let (headers, text) = self.get_ok(token, path).await?;
        let links: Vec<&str> = headers
            .get_all(reqwest::header::LINK)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let linked = |rel: &str| links.iter().any(|v| v.contains(&format!("rel=\"{rel}\"")));
        let (has_next, has_prev) = (linked("next"), linked("prev"));
        let items: Vec<Listed> =
            serde_json::from_str(&text).context(&format!("the page of GET {path}"))?;
        let (ids, contents) = items.into_iter().map(|m| (m.id, m.content)).unzip();
        Ok(MessagePage {
            ids,
            contents,
            has_next,
            has_prev,
        })
    }

    async fn post_json(
        &self,
        token: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> BenchResult<(StatusCode, String)> {
        let response = self
            .client
            .post(self.target.http(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .context(&format!("POST {path}"))?;
        let status = response.status();
        let text = response.text().await.context(&format!("POST {path}"))?;
        Ok((status, text))
    }
}

/// How long a 429 asks us to wait: `Retry-After` seconds within
/// [1 s, MAX_BACKOFF], 1 s when absent or unreadable.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Duration {
    let secs = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(1);
    Duration::from_secs(secs.max(1)).min(MAX_BACKOFF)
}

/// Registers and logs in the users named by `names`, `concurrency` at a
/// time, in order.
pub async fn sign_in_all(
    api: &Api,
    names: Vec<String>,
    concurrency: usize,
    progress: &Progress,
) -> BenchResult<Vec<Session>> {
    let bar = progress.bar("users", names.len() as u64);
    let results: Vec<BenchResult<Session>> = stream::iter(names)
        .map(|name| {
            let bar = bar.clone();
            async move {
                let session = api.sign_in(&name).await;
                bar.inc(1);
                session
            }
        })
        .buffered(concurrency.max(1))
        .collect()
        .await;
    bar.finish_and_clear();
    results.into_iter().collect()
}

/// `b<run>_<role><n>` for n in 0..count (at most 32 characters for any
/// run id of up to 12 characters).
pub fn usernames(run: &str, role: &str, count: usize) -> Vec<String> {
    (0..count).map(|n| format!("b{run}_{role}{n}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    #[test]
    fn retry_after_is_bounded() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), Duration::from_secs(1));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&headers), Duration::from_secs(3));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("3600"));
        assert_eq!(retry_after(&headers), MAX_BACKOFF);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("0"));
        assert_eq!(retry_after(&headers), Duration::from_secs(1));
    }

    #[test]
    fn message_urls_encode_ids_and_emoji() {
        let target = Target::parse("http://127.0.0.1:18080").expect("loopback");
        let api = Api::new(&target, 1).expect("client");
        assert_eq!(
            api.message_url("m/1", None).expect("url").as_str(),
            "http://127.0.0.1:18080/api/messages/m%2F1"
        );
        assert_eq!(
            api.message_url("42", Some("👍")).expect("url").as_str(),
            "http://127.0.0.1:18080/api/messages/42/reactions/%F0%9F%91%8D"
        );
    }

    #[test]
    fn usernames_are_valid_and_unique() {
        let names = usernames("abcdef123456", "r", 100_000);
        assert_eq!(names.first().map(String::as_str), Some("babcdef123456_r0"));
        for name in [names.first(), names.last()].into_iter().flatten() {
            assert!((3..=32).contains(&name.len()), "{name}");
            assert!(name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)));
        }
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
    }
}
