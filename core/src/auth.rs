//! TC authentication tokens: the HMAC-SHA-256 scheme of the TC Server.
//!
//! An operator configures one or more *master keys*. A client then proves it
//! may join an App by sending, after the `connect` command object, either
//!
//! * one string: the *App-wide token*, `HMAC-SHA-256(key, app)` in
//!   lower-case hex, or
//! * two strings: a user name and the *user token*,
//!   `HMAC-SHA-256(key, user + "@" + app)`.
//!
//! Any configured key may match, so keys can be rotated by running with the
//! old and the new one for a while. Tokens are compared as MACs with
//! [`hmac::Mac::verify_slice`] (constant time), never as strings, and neither
//! tokens nor keys ever reach a log: [`AuthKeys`] prints only how many keys
//! it holds.
//!
//! The same arithmetic is the operator's token calculator
//! ([`calculator_line`]), which prints `,auth,<token>,<message>` exactly as
//! the TC Server does.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::message::Value;

type HmacSha256 = Hmac<Sha256>;

/// Longest user name accepted in a `connect`; a name is hashed per attempt,
/// so it is bounded well above any real one.
pub const MAX_USER_LEN: usize = 1024;

/// The configured master keys. Cheap to clone (shared), so every session's
/// configuration can carry them and decide at `connect` time.
///
/// Empty means authentication is off: every `connect` is accepted whatever
/// its extra arguments (FFmpeg's `-rtmp_conn` values are then just ignored).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AuthKeys {
    keys: Arc<[Vec<u8>]>,
}

impl std::fmt::Debug for AuthKeys {
    /// Keys are secrets: only their number is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuthKeys({} keys)", self.keys.len())
    }
}

impl AuthKeys {
    /// The given master keys (raw bytes: a `-k` string's UTF-8 bytes, or a
    /// `-K` key decoded from hex with [`parse_hex`]).
    pub fn new<I, K>(keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: Into<Vec<u8>>,
    {
        AuthKeys {
            keys: keys.into_iter().map(Into::into).collect(),
        }
    }

    /// Whether no key is configured (authentication off).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// How many keys are configured.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Decides a `connect` to `app` whose extra arguments (after the command
    /// object) are `args`. `Ok(None)` for an App-wide token (or when
    /// authentication is off), `Ok(Some(user))` for a user token.
    pub fn check(&self, app: &str, args: &[Value]) -> Result<Option<String>, AuthError> {
        if self.is_empty() {
            return Ok(None);
        }
        let (user, token) = match args {
            [] => return Err(AuthError::MissingToken),
            [first, rest @ ..] => {
                let first = first.as_str().ok_or(AuthError::MissingToken)?;
                match rest.first().and_then(Value::as_str) {
                    Some(token) => (Some(first), token),
                    None => (None, first),
                }
            }
        };
        let Some(mac) = parse_token(token) else {
            return Err(AuthError::BadToken);
        };
        let matches = |message: &[&[u8]]| {
            self.keys.iter().any(|key| {
                let mut h = hmac_with(key);
                message.iter().for_each(|part| h.update(part));
                h.verify_slice(&mac).is_ok()
            })
        };
        match user {
            None if matches(&[app.as_bytes()]) => Ok(None),
            Some(user) if user.len() <= MAX_USER_LEN => {
                if matches(&[user.as_bytes(), b"@", app.as_bytes()]) {
                    Ok(Some(user.to_owned()))
                } else {
                    Err(AuthError::BadToken)
                }
            }
            _ => Err(AuthError::BadToken),
        }
    }
}

/// Settings a TC user name carries: since the user token is an HMAC over
/// the whole user name, whoever holds a master key grants them and nobody
/// else can forge them. The name is a list of `<name>=<value>` settings (or
/// bare flags) separated by `;`; unrecognized ones (such as an opaque
/// user id) are ignored, and of repeated ones the last wins.
///
/// `67890;name=mike;pri=5;exp=1682190000` is user `67890` publishing as
/// `mike`, at priority up to 5, until that Unix time.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UserProperties {
    /// `name`: the publisher name shown to players (`publisherName` of
    /// `NetStream.Play.PublishNotify`) and to relay recipients.
    pub name: Option<String>,
    /// `pri`: the highest publish priority the connection may ask for.
    pub max_priority: Option<u32>,
    /// `xcl`: one connection at a time for this user in an App; a new one
    /// disconnects the old.
    pub exclusive: bool,
    /// `nbf`: no connect before this Unix time.
    pub not_before: Option<f64>,
    /// `exp`: disconnect at this Unix time.
    pub expires_at: Option<f64>,
    /// `use_by`: no connect after this Unix time.
    pub use_by: Option<f64>,
    /// `exi`: disconnect this many seconds after connecting.
    pub expires_in: Option<f64>,
    /// `pub`: most simultaneous publishes on the connection.
    pub max_publishes: Option<u32>,
}

impl UserProperties {
    /// Reads the settings of `user`. A value that does not parse as its
    /// type is ignored, like an unknown setting (TC does the same): the
    /// token already proves the name is the key holder's.
    pub fn parse(user: &str) -> Self {
        let mut p = UserProperties::default();
        for item in user.split(';') {
            let (key, value) = item.split_once('=').unwrap_or((item, ""));
            let number = || value.parse::<f64>().ok().filter(|v| v.is_finite());
            let count = || number().map(|v| v.clamp(0.0, f64::from(u32::MAX)) as u32);
            match key {
                "name" => p.name = (!value.is_empty()).then(|| value.to_owned()),
                "pri" => p.max_priority = count().or(p.max_priority),
                "xcl" => p.exclusive = true,
                "nbf" => p.not_before = number().or(p.not_before),
                "exp" => p.expires_at = number().or(p.expires_at),
                "use_by" => p.use_by = number().or(p.use_by),
                "exi" => p.expires_in = number().or(p.expires_in),
                "pub" => p.max_publishes = count().or(p.max_publishes),
                _ => {}
            }
        }
        p
    }

    /// Whether any setting needs the wall clock to be checked (`nbf`,
    /// `exp`, `use_by`).
    pub fn needs_clock(&self) -> bool {
        self.not_before.is_some() || self.expires_at.is_some() || self.use_by.is_some()
    }
}

/// Why a `connect` failed authentication. The texts go to the client as the
/// rejection's description, so they never contain the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The `connect` carried no string argument after its command object.
    #[error("authentication required: give a token after the connect object")]
    MissingToken,
    /// A token was given but no configured key produced it for this App
    /// (and user).
    #[error("authentication failed: the token does not match")]
    BadToken,
}

/// A hex string that is not a key (odd length or a non-hex digit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a hex string: expected an even number of hex digits")]
pub struct HexError;

/// `HMAC-SHA-256(key, message)` in lower-case hex: the token for App
/// `message`, or for `user@app`.
pub fn token(key: &[u8], message: &str) -> String {
    let mut h = hmac_with(key);
    h.update(message.as_bytes());
    to_hex(&h.finalize().into_bytes())
}

/// One line of the token calculator, `,auth,<token>,<message>`, as the TC
/// Server prints it (`tcserver -k supersecret live/12345`).
pub fn calculator_line(key: &[u8], message: &str) -> String {
    format!(",auth,{},{message}", token(key, message))
}

/// A binary key given in hex (`-K`), either case.
pub fn parse_hex(hex: &str) -> Result<Vec<u8>, HexError> {
    let digits = hex.as_bytes();
    if digits.len() % 2 != 0 {
        return Err(HexError);
    }
    digits
        .chunks_exact(2)
        .map(|pair| Ok((hex_digit(pair[0])? << 4) | hex_digit(pair[1])?))
        .collect()
}

/// A presented token as MAC bytes: exactly 64 hex digits. Upper case is
/// accepted too: it names the same MAC, and refusing it would only make a
/// hand-typed token fail for no gain.
fn parse_token(token: &str) -> Option<[u8; 32]> {
    if token.len() != 64 {
        return None;
    }
    parse_hex(token).ok()?.try_into().ok()
}

fn hex_digit(c: u8) -> Result<u8, HexError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(HexError),
    }
}

fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

fn hmac_with(key: &[u8]) -> HmacSha256 {
    // Invariant: HMAC takes keys of any length (long ones are hashed).
    <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts any key length")
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP_TOKEN: &str = "df41d9cbe74f325250d6e0346dcd9e95fb837892f4a927c27cecf2664d639786";
    const USER_TOKEN: &str = "8bddf00ca7e31862fe17872c463df61eafde6518f565cb3def0e82a3b2d639d7";

    fn keys() -> AuthKeys {
        AuthKeys::new(["supersecret"])
    }

    #[test]
    fn app_token_matches_the_readme() {
        assert_eq!(token(b"supersecret", "live/12345"), APP_TOKEN);
    }

    #[test]
    fn user_token_matches_the_readme() {
        assert_eq!(token(b"supersecret", "mike@live/12345"), USER_TOKEN);
    }

    #[test]
    fn calculator_prints_the_readme_lines() {
        assert_eq!(
            calculator_line(b"supersecret", "live/12345"),
            format!(",auth,{APP_TOKEN},live/12345")
        );
        assert_eq!(
            calculator_line(b"supersecret", "mike@live/12345"),
            format!(",auth,{USER_TOKEN},mike@live/12345")
        );
    }

    #[test]
    fn calculator_with_a_hex_key_matches_the_readme_nonce_example() {
        let key = parse_hex("cbc290212a52dad978da93870e6929a5050d838a18723620b92df9a530535442")
            .expect("hex key");
        assert_eq!(
            calculator_line(&key, APP_TOKEN),
            format!(
                ",auth,bc4e260a541aa5c6cd498f414afd7f05c76bd6d731f726df268d0b1e8bf5a58c,{APP_TOKEN}"
            )
        );
    }

    #[test]
    fn hex_keys_of_odd_length_or_bad_digits_are_refused() {
        assert_eq!(parse_hex("abc"), Err(HexError));
        assert_eq!(parse_hex("zz"), Err(HexError));
        assert_eq!(parse_hex("0aFf"), Ok(vec![0x0a, 0xff]));
    }

    #[test]
    fn no_keys_accepts_any_connect() {
        assert_eq!(AuthKeys::default().check("live/12345", &[]), Ok(None));
    }

    #[test]
    fn app_wide_token_is_accepted() {
        assert_eq!(
            keys().check("live/12345", &[Value::from(APP_TOKEN)]),
            Ok(None)
        );
    }

    #[test]
    fn user_token_is_accepted_with_its_user_name() {
        assert_eq!(
            keys().check(
                "live/12345",
                &[Value::from("mike"), Value::from(USER_TOKEN)]
            ),
            Ok(Some("mike".to_owned()))
        );
    }

    #[test]
    fn app_token_for_another_app_is_refused() {
        assert_eq!(
            keys().check("live/99999", &[Value::from(APP_TOKEN)]),
            Err(AuthError::BadToken)
        );
    }

    #[test]
    fn user_token_under_another_user_name_is_refused() {
        assert_eq!(
            keys().check("live/12345", &[Value::from("eve"), Value::from(USER_TOKEN)]),
            Err(AuthError::BadToken)
        );
    }

    #[test]
    fn missing_token_is_refused_as_missing() {
        assert_eq!(
            keys().check("live/12345", &[]),
            Err(AuthError::MissingToken)
        );
        assert_eq!(
            keys().check("live/12345", &[Value::Number(1.0)]),
            Err(AuthError::MissingToken)
        );
    }

    #[test]
    fn malformed_token_is_refused() {
        assert_eq!(
            keys().check("live/12345", &[Value::from("not-hex")]),
            Err(AuthError::BadToken)
        );
    }

    #[test]
    fn any_configured_key_may_match() {
        let keys = AuthKeys::new(["old", "supersecret"]);
        assert_eq!(
            keys.check("live/12345", &[Value::from(APP_TOKEN)]),
            Ok(None)
        );
    }

    #[test]
    fn upper_case_token_names_the_same_mac() {
        let upper = APP_TOKEN.to_ascii_uppercase();
        assert_eq!(keys().check("live/12345", &[Value::from(upper)]), Ok(None));
    }

    #[test]
    fn user_properties_of_the_readme_example() {
        let p = UserProperties::parse("67890;name=mike;pri=5;exp=1682190000");
        assert_eq!(p.name.as_deref(), Some("mike"));
        assert_eq!(p.max_priority, Some(5));
        assert_eq!(p.expires_at, Some(1_682_190_000.0));
        assert!(!p.exclusive && p.not_before.is_none() && p.max_publishes.is_none());
        // And its token, as TC's calculator prints it.
        assert_eq!(
            calculator_line(b"supersecret", "67890;name=mike;pri=5;exp=1682190000@live/12345"),
            ",auth,46c659987c412a7b6e5892f9ccc25019cee40f6934978876ab89a389e6317dc3,67890;name=mike;pri=5;exp=1682190000@live/12345"
        );
    }

    #[test]
    fn user_properties_flags_repeats_and_garbage() {
        let p =
            UserProperties::parse("u;xcl;pub=2;pri=1;pri=3;exi=abc;nbf=10;use_by=20;exi=60;zzz=1");
        assert!(p.exclusive);
        assert_eq!(p.max_publishes, Some(2));
        assert_eq!(p.max_priority, Some(3));
        assert_eq!(p.expires_in, Some(60.0));
        assert_eq!((p.not_before, p.use_by), (Some(10.0), Some(20.0)));
        assert!(p.needs_clock());
        assert_eq!(UserProperties::parse("plain"), UserProperties::default());
    }

    #[test]
    fn debug_output_hides_the_keys() {
        let shown = format!("{:?}", keys());
        assert!(!shown.contains("supersecret"), "{shown}");
        assert_eq!(shown, "AuthKeys(1 keys)");
    }
}
