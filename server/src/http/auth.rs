//! The bearer token of the API's control routes.

use axum::http::{header, HeaderMap, StatusCode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The `--http-token` secret. Its `Debug` never shows it, so neither
/// `tincan serve`'s parsed arguments nor any log line can leak it, and it
/// is compared in constant time (see [`Token::matches`]).
#[derive(Clone)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl std::str::FromStr for Token {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            // An empty token would make `Authorization: Bearer ` a key.
            Err("the token must not be empty")
        } else if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            Err("the token must not contain spaces or control characters (it travels in an HTTP header)")
        } else {
            Ok(Token(s.to_owned()))
        }
    }
}

impl Token {
    /// Whether `given` is this token. Both are hashed first and the
    /// digests compared in constant time, so neither the position of the
    /// first wrong byte nor the token's length shows in the timing.
    pub fn matches(&self, given: &[u8]) -> bool {
        let want = Sha256::digest(self.0.as_bytes());
        let got = Sha256::digest(given);
        bool::from(want.ct_eq(&got))
    }
}

/// Why a control request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// No `--http-token` is configured: control routes are off.
    Disabled,
    /// The request carries no token or a wrong one.
    Unauthorized,
}

impl Refused {
    pub(super) fn status(self) -> StatusCode {
        match self {
            Refused::Disabled => StatusCode::FORBIDDEN,
            Refused::Unauthorized => StatusCode::UNAUTHORIZED,
        }
    }
}

/// Checks a control request's `Authorization: Bearer TOKEN` header.
pub(super) fn check(token: Option<&Token>, headers: &HeaderMap) -> Result<(), Refused> {
    let token = token.ok_or(Refused::Disabled)?;
    let given = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .and_then(|v| {
            // The scheme is case-insensitive (RFC 9110 section 11.1).
            let (scheme, rest) = v.split_at(v.len().min(7));
            scheme.eq_ignore_ascii_case(b"bearer ").then_some(rest)
        })
        .ok_or(Refused::Unauthorized)?;
    if token.matches(given) {
        Ok(())
    } else {
        Err(Refused::Unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, auth.parse().unwrap());
        h
    }

    #[test]
    fn only_the_right_bearer_token_passes() {
        let t: Token = "s3cret".parse().unwrap();
        assert_eq!(check(Some(&t), &headers("Bearer s3cret")), Ok(()));
        assert_eq!(check(Some(&t), &headers("bearer s3cret")), Ok(()));
        assert_eq!(
            check(Some(&t), &headers("Bearer s3cre")),
            Err(Refused::Unauthorized)
        );
        assert_eq!(
            check(Some(&t), &headers("Basic s3cret")),
            Err(Refused::Unauthorized)
        );
        assert_eq!(
            check(Some(&t), &HeaderMap::new()),
            Err(Refused::Unauthorized)
        );
        assert_eq!(
            check(None, &headers("Bearer s3cret")),
            Err(Refused::Disabled)
        );
    }

    #[test]
    fn the_token_never_shows_in_debug_output_and_cannot_be_empty() {
        let t: Token = "s3cret".parse().unwrap();
        assert!(!format!("{t:?}").contains("s3cret"));
        assert!("".parse::<Token>().is_err());
        assert!("a b".parse::<Token>().is_err());
    }
}
