//! The signatures on every webhook request. Two schemes ride side by side, over the same
//! timestamp:
//!
//! - `Livetally-Signature: t=<unix s>,v1=<hex>`, livetally's own since v1, keyed with the
//!   secret's UTF-8 bytes whatever its form, so receivers written against it keep working;
//! - `webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64>` as the Standard
//!   Webhooks specification defines them, so a receiver verifies with a stock library
//!   (`standardwebhooks` on npm and PyPI, Svix's). Their key is the base64 after `whsec_`
//!   when the secret has that form (what those libraries expect), else its UTF-8 bytes.

use base64::alphabet::STANDARD;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// livetally's own signature header.
pub const SIGNATURE_HEADER: &str = "Livetally-Signature";
/// Standard Webhooks: the event id, the same on every retry (receivers deduplicate on it).
pub const ID_HEADER: &str = "webhook-id";
/// Standard Webhooks: unix seconds of this attempt.
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// Standard Webhooks: `v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`.
pub const STANDARD_SIGNATURE_HEADER: &str = "webhook-signature";
/// The prefix the Standard Webhooks libraries give a base64-encoded secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Standard base64 that takes the key with or without its `=` padding, as the reference
/// Python library does (it appends padding before decoding).
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // unwrap: HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// `t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`
pub fn signature(secret: &[u8], t: i64, body: &str) -> String {
    let mac = hmac_sha256(secret, &[t.to_string().as_bytes(), b".", body.as_bytes()]);
    format!("t={t},v1={}", hex::encode(mac))
}

/// The key bytes a `whsec_<base64>` secret stands for; `None` when the secret has another
/// form (or the part after the prefix is not base64 of at least one byte).
pub fn decode_whsec(secret: &str) -> Option<Vec<u8>> {
    let encoded = secret.strip_prefix(SECRET_PREFIX)?;
    LENIENT_BASE64.decode(encoded).ok().filter(|key| !key.is_empty())
}

/// `v1,<base64 HMAC-SHA256(key, "<id>.<t>.<body>")>`
pub fn standard_signature(key: &[u8], id: &str, t: i64, body: &str) -> String {
    let mac = hmac_sha256(
        key,
        &[id.as_bytes(), b".", t.to_string().as_bytes(), b".", body.as_bytes()],
    );
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac))
}

/// Signs requests with one `--webhook-secret` in both schemes.
#[derive(Clone)]
pub struct Signer {
    /// The secret's UTF-8 bytes: the key of `Livetally-Signature`.
    secret: Vec<u8>,
    /// The key of `webhook-signature`.
    standard_key: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer { .. }")
    }
}

impl Signer {
    pub fn new(secret: &str) -> Self {
        let standard_key = match decode_whsec(secret) {
            Some(key) => key,
            None => {
                if secret.starts_with(SECRET_PREFIX) {
                    // The operator meant a library secret; receivers given it will not verify.
                    tracing::warn!(
                        "--webhook-secret starts with {SECRET_PREFIX} but the rest is not base64: \
                         webhook-signature is keyed with the whole secret as text"
                    );
                }
                secret.as_bytes().to_vec()
            }
        };
        Self {
            secret: secret.as_bytes().to_vec(),
            standard_key,
        }
    }

    /// Every signing header of one attempt to deliver event `id` with `body` at `t` (unix s).
    pub fn headers(&self, id: &str, t: i64, body: &str) -> [(&'static str, String); 4] {
        [
            (SIGNATURE_HEADER, signature(&self.secret, t, body)),
            (ID_HEADER, id.to_owned()),
            (TIMESTAMP_HEADER, t.to_string()),
            (
                STANDARD_SIGNATURE_HEADER,
                standard_signature(&self.standard_key, id, t, body),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body of the vectors docs/webhooks.md shows (scripts/check-webhook-docs.py runs
    /// the doc's snippets on them).
    const BODY: &str = r#"{"id":"launch-1","type":"campaign.milestone","campaign":"launch","at":1764500000000,"data":{"metric":"like","threshold":100000,"value":100003}}"#;

    #[test]
    fn signatures_match_the_documented_vector() {
        assert_eq!(
            signature(b"whsec-test-0123456789", 1764500000, BODY),
            "t=1764500000,v1=e64f8986d645d4268afcfa892bc1858a3d9e5902dd6b999b9cc8c126545673d8"
        );
    }

    /// The documented Standard Webhooks vectors: one `whsec_` secret (key = its base64),
    /// one plain secret (key = its text).
    #[test]
    fn standard_signatures_match_the_documented_vectors() {
        let whsec = Signer::new("whsec_BwgJCgsMDQ4PEBESExQVFhcYGRobHB0e");
        let [legacy, id, t, sig] = whsec.headers("launch-1", 1764500000, BODY);
        assert_eq!(id, (ID_HEADER, "launch-1".to_owned()));
        assert_eq!(t, (TIMESTAMP_HEADER, "1764500000".to_owned()));
        assert_eq!(sig.0, STANDARD_SIGNATURE_HEADER);
        assert_eq!(sig.1, "v1,BzPNdvQfZqqZp9a5w5SVhdk4Es6KMFQ3nlPGS1r24GM=");
        // Livetally-Signature stays keyed with the secret's text.
        let text_keyed = signature(b"whsec_BwgJCgsMDQ4PEBESExQVFhcYGRobHB0e", 1764500000, BODY);
        assert_eq!(legacy, (SIGNATURE_HEADER, text_keyed));

        let plain = Signer::new("whsec-test-0123456789");
        let [_, _, _, sig] = plain.headers("launch-1", 1764500000, BODY);
        assert_eq!(sig.1, "v1,EYhskeJtGEnFs6JBrdhKbZfHmqcBCHRgttHE/xYS65Y=");
    }

    #[test]
    fn only_a_whsec_secret_with_base64_after_the_prefix_is_decoded() {
        assert_eq!(decode_whsec("whsec_AAEC"), Some(vec![0, 1, 2]));
        assert_eq!(decode_whsec("whsec_AAE"), Some(vec![0, 1]), "padding is optional");
        assert_eq!(decode_whsec("whsec_AAE="), Some(vec![0, 1]));
        assert_eq!(decode_whsec("whsec-AAEC"), None);
        assert_eq!(decode_whsec("AAEC"), None);
        assert_eq!(decode_whsec("whsec_"), None);
        assert_eq!(decode_whsec("whsec_not base64!"), None);
        let fallback = Signer::new("whsec_not base64!");
        assert_eq!(fallback.standard_key, b"whsec_not base64!");
    }
}
