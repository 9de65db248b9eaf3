//! Operator bearer tokens and viewer join tokens.
//!
//! Join tokens are `base64url(payload).base64url(HMAC-SHA256(payload))` with payload
//! `{"c":campaign,"exp":unix_s}`: small enough for a URL, verifiable by every node that shares
//! the secret, and no state in the store.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Default and longest lifetime of a join token.
pub const DEFAULT_JOIN_TTL_S: u64 = 24 * 3600;
pub const MAX_JOIN_TTL_S: u64 = 30 * 24 * 3600;

/// Why a token was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    Missing,
    Invalid,
}

/// Secrets of this node.
pub struct Auth {
    /// SHA-256 of every accepted operator token (several during a rotation).
    operator_digests: Vec<[u8; 32]>,
    join_key: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct JoinClaims {
    c: String,
    exp: u64,
}

/// A random URL-safe string with `bytes` bytes of entropy.
pub fn random_id(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(&mut buf[..]);
    B64.encode(buf)
}

impl Auth {
    /// `operator_tokens`: every token accepted (at least one). `join_secret` absent: derived
    /// from the first operator token, so nodes configured alike accept each other's join
    /// tokens (a rotation that changes the first token retires those: set `--join-secret`
    /// for join tokens that must outlive it).
    pub fn new(operator_tokens: &[String], join_secret: Option<&str>) -> Self {
        let first = operator_tokens.first().map(String::as_str).unwrap_or_default();
        let join_key = match join_secret {
            Some(s) => s.as_bytes().to_vec(),
            None => Sha256::digest(format!("livetally-join:{first}")).to_vec(),
        };
        Self {
            operator_digests: operator_tokens
                .iter()
                .map(|t| Sha256::digest(t.as_bytes()).into())
                .collect(),
            join_key,
        }
    }

    /// Checks an `Authorization` header value (or a raw token for sockets).
    pub fn check_operator(&self, presented: Option<&str>) -> Result<(), TokenError> {
        let token = presented.ok_or(TokenError::Missing)?;
        let token = token.strip_prefix("Bearer ").unwrap_or(token).trim();
        // Compare digests so the time taken does not reveal a matching prefix, and compare
        // with every token so it does not reveal which one matched.
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let matches = self
            .operator_digests
            .iter()
            .fold(false, |any, d| any | (*d == presented));
        if matches {
            Ok(())
        } else {
            Err(TokenError::Invalid)
        }
    }

    /// Mints a join token for `campaign` expiring at `exp` (unix seconds).
    pub fn mint_join(&self, campaign: &str, exp: u64) -> String {
        // unwrap: serialising a struct of a string and an integer cannot fail.
        let payload = B64.encode(
            serde_json::to_vec(&JoinClaims {
                c: campaign.to_owned(),
                exp,
            })
            .unwrap(),
        );
        let sig = B64.encode(self.mac(payload.as_bytes()).finalize().into_bytes());
        format!("{payload}.{sig}")
    }

    /// Verifies a join token for `campaign` at `now_s`.
    pub fn verify_join(&self, token: Option<&str>, campaign: &str, now_s: u64) -> Result<(), TokenError> {
        let token = token.filter(|t| !t.is_empty()).ok_or(TokenError::Missing)?;
        let (payload, sig) = token.split_once('.').ok_or(TokenError::Invalid)?;
        let sig = B64.decode(sig).map_err(|_| TokenError::Invalid)?;
        self.mac(payload.as_bytes())
            .verify_slice(&sig)
            .map_err(|_| TokenError::Invalid)?;
        let claims: JoinClaims = B64
            .decode(payload)
            .ok()
            .and_then(|p| serde_json::from_slice(&p).ok())
            .ok_or(TokenError::Invalid)?;
        if claims.c != campaign || claims.exp <= now_s {
            return Err(TokenError::Invalid);
        }
        Ok(())
    }

    fn mac(&self, data: &[u8]) -> HmacSha256 {
        // unwrap: HMAC accepts keys of any length.
        let mut m = HmacSha256::new_from_slice(&self.join_key).unwrap();
        m.update(data);
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_tokens_verify_only_for_their_campaign_and_time() {
        let a = Auth::new(&["operator-token-123456".into()], None);
        let t = a.mint_join("c1", 100);
        assert_eq!(a.verify_join(Some(&t), "c1", 99), Ok(()));
        assert_eq!(a.verify_join(Some(&t), "c1", 100), Err(TokenError::Invalid));
        assert_eq!(a.verify_join(Some(&t), "c2", 99), Err(TokenError::Invalid));
        assert_eq!(a.verify_join(None, "c1", 0), Err(TokenError::Missing));
        let other = Auth::new(&["another-token-123456".into()], None);
        assert_eq!(other.verify_join(Some(&t), "c1", 0), Err(TokenError::Invalid));
        let mut forged = t.clone();
        forged.replace_range(0..1, "x");
        assert_eq!(a.verify_join(Some(&forged), "c1", 0), Err(TokenError::Invalid));
    }

    #[test]
    fn operator_tokens() {
        let a = Auth::new(&["operator-token-123456".into()], None);
        assert_eq!(a.check_operator(Some("Bearer operator-token-123456")), Ok(()));
        assert_eq!(a.check_operator(Some("Bearer nope")), Err(TokenError::Invalid));
        assert_eq!(a.check_operator(None), Err(TokenError::Missing));
    }

    #[test]
    fn every_token_of_a_rotation_is_accepted() {
        let a = Auth::new(&["old-token-0123456789".into(), "new-token-0123456789".into()], None);
        assert_eq!(a.check_operator(Some("Bearer old-token-0123456789")), Ok(()));
        assert_eq!(a.check_operator(Some("Bearer new-token-0123456789")), Ok(()));
        assert_eq!(
            a.check_operator(Some("Bearer other-token-0123456")),
            Err(TokenError::Invalid)
        );
        let old_only = Auth::new(&["old-token-0123456789".into()], None);
        let t = old_only.mint_join("c1", 100);
        assert_eq!(
            a.verify_join(Some(&t), "c1", 99),
            Ok(()),
            "join key from the first token"
        );
    }
}
