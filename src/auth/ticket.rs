//! Operator tickets: how an operator socket authenticates without the operator token in
//! its URL (URLs end up in access logs, browser history and proxies' traces).
//!
//! `POST /api/v1/campaigns/{id}/tickets` with the bearer token mints one; the socket
//! presents it as `?ticket=`. A ticket is `v1.<expires ms>.<nonce>.<HMAC-SHA256>` over the
//! campaign, the expiry and the nonce, with the deployment's ticket key (the store's, so
//! any node verifies what another minted). It lives [`TICKET_TTL`] and is spent once: the
//! node that admits it marks its nonce in the store (`SET NX`), so one written in a log is
//! worth nothing. Why a ticket and not a subprotocol: `docs/protocol.md`.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{random_id, Auth, TokenError, B64};

/// How long a ticket is valid: enough for a page to open its socket (and retry once
/// after a slow network), short enough that a leaked one is stale by the time it is read.
pub const TICKET_TTL: Duration = Duration::from_secs(60);

/// The version prefix: a later format can be told apart.
const PREFIX: &str = "v1";

/// A verified ticket, to be spent in the store before the socket is admitted.
#[derive(Debug, PartialEq, Eq)]
pub struct Spend {
    pub nonce: String,
    /// What is left of its life: the nonce stays spent at least that long.
    pub ttl: Duration,
}

impl Auth {
    /// A ticket for an operator socket on `campaign`, and when it expires (unix ms).
    pub fn mint_ticket(&self, campaign: &str, now_ms: i64) -> (String, i64) {
        let exp = now_ms + TICKET_TTL.as_millis() as i64;
        let nonce = random_id(16);
        let mac = B64.encode(self.ticket_mac(campaign, exp, &nonce).finalize().into_bytes());
        (format!("{PREFIX}.{exp}.{nonce}.{mac}"), exp)
    }

    /// Checks `ticket` for `campaign` at `now_ms`: its HMAC, and that it is alive and was
    /// minted for at most [`TICKET_TTL`]. Spending it is the caller's (the store's) part.
    pub fn verify_ticket(&self, ticket: &str, campaign: &str, now_ms: i64) -> Result<Spend, TokenError> {
        let mut parts = ticket.split('.');
        let (Some(PREFIX), Some(exp), Some(nonce), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Invalid);
        };
        let exp: i64 = exp.parse().map_err(|_| TokenError::Invalid)?;
        let mac = B64.decode(mac).map_err(|_| TokenError::Invalid)?;
        // Constant time: the comparison reveals nothing of the right MAC.
        self.ticket_mac(campaign, exp, nonce)
            .verify_slice(&mac)
            .map_err(|_| TokenError::Invalid)?;
        let left = exp - now_ms;
        if left <= 0 || left > TICKET_TTL.as_millis() as i64 {
            return Err(TokenError::Invalid);
        }
        Ok(Spend {
            nonce: nonce.to_owned(),
            ttl: Duration::from_millis(left as u64),
        })
    }

    fn ticket_mac(&self, campaign: &str, exp: i64, nonce: &str) -> Hmac<Sha256> {
        // unwrap: HMAC takes a key of any length.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.ticket_key).unwrap();
        mac.update(format!("livetally-ticket\n{campaign}\n{exp}\n{nonce}").as_bytes());
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(key: &str) -> Auth {
        Auth::new(&["operator-token-123456".into()], &[]).with_ticket_key(key.as_bytes().to_vec())
    }

    #[test]
    fn a_ticket_verifies_for_its_campaign_until_it_expires() {
        let a = auth("ticket-key-0123456789");
        let now = 1_000_000;
        let (t, exp) = a.mint_ticket("c1", now);
        assert_eq!(exp, now + 60_000);
        assert!(!t.contains("operator-token"));
        let spend = a.verify_ticket(&t, "c1", now + 1_000).unwrap();
        assert_eq!(spend.ttl, Duration::from_secs(59));
        assert_eq!(
            a.verify_ticket(&t, "c1", now + 59_999).unwrap().ttl,
            Duration::from_millis(1)
        );
        assert_eq!(
            a.verify_ticket(&t, "c1", now + 60_000),
            Err(TokenError::Invalid),
            "dead after 60 s"
        );
        assert_eq!(
            a.verify_ticket(&t, "c2", now),
            Err(TokenError::Invalid),
            "another campaign"
        );
        // Another deployment's key, and a MAC changed in its last character.
        assert_eq!(
            auth("other-key-0123456789").verify_ticket(&t, "c1", now),
            Err(TokenError::Invalid)
        );
        let mut forged = t.clone();
        let last = if t.ends_with('A') { "B" } else { "A" };
        forged.replace_range(t.len() - 1.., last);
        assert_eq!(a.verify_ticket(&forged, "c1", now), Err(TokenError::Invalid));
    }

    #[test]
    fn a_changed_expiry_or_malformed_ticket_is_refused() {
        let a = auth("ticket-key-0123456789");
        let (t, exp) = a.mint_ticket("c1", 1_000_000);
        let later = t.replacen(&exp.to_string(), &(exp + 600_000).to_string(), 1);
        assert_eq!(a.verify_ticket(&later, "c1", 1_000_000), Err(TokenError::Invalid));
        for bad in ["", "v1", "v1.1.2", "v1.x.n.m", "v2.1.2.3", &format!("{t}.more")] {
            assert_eq!(a.verify_ticket(bad, "c1", 1_000_000), Err(TokenError::Invalid), "{bad}");
        }
    }
}
