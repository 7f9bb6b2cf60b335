// SPDX-License-Identifier: Apache-2.0
//! Who may use the dashboard.
//!
//! With a token, every request carries it: `Authorization: Bearer TOKEN`, the cookie set after a
//! `?token=TOKEN` query, or that query itself (a page opened so is redirected to the same address
//! without it). Without a token the dashboard listens on loopback only, and accepts only requests
//! addressed to a loopback host name, so a web page that rebinds its own name to 127.0.0.1 cannot
//! reach it. Requests that change anything must carry the `X-Jetjobs-Dashboard` header (the
//! page's script sends it), which a cross-site form cannot set, unless they authenticate with the
//! `Authorization` header.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::AppState;

/// The cookie that keeps the token in the browser.
pub(crate) const COOKIE: &str = "jetjobs_dashboard_token";
/// The header a state-changing request must carry unless it sends `Authorization`.
pub(crate) const ACTION_HEADER: &str = "x-jetjobs-dashboard";

pub(crate) struct Auth {
    token: Option<String>,
    /// Host headers accepted without a token.
    loopback_hosts: Vec<String>,
}

impl Auth {
    pub(crate) fn new(token: Option<String>, addr: SocketAddr) -> Self {
        let port = addr.port();
        let mut loopback_hosts = vec![
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            format!("[::1]:{port}"),
            addr.to_string(),
        ];
        if port == 80 {
            loopback_hosts.extend(["127.0.0.1", "localhost", "[::1]"].map(String::from));
        }
        Self {
            token,
            loopback_hosts,
        }
    }
}

/// Where a request's credentials came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Credential {
    /// No token is configured.
    Open,
    Header,
    Cookie,
    Query,
}

pub(crate) async fn check(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let auth = &state.auth;
    let credential = match &auth.token {
        None => {
            let host = request
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            if !auth.loopback_hosts.iter().any(|h| h == host) {
                return refuse(
                    StatusCode::FORBIDDEN,
                    "the dashboard answers only requests addressed to a loopback host",
                );
            }
            Credential::Open
        }
        Some(token) => match presented(request.headers(), request.uri(), token) {
            Some(credential) => credential,
            None => {
                return refuse(
                    StatusCode::UNAUTHORIZED,
                    "this dashboard needs its access token: open it with ?token=TOKEN or send \
                     Authorization: Bearer TOKEN",
                );
            }
        },
    };
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD);
    if changes && credential != Credential::Header && !request.headers().contains_key(ACTION_HEADER)
    {
        return refuse(
            StatusCode::FORBIDDEN,
            "a request that changes anything must carry the X-Jetjobs-Dashboard header",
        );
    }
    if credential == Credential::Query {
        let cookie = auth.token.as_deref().map(session_cookie);
        let path = request.uri().path().to_string();
        let mut response = if request.method() == Method::GET && !path.starts_with("/api/") {
            // Drop the token from the address bar (and so from history and bookmarks).
            let target = without_token(request.uri());
            (StatusCode::SEE_OTHER, [(header::LOCATION, target)]).into_response()
        } else {
            next.run(request).await
        };
        if let Some(Ok(cookie)) = cookie.map(|c| HeaderValue::from_str(&c)) {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
        return response;
    }
    next.run(request).await
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        axum::Json(serde_json::json!({"error": message, "kind": "Unauthorized"})),
    )
        .into_response()
}

fn presented(headers: &HeaderMap, uri: &Uri, token: &str) -> Option<Credential> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "));
    if bearer.is_some_and(|t| same(t.trim(), token)) {
        return Some(Credential::Header);
    }
    let cookies = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|c| c.trim().split_once('='));
    for (name, value) in cookies {
        if name == COOKIE && same(value, token) {
            return Some(Credential::Cookie);
        }
    }
    if query_token(uri).is_some_and(|t| same(&t, token)) {
        return Some(Credential::Query);
    }
    None
}

fn query_token(uri: &Uri) -> Option<String> {
    uri.query()?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == "token")
        .map(|(_, value)| percent_decode(value))
}

fn without_token(uri: &Uri) -> String {
    let rest: Vec<&str> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty() && !pair.starts_with("token="))
        .collect();
    if rest.is_empty() {
        uri.path().to_string()
    } else {
        format!("{}?{}", uri.path(), rest.join("&"))
    }
}

fn session_cookie(token: &str) -> String {
    format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict")
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn percent_decode(text: &str) -> String {
    fn hex(byte: u8) -> Option<u8> {
        (byte as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| Some(hex(bytes[i + 1])? * 16 + hex(bytes[i + 2])?))
            .flatten();
        match (bytes[i], escaped) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 2;
            }
            (b'+', None) => out.push(b' '),
            (byte, None) => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_read_from_header_cookie_or_query() {
        let uri: Uri = "/api/overview?token=a%2Bb".parse().expect("uri");
        let mut headers = HeaderMap::new();
        assert_eq!(presented(&headers, &uri, "a+b"), Some(Credential::Query));
        assert_eq!(presented(&headers, &uri, "a b"), None);
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("x=1; jetjobs_dashboard_token=s3"),
        );
        let plain: Uri = "/".parse().expect("uri");
        assert_eq!(presented(&headers, &plain, "s3"), Some(Credential::Cookie));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer s3"));
        assert_eq!(presented(&headers, &plain, "s3"), Some(Credential::Header));
        assert_eq!(presented(&headers, &plain, "s4"), None);
    }

    #[test]
    fn the_token_is_dropped_from_the_redirect() {
        let uri: Uri = "/?token=x&a=1".parse().expect("uri");
        assert_eq!(without_token(&uri), "/?a=1");
        let uri: Uri = "/tasks?token=x".parse().expect("uri");
        assert_eq!(without_token(&uri), "/tasks");
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
        assert_eq!(percent_decode("a%20b%zz%"), "a b%zz%");
    }
}
