//! Which address a request comes from, for rate limiting. Behind a proxy
//! every request comes from the proxy; only a proxy we trust may tell us,
//! in `X-Forwarded-For`, who the client is.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use actix_web::HttpRequest;

/// The peer's address, or, when the peer is a trusted proxy, the right-most
/// address in `X-Forwarded-For` that is not itself a trusted proxy. (The
/// left part of that header is whatever the client wrote: never trusted.)
pub fn client_addr(req: &HttpRequest, trusted_proxies: &[IpAddr]) -> IpAddr {
    let peer = req
        .peer_addr()
        .map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |a| a.ip().to_canonical());
    if !trusted_proxies.contains(&peer) {
        return peer;
    }
    let mut hops: Vec<&str> = Vec::new();
    for value in req.headers().get_all("x-forwarded-for") {
        match value.to_str() {
            Ok(text) => hops.extend(text.split(',').map(str::trim)),
            Err(_) => return peer,
        }
    }
    forwarded_client(peer, &hops, trusted_proxies)
}

/// Walks the forwarding chain from the nearest hop outwards and stops at the
/// first address that is not a trusted proxy. An unreadable hop ends the
/// walk at the last address known good.
fn forwarded_client(peer: IpAddr, hops: &[&str], trusted: &[IpAddr]) -> IpAddr {
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(addr) = parse_hop(hop) else {
            break;
        };
        client = addr;
        if !trusted.contains(&addr) {
            break;
        }
    }
    client
}

/// A hop is an IP address, possibly with a port (`1.2.3.4:5678`,
/// `[::1]:5678`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn request(peer: &str, xff: Option<&str>) -> HttpRequest {
        let mut req = TestRequest::default().peer_addr(SocketAddr::new(ip(peer), 40000));
        if let Some(xff) = xff {
            req = req.insert_header(("X-Forwarded-For", xff));
        }
        req.to_http_request()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let req = request("203.0.113.9", Some("198.51.100.1"));
        assert_eq!(client_addr(&req, &[ip("10.0.0.1")]), ip("203.0.113.9"));
    }

    #[test]
    fn a_trusted_proxy_names_the_client() {
        let req = request("10.0.0.1", Some("6.6.6.6, 198.51.100.1"));
        assert_eq!(client_addr(&req, &[ip("10.0.0.1")]), ip("198.51.100.1"));
    }

    #[test]
    fn chained_trusted_proxies_are_skipped() {
        let req = request("10.0.0.1", Some("198.51.100.1, 10.0.0.2"));
        let trusted = [ip("10.0.0.1"), ip("10.0.0.2")];
        assert_eq!(client_addr(&req, &trusted), ip("198.51.100.1"));
    }

    #[test]
    fn garbage_stops_at_the_last_good_hop() {
        let req = request("10.0.0.1", Some("198.51.100.1, not-an-ip"));
        assert_eq!(client_addr(&req, &[ip("10.0.0.1")]), ip("10.0.0.1"));
    }

    #[test]
    fn hops_may_carry_ports() {
        assert_eq!(parse_hop("198.51.100.1:1234"), Some(ip("198.51.100.1")));
        assert_eq!(parse_hop("[2001:db8::1]:80"), Some(ip("2001:db8::1")));
        assert_eq!(parse_hop("::ffff:192.0.2.1"), Some(ip("192.0.2.1")));
    }

    #[test]
    fn a_trusted_proxy_without_header_is_the_client() {
        let req = request("10.0.0.1", None);
        assert_eq!(client_addr(&req, &[ip("10.0.0.1")]), ip("10.0.0.1"));
    }
}
