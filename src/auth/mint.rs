//! `livetally token`: a join token minted from the shell with the node's own key, for a
//! test, a script or a backend that has no JWT library at hand.

use std::time::Duration;

use clap::Args;

use super::{is_unit_code, Auth, JoinClaims, MAX_JOIN_TTL_S};
use crate::campaign::{is_campaign_id, is_client_id, is_region};
use crate::config::Config;
use crate::util::duration::parse_duration;

/// What the token says; the key comes from the node's settings beside it.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// Campaign the token admits to (it is not looked up: a node refuses the token if the
    /// campaign does not exist or does not take tokens).
    #[arg(long, value_name = "ID", value_parser = parse_campaign)]
    pub campaign: String,

    /// How long the token is valid (e.g. 15m, 24h; at most 30 days).
    #[arg(long, default_value = "24h", value_parser = parse_ttl)]
    pub ttl: Duration,

    /// The viewer id a socket with this token gets: one person counts once, whatever
    /// their sockets (8-64 of A-Z a-z 0-9 _ -).
    #[arg(long, value_name = "VIEWER", value_parser = parse_sub)]
    pub sub: Option<String>,

    /// The viewer's region (1-16 of A-Z a-z 0-9 -); overrides the edge header and the query.
    #[arg(long, value_parser = parse_region)]
    pub region: Option<String>,

    /// The viewer's unit code in the campaign's organisation (1-32 of A-Z a-z 0-9 _ -).
    #[arg(long, value_name = "CODE", value_parser = parse_unit)]
    pub unit: Option<String>,

    /// Print `{"token":…,"expires_at":…}` (ms) as `POST …/tokens` answers, not the token alone.
    #[arg(long)]
    pub json: bool,
}

fn parse_campaign(s: &str) -> Result<String, String> {
    checked(s, is_campaign_id, "is not a campaign id")
}

fn parse_sub(s: &str) -> Result<String, String> {
    checked(s, is_client_id, "is not a viewer id (8-64 of A-Z a-z 0-9 _ -)")
}

fn parse_region(s: &str) -> Result<String, String> {
    checked(s, is_region, "is not a region (1-16 of A-Z a-z 0-9 -)")
}

fn parse_unit(s: &str) -> Result<String, String> {
    checked(s, is_unit_code, "is not a unit code (1-32 of A-Z a-z 0-9 _ -)")
}

fn checked(s: &str, valid: fn(&str) -> bool, why: &str) -> Result<String, String> {
    if valid(s) {
        Ok(s.to_owned())
    } else {
        Err(format!("{s:?} {why}"))
    }
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    let ttl = parse_duration(s)?;
    if ttl < Duration::from_secs(1) || ttl.as_secs() > MAX_JOIN_TTL_S {
        return Err("must be from 1s to 30 days".to_owned());
    }
    Ok(ttl)
}

/// What the deployment's store holds for the join key, when `livetally token` was given
/// its store flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredJoinKey {
    /// The deployment's key: what every node signs and verifies with.
    Key(Vec<u8>),
    /// None yet (`livetally upgrade-store` has not run): nodes still sign with the key
    /// derived from the first operator token.
    NotYet,
}

/// Why no token can be minted with `node`'s settings.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(
        "no key to sign with: give the node's --join-secret, or its store flags (--redis or \
         --redis-cluster: the key is kept in the store); a node on the memory store makes up \
         its key at each start, so no token minted elsewhere is valid there"
    )]
    NoKey,
    #[error(
        "the store has no join key yet (run `livetally upgrade-store`), and nodes sign with the \
         key derived from the first operator token: give --operator-token too"
    )]
    NoOperatorToken,
}

/// The token for `args`, signed with the key `node` would verify it with, and its expiry
/// in unix seconds. `stored`: what the store holds, when it was asked (no `--join-secret`
/// and store flags given).
pub fn mint(
    args: &TokenArgs,
    node: &Config,
    stored: Option<&StoredJoinKey>,
    now_s: u64,
) -> Result<(String, u64), MintError> {
    node.validate()?;
    let auth = Auth::new(&node.operator_token, &node.join_secret);
    if node.join_secret.is_empty() {
        match stored {
            None => return Err(MintError::NoKey),
            Some(StoredJoinKey::Key(key)) => auth.use_stored_join_key(key),
            Some(StoredJoinKey::NotYet) if node.operator_token.is_empty() => return Err(MintError::NoOperatorToken),
            Some(StoredJoinKey::NotYet) => {}
        }
    }
    let exp = now_s + args.ttl.as_secs();
    let token = auth.mint_join(&JoinClaims {
        campaign: args.campaign.clone(),
        exp,
        sub: args.sub.clone(),
        region: args.region.clone(),
        unit: args.unit.clone(),
    });
    Ok((token, exp))
}

/// What `livetally token` prints on stdout: the token, or the JSON of `POST …/tokens`.
pub fn output(args: &TokenArgs, token: &str, exp: u64) -> String {
    if args.json {
        serde_json::json!({"token": token, "expires_at": exp * 1000}).to_string()
    } else {
        token.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        token: TokenArgs,
        #[command(flatten)]
        node: Config,
    }

    fn cli(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("livetally").chain(args.iter().copied()))
    }

    #[test]
    fn a_minted_token_is_one_the_node_admits() {
        let c = cli(&[
            "--campaign",
            "launch",
            "--ttl",
            "15m",
            "--sub",
            "viewer-0001",
            "--unit",
            "gd-0755",
            "--operator-token",
            "test-operator-token-0123456789",
        ])
        .unwrap();
        let now = (crate::util::now_ms() / 1000) as u64;
        let stored = StoredJoinKey::Key(b"the-deployment-join-key-0123456789".to_vec());
        let (token, exp) = mint(&c.token, &c.node, Some(&stored), now).unwrap();
        assert_eq!(exp, now + 900);
        let node = Auth::new(&["test-operator-token-0123456789".into()], &[]);
        node.use_stored_join_key(b"the-deployment-join-key-0123456789");
        let claims = node.verify_join(Some(&token), "launch", now).unwrap();
        assert_eq!(claims.sub.as_deref(), Some("viewer-0001"));
        assert_eq!(claims.unit.as_deref(), Some("gd-0755"));
        assert_eq!(claims.region, None);
    }

    #[test]
    fn bad_claims_and_a_missing_key_are_refused() {
        assert!(cli(&["--campaign", "launch", "--sub", "short"]).is_err());
        assert!(cli(&["--campaign", "launch", "--ttl", "721h"]).is_err());
        assert!(cli(&["--campaign", "launch", "--unit", "no spaces"]).is_err());
        let c = cli(&["--campaign", "launch"]).unwrap();
        assert!(matches!(mint(&c.token, &c.node, None, 0), Err(MintError::NoKey)));
        // An operator token alone names no key: the node's is random (in its store).
        let c = cli(&[
            "--campaign",
            "launch",
            "--operator-token",
            "test-operator-token-0123456789",
        ])
        .unwrap();
        assert!(matches!(mint(&c.token, &c.node, None, 0), Err(MintError::NoKey)));
        let c = cli(&["--campaign", "launch"]).unwrap();
        let not_yet = Some(&StoredJoinKey::NotYet);
        assert!(matches!(
            mint(&c.token, &c.node, not_yet, 0),
            Err(MintError::NoOperatorToken)
        ));
    }

    #[test]
    fn before_upgrade_store_the_derived_key_signs() {
        let c = cli(&[
            "--campaign",
            "launch",
            "--operator-token",
            "test-operator-token-0123456789",
        ])
        .unwrap();
        let now = (crate::util::now_ms() / 1000) as u64;
        let (token, _) = mint(&c.token, &c.node, Some(&StoredJoinKey::NotYet), now).unwrap();
        let node = Auth::new(&["test-operator-token-0123456789".into()], &[]);
        assert!(node.verify_join(Some(&token), "launch", now).is_ok());
    }
}
