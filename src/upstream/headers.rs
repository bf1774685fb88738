//! Which headers cross the proxy.
//!
//! Hop-by-hop headers (RFC 9110 §7.6.1, plus any named in `Connection`) belong to one connection
//! and are dropped in both directions; everything else is end-to-end and kept.

use http::{HeaderMap, HeaderName, header};

/// Headers that never cross a proxy.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Removes hop-by-hop headers, including those the `Connection` header names.
/// `Upgrade` is dropped too: the shim does not tunnel protocol upgrades.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

/// Copies the caller's end-to-end headers onto a call the shim makes for a translated request,
/// so routing headers (`x-sora-release-channel`, `Authorization`, ...) reach the upstream.
/// Headers that describe the caller's own body or connection are left out.
pub fn copy_for_translated_call(caller: &HeaderMap, outgoing: &mut HeaderMap) {
    let mut copied = caller.clone();
    strip_hop_by_hop(&mut copied);
    for name in [
        header::HOST,
        header::CONTENT_LENGTH,
        header::CONTENT_TYPE,
        header::CONTENT_ENCODING,
        header::ACCEPT_ENCODING,
        header::EXPECT,
        HeaderName::from_static(super::TARGET_HEADER),
    ] {
        copied.remove(name);
    }
    outgoing.extend(copied);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut headers = HeaderMap::new();
        headers.insert("connection", "keep-alive, x-private".parse().unwrap());
        headers.insert("x-private", "1".parse().unwrap());
        headers.insert("transfer-encoding", "chunked".parse().unwrap());
        headers.insert("authorization", "Bearer t".parse().unwrap());
        headers.insert("x-sora-release-channel", "canary".parse().unwrap());
        strip_hop_by_hop(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["authorization", "x-sora-release-channel"]);
    }

    #[test]
    fn translated_calls_keep_routing_headers_but_not_body_headers() {
        let mut caller = HeaderMap::new();
        for (name, value) in [
            ("x-sora-target", "Sora_20161101.StartRecording"),
            ("content-type", "application/x-www-form-urlencoded"),
            ("content-length", "41"),
            ("host", "shim:3000"),
            ("x-sora-release-channel", "canary"),
            ("authorization", "Bearer t"),
        ] {
            caller.insert(HeaderName::from_static(name), value.parse().unwrap());
        }
        let mut outgoing = HeaderMap::new();
        copy_for_translated_call(&caller, &mut outgoing);
        let mut names: Vec<&str> = outgoing.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["authorization", "x-sora-release-channel"]);
    }
}
