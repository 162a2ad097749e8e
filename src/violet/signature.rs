//! Webhook signatures: `X-Violet-Hmac` = base64 (standard, padded) of
//! HMAC-SHA256(key = app secret bytes, message = raw body bytes).
//!
//! The algorithm is Violet's house convention (VIOLET.md marks it assumed), so it
//! lives here and nowhere else: the intake verifies with it and the sandbox signs with it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::Secret;

type HmacSha256 = Hmac<Sha256>;

/// The header value Violet sends for `body` signed with `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    STANDARD.encode(digest(secret, body))
}

fn digest(secret: &str, body: &[u8]) -> [u8; 32] {
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// A body whose signature matched one of the accepted secrets. Only [`verify`] makes
/// one, so code that takes a `VerifiedBody` cannot be handed unverified bytes.
#[derive(Debug, Clone, Copy)]
pub struct VerifiedBody<'a>(&'a [u8]);

impl<'a> VerifiedBody<'a> {
    pub fn bytes(&self) -> &'a [u8] {
        self.0
    }
}

/// Why a signature was refused (never says which secret was close).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing X-Violet-Hmac header")]
    Missing,
    #[error("X-Violet-Hmac is not valid base64 of a SHA-256 HMAC")]
    Malformed,
    #[error("X-Violet-Hmac does not match the body")]
    Mismatch,
}

/// Checks `header` against the raw `body` with every accepted secret (rotation),
/// comparing in constant time. Every secret is tried so timing does not reveal which
/// one matched.
pub fn verify<'a>(
    secrets: &[Secret],
    body: &'a [u8],
    header: Option<&str>,
) -> Result<VerifiedBody<'a>, SignatureError> {
    let header = header
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .ok_or(SignatureError::Missing)?;
    let given = STANDARD
        .decode(header)
        .map_err(|_| SignatureError::Malformed)?;
    if given.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    let mut matched = subtle::Choice::from(0);
    for secret in secrets {
        matched |= digest(secret.expose(), body).ct_eq(given.as_slice());
    }
    if bool::from(matched) {
        Ok(VerifiedBody(body))
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let sig = sign("Jefe", b"what do ya want for nothing?");
        let hex: String = STANDARD
            .decode(&sig)
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn accepts_any_configured_secret_and_refuses_others() {
        let body = br#"{"id":1}"#;
        let secrets = [Secret::new("old"), Secret::new("new")];
        assert!(verify(&secrets, body, Some(&sign("new", body))).is_ok());
        assert!(verify(&secrets, body, Some(&sign("old", body))).is_ok());
        assert_eq!(
            verify(&secrets, body, Some(&sign("other", body))).unwrap_err(),
            SignatureError::Mismatch
        );
        assert_eq!(
            verify(&secrets, body, None).unwrap_err(),
            SignatureError::Missing
        );
        assert_eq!(
            verify(&secrets, body, Some("not base64!")).unwrap_err(),
            SignatureError::Malformed
        );
        let tampered = br#"{"id":2}"#;
        assert_eq!(
            verify(&secrets, tampered, Some(&sign("new", body))).unwrap_err(),
            SignatureError::Mismatch
        );
    }
}
