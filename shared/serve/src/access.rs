//! Who may use the server. On a loopback bind the machine's own user is the only caller and acts
//! as the local tenant (`local`, as the CLI does) with no sign-in. On any other bind (or with
//! `--require-token`) every API request and socket must carry the token printed at start-up:
//! `Authorization: Bearer <token>`, or `?token=<token>` / the `bearer.<token>` subprotocol on
//! the WebSocket, which a browser cannot give headers.

use axum::http::HeaderMap;

/// The one tenant `vidpipe serve` acts for, the same owner the CLI records.
pub const LOCAL_TENANT: &str = "local";

#[derive(Debug, Clone)]
pub enum Access {
    /// Loopback: no credentials needed.
    Open,
    /// The printed token is required.
    Token(String),
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error(
        "This server requires the token it printed at start-up (Authorization: Bearer <token>)."
    )]
    Missing,
    #[error("The token does not match the one this server printed at start-up.")]
    Wrong,
}

impl Access {
    pub fn token(token: String) -> Self {
        Access::Token(token)
    }

    pub fn required_token(&self) -> Option<&str> {
        match self {
            Access::Open => None,
            Access::Token(t) => Some(t),
        }
    }

    /// Checks an API request: the bearer header only, so a token never lands in a URL that a
    /// log or a referrer could keep.
    pub fn check_headers(&self, headers: &HeaderMap) -> Result<(), Refused> {
        self.check(bearer(headers))
    }

    /// Checks a socket's upgrade: the bearer header, `?token=`, or a `bearer.<token>` subprotocol.
    pub fn check_socket(
        &self,
        headers: &HeaderMap,
        query_token: Option<&str>,
    ) -> Result<(), Refused> {
        let offered = bearer(headers)
            .or(query_token)
            .or_else(|| subprotocol_token(headers));
        self.check(offered)
    }

    fn check(&self, offered: Option<&str>) -> Result<(), Refused> {
        let Access::Token(expected) = self else {
            return Ok(());
        };
        let offered = offered.ok_or(Refused::Missing)?;
        if equal_in_constant_time(offered.as_bytes(), expected.as_bytes()) {
            Ok(())
        } else {
            Err(Refused::Wrong)
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The token in a `Sec-WebSocket-Protocol: bearer.<token>` offer, as the stack's socket takes it.
pub fn subprotocol_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix("bearer."))
}

/// Compares without stopping at the first difference, so response times do not reveal how much
/// of a guess was right.
fn equal_in_constant_time(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// 32 random bytes as hex: the start-up token.
pub fn random_token() -> Result<String, String> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| "cannot draw a token".to_owned())?;
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn a_token_server_takes_only_its_token() {
        let access = Access::token("abc123".into());
        assert_eq!(
            access.check_headers(&HeaderMap::new()),
            Err(Refused::Missing)
        );
        assert_eq!(
            access.check_headers(&headers(&[("authorization", "Bearer abc124")])),
            Err(Refused::Wrong)
        );
        assert_eq!(
            access.check_headers(&headers(&[("authorization", "bearer abc123")])),
            Ok(())
        );
        assert_eq!(
            access.check_socket(&HeaderMap::new(), Some("abc123")),
            Ok(())
        );
        assert_eq!(
            access.check_socket(
                &headers(&[("sec-websocket-protocol", "json, bearer.abc123")]),
                None
            ),
            Ok(())
        );
        assert_eq!(
            access.check_socket(&HeaderMap::new(), Some("abc")),
            Err(Refused::Wrong)
        );
        assert_eq!(Access::Open.check_headers(&HeaderMap::new()), Ok(()));
    }
}
