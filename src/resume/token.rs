//! Resume tokens: the secret a client shows to get its session back.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::store::attachment::TokenHash;

/// The secret a client presents to resume its session: the session id, a dot, and 128 bits from
/// the operating system's CSPRNG in hex.
///
/// The store keeps only the SHA-256 of the secret part, and every resume
/// replaces the token with a new one: a token works once. The token's text is reachable only
/// through [`expose`](Self::expose), to send it to the client; it is neither `Display` nor in
/// its `Debug` output, so it does not end up in a log by accident.
///
/// ```
/// use ws_session::resume::ResumeToken;
///
/// let token = ResumeToken::generate("c1");
/// assert!(token.expose().starts_with("c1."));
/// assert_eq!(format!("{token:?}"), "ResumeToken(..)");
/// let again = ResumeToken::parse(token.expose()).unwrap();
/// assert_eq!(again.session_id(), "c1");
/// assert!(ResumeToken::parse("c1.not-hex").is_none());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ResumeToken {
    text: String,
    /// Where the secret starts in `text`.
    secret_at: usize,
}

/// Bytes of randomness in a token's secret.
const SECRET_BYTES: usize = 16;

impl ResumeToken {
    /// A new token for session `id`.
    pub fn generate(id: &str) -> Self {
        let secret: [u8; SECRET_BYTES] = rand::random();
        let text = format!("{id}.{}", hex::encode(secret));
        ResumeToken {
            secret_at: id.len() + 1,
            text,
        }
    }

    /// The token `text` stands for, or `None` when it is not one (no session id, or a secret
    /// that is not 32 hex digits).
    pub fn parse(text: &str) -> Option<Self> {
        let (id, secret) = text.rsplit_once('.')?;
        let well_formed = !id.is_empty()
            && secret.len() == 2 * SECRET_BYTES
            && secret
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        well_formed.then(|| ResumeToken {
            secret_at: id.len() + 1,
            text: text.to_owned(),
        })
    }

    /// The session the token claims.
    pub fn session_id(&self) -> &str {
        &self.text[..self.secret_at - 1]
    }

    /// The token's text, to hand to the client. Keep it out of logs.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// The SHA-256 of the token's secret: what the store keeps and compares.
    pub(crate) fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(&self.text.as_bytes()[self.secret_at..]).into())
    }
}

impl fmt::Debug for ResumeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResumeToken(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_hash_only_their_secret() {
        let a = ResumeToken::generate("s");
        let b = ResumeToken::generate("s");
        assert_ne!(a.expose(), b.expose());
        assert!(!a.hash().matches(&b.hash()));
        assert!(
            a.hash()
                .matches(&ResumeToken::parse(a.expose()).unwrap().hash())
        );
        assert_eq!(a.expose().len(), "s.".len() + 32);
        assert_eq!(a.hash().to_hex().len(), 64);
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for text in [
            "",
            ".",
            "nodot",
            ".0123456789abcdef0123456789abcdef",
            "s.0123456789abcdef0123456789abcde",
            "s.0123456789abcdef0123456789abcdefa",
            "s.0123456789ABCDEF0123456789ABCDEF",
            "s.0123456789abcdef0123456789abcdeg",
        ] {
            assert!(ResumeToken::parse(text).is_none(), "{text:?}");
        }
        let dotted = ResumeToken::parse("a.b.0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(dotted.session_id(), "a.b");
    }
}
