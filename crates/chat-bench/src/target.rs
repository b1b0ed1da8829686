//! The server under test: a base URL that must point at this machine.
//!
//! A load generator aimed at someone else's host is an attack, so only
//! loopback targets are accepted: 127.0.0.0/8, `localhost` and `::1`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use reqwest::Url;

use crate::error::{BenchError, BenchResult};

/// Where the server listens, checked to be loopback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `http://host:port`, no trailing slash.
    pub base: String,
    /// The address sockets connect to.
    pub addr: SocketAddr,
}

impl Target {
    /// Parses `--url`, refusing anything but plain HTTP on a loopback host.
    pub fn parse(raw: &str) -> BenchResult<Self> {
        let url = Url::parse(raw).map_err(|e| BenchError::new(format!("--url {raw:?}: {e}")))?;
        if url.scheme() != "http" {
            return Err(BenchError::new(format!(
                "--url {raw:?}: only http:// is supported (loopback, no TLS)"
            )));
        }
        let ip = loopback_ip(&url).ok_or_else(|| {
            BenchError::new(format!(
                "--url {raw:?}: refusing a non-loopback host; use 127.0.0.0/8, localhost or [::1]"
            ))
        })?;
        let port = url.port_or_known_default().unwrap_or(80);
        let addr = SocketAddr::new(ip, port);
        Ok(Self {
            base: format!("http://{addr}"),
            addr,
        })
    }

    /// An HTTP URL on the server, `path` starting with `/`.
    pub fn http(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The WebSocket endpoint.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/api/ws/connect", self.addr)
    }
}

/// The loopback address a URL's host names, or `None` when it is not one.
/// `localhost` maps to 127.0.0.1 without asking a resolver, which could be
/// told otherwise.
fn loopback_ip(url: &Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    if host.eq_ignore_ascii_case("localhost") {
        return Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = bare.parse().ok()?;
    ip.is_loopback().then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_accepted() {
        for (raw, base) in [
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://127.3.2.1:9/", "http://127.3.2.1:9"),
            ("http://localhost:18080", "http://127.0.0.1:18080"),
            ("http://LOCALHOST", "http://127.0.0.1:80"),
            ("http://[::1]:8080/ignored/path", "http://[::1]:8080"),
        ] {
            let target = Target::parse(raw).expect(raw);
            assert_eq!(target.base, base, "{raw}");
        }
    }

    #[test]
    fn other_hosts_and_schemes_are_refused() {
        for raw in [
            "http://10.0.0.1:8080",
            "http://0.0.0.0:8080",
            "http://128.0.0.1",
            "http://example.com",
            "http://localhost.example.com",
            "http://[::2]:8080",
            "http://[::ffff:127.0.0.1]:8080",
            "https://127.0.0.1:8443",
            "ws://127.0.0.1:8080",
            "not a url",
        ] {
            assert!(Target::parse(raw).is_err(), "{raw} should be refused");
        }
    }

    #[test]
    fn urls_are_built_from_the_checked_address() {
        let target = Target::parse("http://localhost:18080").expect("loopback");
        assert_eq!(target.ws_url(), "ws://127.0.0.1:18080/api/ws/connect");
        assert_eq!(
            target.http("/api/messages"),
            "http://127.0.0.1:18080/api/messages"
        );
    }
}
