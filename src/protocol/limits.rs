//! The patterns and limits of what clients send, each written once: the server checks with
//! them, its 400 messages quote them, and the SDK's constants and docs/protocol.md are
//! checked against them ([`super::table`]). A pattern is data rather than a regex string,
//! so the check and the `^…$` text a client reads cannot disagree.

use std::fmt;

/// Expands to the largest client message in bytes, as a literal: the close reason quotes it
/// through `concat!`, which takes literals only (so does [`max_count`]).
macro_rules! max_message_bytes {
    () => {
        4096
    };
}
pub(crate) use max_message_bytes;

/// Expands to the largest `count` of one message, as a literal (for `bad_count`'s message).
macro_rules! max_count {
    () => {
        100
    };
}
pub(crate) use max_count;

/// Largest message a client may send; larger ones close the socket with 1009.
pub const MAX_MESSAGE_BYTES: usize = max_message_bytes!();
/// Largest `count` of one `interact` message.
pub const MAX_COUNT: u64 = max_count!();

/// A set of ASCII characters, as a regex bracket expression lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Class {
    upper: bool,
    lower: bool,
    digit: bool,
    /// Further characters, in the order the bracket expression lists them (`-` last).
    extra: &'static str,
}

impl Class {
    fn contains(&self, c: u8) -> bool {
        (self.upper && c.is_ascii_uppercase())
            || (self.lower && c.is_ascii_lowercase())
            || (self.digit && c.is_ascii_digit())
            || self.extra.as_bytes().contains(&c)
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ranges = [(self.upper, "A-Z"), (self.lower, "a-z"), (self.digit, "0-9")];
        let ranges: String = ranges.iter().filter(|r| r.0).map(|r| r.1).collect();
        write!(f, "[{ranges}{}]", self.extra)
    }
}

const fn class(upper: bool, lower: bool, digit: bool, extra: &'static str) -> Class {
    Class {
        upper,
        lower,
        digit,
        extra,
    }
}

/// `^[first][rest]{min,max}$`, or `^[rest]{min,max}$` without a first class: every pattern
/// of the protocol has this shape. Displays as that regex, the text 400 messages and the
/// docs quote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pattern {
    first: Option<Class>,
    rest: Class,
    min: usize,
    max: usize,
}

impl Pattern {
    pub fn matches(&self, s: &str) -> bool {
        let b = s.as_bytes();
        let rest = match self.first {
            Some(first) => match b.split_first() {
                Some((c, rest)) if first.contains(*c) => rest,
                _ => return false,
            },
            None => b,
        };
        (self.min..=self.max).contains(&rest.len()) && rest.iter().all(|c| self.rest.contains(*c))
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("^")?;
        if let Some(first) = self.first {
            write!(f, "{first}")?;
        }
        write!(f, "{}{{{},{}}}$", self.rest, self.min, self.max)
    }
}

/// Viewer and session ids (also a join token's `sub`).
pub const CLIENT_ID: Pattern = Pattern {
    first: None,
    rest: class(true, true, true, "_-"),
    min: 8,
    max: 64,
};
/// Campaign ids: they appear in URLs and Redis keys.
pub const CAMPAIGN_ID: Pattern = Pattern {
    first: Some(class(false, true, true, "")),
    rest: class(false, true, true, "-"),
    min: 0,
    max: 62,
};
/// Interaction kinds (and sign-up field names, which become CSV headers and JSON keys).
pub const KIND: Pattern = Pattern {
    first: Some(class(false, true, false, "")),
    rest: class(false, true, true, "_"),
    min: 0,
    max: 31,
};
/// Regions (`region` query, token claim and edge header).
pub const REGION: Pattern = Pattern {
    first: None,
    rest: class(true, true, true, "-"),
    min: 1,
    max: 16,
};
/// Share channels (`/s/{id}?via=`); anything else counts as `other`.
pub const SHARE_CHANNEL: Pattern = Pattern {
    first: None,
    rest: class(false, true, true, "_-"),
    min: 1,
    max: 32,
};

/// Unit codes of an organisation (a join token's `unit` claim, the `unit` query).
pub const UNIT_CODE: Pattern = Pattern {
    first: None,
    rest: class(true, true, true, "_-"),
    min: 1,
    max: 32,
};

/// Every pattern, with the name the SDK gives it.
pub const PATTERNS: [(&str, Pattern); 6] = [
    ("CLIENT_ID", CLIENT_ID),
    ("CAMPAIGN_ID", CAMPAIGN_ID),
    ("KIND", KIND),
    ("REGION", REGION),
    ("SHARE_CHANNEL", SHARE_CHANNEL),
    ("UNIT_CODE", UNIT_CODE),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_display_as_the_contracts_regexes() {
        assert_eq!(CLIENT_ID.to_string(), "^[A-Za-z0-9_-]{8,64}$");
        assert_eq!(CAMPAIGN_ID.to_string(), "^[a-z0-9][a-z0-9-]{0,62}$");
        assert_eq!(KIND.to_string(), "^[a-z][a-z0-9_]{0,31}$");
        assert_eq!(REGION.to_string(), "^[A-Za-z0-9-]{1,16}$");
        assert_eq!(SHARE_CHANNEL.to_string(), "^[a-z0-9_-]{1,32}$");
    }

    #[test]
    fn patterns_match_as_their_regexes_read() {
        assert!(CLIENT_ID.matches("abcdEF_-9"));
        assert!(!CLIENT_ID.matches("short"));
        assert!(!CLIENT_ID.matches(&"a".repeat(65)));
        assert!(CLIENT_ID.matches(&"a".repeat(64)));
        assert!(!CLIENT_ID.matches("abcdefgh!"));
        assert!(CAMPAIGN_ID.matches("0") && CAMPAIGN_ID.matches("launch-2026"));
        assert!(!CAMPAIGN_ID.matches("") && !CAMPAIGN_ID.matches("-x") && !CAMPAIGN_ID.matches("Upper"));
        assert!(CAMPAIGN_ID.matches(&"a".repeat(63)) && !CAMPAIGN_ID.matches(&"a".repeat(64)));
        assert!(KIND.matches("like") && KIND.matches("a_1") && !KIND.matches("1a") && !KIND.matches("a-b"));
        assert!(REGION.matches("CN-BJ") && !REGION.matches("") && !REGION.matches("a_b"));
        assert!(SHARE_CHANNEL.matches("we-chat_1") && !SHARE_CHANNEL.matches("WeChat"));
        // Bytes, not characters: a multi-byte character is never in a class.
        assert!(!CLIENT_ID.matches("ééééééééé"));
    }
}
