//! Operator bearer tokens and viewer join tokens.
//!
//! Join tokens are JWTs signed with HS256 and the join secret, so a brand's own backend mints
//! them with any stock JWT library; every node that shares the secret verifies them with no
//! state in the store. Claims: `campaign` and `exp` (required), `sub` (the viewer),
//! `region` and `unit` (the viewer's unit of the campaign's organisation) (optional);
//! others are ignored.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::campaign::{is_client_id, is_region};
use crate::protocol::limits::UNIT_CODE;

pub mod mint;

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
    join_encoding: EncodingKey,
    join_decoding: DecodingKey,
    join_validation: Validation,
}

/// The claims of a join token we read and write. Unknown claims are ignored on reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinClaims {
    pub campaign: String,
    /// Unix seconds; the token is refused from this second on.
    pub exp: u64,
    /// The viewer id the socket gets; a different `viewer` query is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Overrides the region of the edge header and of the query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The code of the viewer's unit in the campaign's organisation: the verified way to
    /// attribute a viewer (a `unit` query is not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

/// A unit code of an organisation ([`UNIT_CODE`]).
pub fn is_unit_code(s: &str) -> bool {
    UNIT_CODE.matches(s)
}

/// The HS256 key of join tokens, chosen in this one place for the node and for
/// `livetally token`, so a token minted from the shell is one the node admits.
/// `join_secret` wins; without it the key is derived from the first operator token, so
/// nodes configured alike agree on it with no shared state.
pub fn join_key(operator_tokens: &[String], join_secret: Option<&str>) -> Vec<u8> {
    let first = operator_tokens.first().map(String::as_str).unwrap_or_default();
    match join_secret.filter(|s| !s.is_empty()) {
        Some(s) => s.as_bytes().to_vec(),
        None => Sha256::digest(format!("livetally-join:{first}")).to_vec(),
    }
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
    /// for join tokens that must outlive it, and for backends that mint their own).
    pub fn new(operator_tokens: &[String], join_secret: Option<&str>) -> Self {
        let join_key = join_key(operator_tokens, join_secret);
        let mut validation = Validation::new(Algorithm::HS256);
        // The contract says no leeway: a token is dead at its `exp`, on every node alike.
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp"]);
        // No audience is required, and one a backend adds for its own use must not make the
        // library refuse the token.
        validation.validate_aud = false;
        Self {
            operator_digests: operator_tokens
                .iter()
                .map(|t| Sha256::digest(t.as_bytes()).into())
                .collect(),
            // unwrap: the key is never empty (`--join-secret ""` is refused at start, a
            // derived key is 32 bytes), the only case the library refuses.
            join_encoding: EncodingKey::from_secret(&join_key).unwrap(),
            // unwrap: as above.
            join_decoding: DecodingKey::from_secret(&join_key).unwrap(),
            join_validation: validation,
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

    /// Mints a join token (a JWT, HS256).
    pub fn mint_join(&self, claims: &JoinClaims) -> String {
        // unwrap: HS256 with a byte key and claims of strings and integers cannot fail.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.join_encoding).unwrap()
    }

    /// Verifies a join token for `campaign` at `now_s` (unix seconds) and returns its claims.
    /// The signature must be HS256 with the join secret, `exp` after `now_s` (the library
    /// checks it too, without leeway), `campaign` this one, and `sub`/`region`/`unit` valid.
    pub fn verify_join(&self, token: Option<&str>, campaign: &str, now_s: u64) -> Result<JoinClaims, TokenError> {
        let token = token.filter(|t| !t.is_empty()).ok_or(TokenError::Missing)?;
        let claims = jsonwebtoken::decode::<JoinClaims>(token, &self.join_decoding, &self.join_validation)
            .map_err(|_| TokenError::Invalid)?
            .claims;
        // The library still accepts a token in its `exp` second; RFC 7519 does not.
        if claims.campaign != campaign || claims.exp <= now_s {
            return Err(TokenError::Invalid);
        }
        if claims.sub.as_deref().is_some_and(|s| !is_client_id(s))
            || claims.region.as_deref().is_some_and(|r| !is_region(r))
            || claims.unit.as_deref().is_some_and(|u| !is_unit_code(u))
        {
            return Err(TokenError::Invalid);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};

    fn now() -> u64 {
        (crate::util::now_ms() / 1000) as u64
    }

    fn claims(campaign: &str, exp: u64) -> JoinClaims {
        JoinClaims {
            campaign: campaign.into(),
            exp,
            sub: None,
            region: None,
            unit: None,
        }
    }

    /// A JWT assembled by hand, as any backend's library would: not our minting path.
    fn hand_made(secret: &[u8], header: &str, claims: &str) -> String {
        let signing_input = format!("{}.{}", B64.encode(header), B64.encode(claims));
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(signing_input.as_bytes());
        format!("{signing_input}.{}", B64.encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn join_tokens_verify_only_for_their_campaign_and_time() {
        let a = Auth::new(&["operator-token-123456".into()], None);
        let exp = now() + 100;
        let t = a.mint_join(&claims("c1", exp));
        assert_eq!(a.verify_join(Some(&t), "c1", exp - 1), Ok(claims("c1", exp)));
        assert_eq!(
            a.verify_join(Some(&t), "c1", exp),
            Err(TokenError::Invalid),
            "dead at exp"
        );
        assert_eq!(a.verify_join(Some(&t), "c2", exp - 1), Err(TokenError::Invalid));
        assert_eq!(a.verify_join(None, "c1", 0), Err(TokenError::Missing));
        assert_eq!(a.verify_join(Some(""), "c1", 0), Err(TokenError::Missing));
        let other = Auth::new(&["another-token-123456".into()], None);
        assert_eq!(other.verify_join(Some(&t), "c1", 0), Err(TokenError::Invalid));
        let mut forged = t.clone();
        forged.replace_range(t.len() - 2.., "AA");
        assert_eq!(a.verify_join(Some(&forged), "c1", 0), Err(TokenError::Invalid));
    }

    #[test]
    fn an_expired_token_gets_no_leeway() {
        let a = Auth::new(&["operator-token-123456".into()], None);
        let t = a.mint_join(&claims("c1", now() - 1));
        // The library's own clock check refuses it even when the caller's clock lags.
        assert_eq!(a.verify_join(Some(&t), "c1", 0), Err(TokenError::Invalid));
    }

    #[test]
    fn a_stock_jwt_is_read_with_sub_and_region_and_other_claims_ignored() {
        let a = Auth::new(&["operator-token-123456".into()], Some("shared-join-secret"));
        let exp = now() + 60;
        let t = hand_made(
            b"shared-join-secret",
            r#"{"alg":"HS256","typ":"JWT"}"#,
            &format!(
                r#"{{"campaign":"c1","exp":{exp},"sub":"viewer-0001","region":"DE","unit":"gd-0755","aud":"brand","iat":1}}"#
            ),
        );
        let got = a.verify_join(Some(&t), "c1", 0).unwrap();
        assert_eq!(got.sub.as_deref(), Some("viewer-0001"));
        assert_eq!(got.region.as_deref(), Some("DE"));
        assert_eq!(got.unit.as_deref(), Some("gd-0755"));
    }

    #[test]
    fn malformed_claims_and_other_algorithms_are_refused() {
        let secret = b"shared-join-secret";
        let a = Auth::new(&["operator-token-123456".into()], Some("shared-join-secret"));
        let exp = now() + 60;
        let hs256 = r#"{"alg":"HS256","typ":"JWT"}"#;
        for (header, body) in [
            (hs256, r#"{"campaign":"c1"}"#.to_owned()),
            (hs256, format!(r#"{{"exp":{exp}}}"#)),
            (hs256, format!(r#"{{"campaign":"c1","exp":{exp},"sub":"short"}}"#)),
            (hs256, format!(r#"{{"campaign":"c1","exp":{exp},"region":"far away"}}"#)),
            (hs256, format!(r#"{{"campaign":"c1","exp":{exp},"unit":"no spaces"}}"#)),
            (
                r#"{"alg":"HS512","typ":"JWT"}"#,
                format!(r#"{{"campaign":"c1","exp":{exp}}}"#),
            ),
            (r#"{"alg":"none"}"#, format!(r#"{{"campaign":"c1","exp":{exp}}}"#)),
        ] {
            let t = hand_made(secret, header, &body);
            assert_eq!(
                a.verify_join(Some(&t), "c1", 0),
                Err(TokenError::Invalid),
                "{header} {body}"
            );
        }
        assert_eq!(a.verify_join(Some("a.b"), "c1", 0), Err(TokenError::Invalid));
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
        let exp = now() + 100;
        let t = old_only.mint_join(&claims("c1", exp));
        assert!(
            a.verify_join(Some(&t), "c1", 0).is_ok(),
            "join key from the first token"
        );
    }
}
