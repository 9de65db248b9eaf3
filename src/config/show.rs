//! The effective settings as `livetally config check` prints them: TOML a file could hold,
//! each line saying where its value came from, with every secret masked (tokens, secrets,
//! and passwords or query values inside URLs), so the output can be pasted into a ticket.

use clap::{ArgAction, ArgMatches, Args, Command};

use super::file::FileSettings;
use super::Config;

/// Flags whose whole value is a secret.
const SECRETS: &[&str] = &["operator_token", "join_secret", "webhook_secret"];

/// Flags holding URLs that may carry a password or a token.
const URLS: &[&str] = &["redis", "redis_cluster", "webhook_url"];

/// What a secret is shown as.
const MASK: &str = "********";

/// One line per visible flag of `serve`, as `key = value  # source`, or `# key: not set`.
pub fn effective(m: &ArgMatches, file: Option<&FileSettings>) -> String {
    let flags = Config::augment_args(Command::new("livetally"));
    let width = flags
        .get_arguments()
        .filter_map(|a| a.get_long())
        .map(str::len)
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for arg in flags.get_arguments().filter(|a| !a.is_hide_set()) {
        let (id, long) = (arg.get_id().as_str(), arg.get_long().unwrap_or_default());
        let Some(raw) = m.get_raw(id) else {
            out.push_str(&format!("# {long}: not set\n"));
            continue;
        };
        let values: Vec<String> = raw.map(|v| mask(id, &v.to_string_lossy())).collect();
        let value = match arg.get_action() {
            ArgAction::SetTrue => values.first().cloned().unwrap_or_default(),
            ArgAction::Append => format!("[{}]", values.iter().map(|v| quote(v)).collect::<Vec<_>>().join(", ")),
            _ => values.first().map(|v| scalar(v)).unwrap_or_default(),
        };
        let source = match m.value_source(id) {
            Some(clap::parser::ValueSource::CommandLine) => format!("--{long}"),
            Some(clap::parser::ValueSource::EnvVariable) => arg
                .get_env()
                .map(|e| e.to_string_lossy().into_owned())
                .unwrap_or_default(),
            _ if file.is_some_and(|f| f.has(id)) => "config file".to_owned(),
            _ => "default".to_owned(),
        };
        let line = format!("{long:<width$} = {value}");
        out.push_str(&format!("{line:<width2$}  # {source}\n", width2 = width + 40));
    }
    out
}

/// `value` with its secret parts replaced by [`MASK`].
fn mask(id: &str, value: &str) -> String {
    if SECRETS.contains(&id) {
        MASK.to_owned()
    } else if URLS.contains(&id) {
        mask_url(value)
    } else {
        value.to_owned()
    }
}

/// A URL with the password of its user info (`redis://:pw@host`, `redis://user:pw@host`)
/// and the values of its query masked; a user info without `:` is masked whole, since
/// Redis reads `redis://pw@host` as a password too.
pub fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((info, host)) => match info.split_once(':') {
            Some((user, _)) => format!("{user}:{MASK}@{host}"),
            None => format!("{MASK}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let masked: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) => format!("{k}={MASK}"),
                    None => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", masked.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// A number as TOML writes one, anything else as a string.
fn scalar(v: &str) -> String {
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        v.to_owned()
    } else {
        quote(v)
    }
}

/// A TOML basic string.
fn quote(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if c.is_control() => s.push_str(&format!("\\u{:04X}", c as u32)),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_query_values_in_urls_are_masked() {
        assert_eq!(mask_url("redis://:hunter2@r:6379/0"), "redis://:********@r:6379/0");
        assert_eq!(mask_url("rediss://app:hunter2@r:6380"), "rediss://app:********@r:6380");
        assert_eq!(mask_url("redis://hunter2@r"), "redis://********@r");
        assert_eq!(mask_url("redis://r:6379"), "redis://r:6379");
        assert_eq!(
            mask_url("https://hooks.example/in?token=abc&x"),
            "https://hooks.example/in?token=********&x"
        );
    }

    #[test]
    fn values_are_toml() {
        assert_eq!(scalar("20"), "20");
        assert_eq!(scalar("1s"), "\"1s\"");
        assert_eq!(quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000A\"");
    }
}
