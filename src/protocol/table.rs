//! The protocol's table where others copy it: the JS SDK's constants are a block this test
//! writes (`LIVETALLY_BLESS=1` rewrites it), and docs/protocol.md's tables of close codes
//! and error codes, and every pattern the docs quote, are checked against the table. A
//! value changed in src/protocol/ without its copies fails here, with what differs.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::api::ApiCode;
use super::close;
use super::limits::{self, MAX_COUNT, MAX_MESSAGE_BYTES};
use super::server::ErrorCode;

const SDK: &str = "web/sdk/livetally.js";
const DOCS: &str = "docs/protocol.md";
const BEGIN: &str = "// BEGIN GENERATED from src/protocol/ by src/protocol/table.rs: do not edit.";
const END: &str = "// END GENERATED";
const BLESS: &str = "LIVETALLY_BLESS=1 cargo nextest run --lib protocol::table";
/// The patterns no web file but the SDK writes.
const WEB_ONCE: [&str; 1] = ["CLIENT_ID"];
/// The patterns the SDK checks before it asks the server.
const SDK_PATTERNS: [&str; 5] = ["CLIENT_ID", "CAMPAIGN_ID", "KIND", "REGION", "UNIT_CODE"];

/// The SDK's generated block, markers included.
fn sdk_block() -> String {
    let mut js = format!("{BEGIN}\n// Regenerate: {BLESS}\n");
    js += "/** The server's patterns: viewer and session ids, campaign ids, kinds, regions, unit codes. */\n";
    for (name, pattern) in limits::PATTERNS.iter().filter(|p| SDK_PATTERNS.contains(&p.0)) {
        let _ = writeln!(js, "const {name} = /{pattern}/;");
    }
    js += "/** The server's largest `count` per message. */\n";
    let _ = writeln!(js, "export const MAX_COUNT = {MAX_COUNT};");
    js += "/** Close codes (docs/protocol.md). */\nconst CLOSE = Object.freeze({\n";
    for (name, code) in close::CODES {
        let _ = writeln!(js, "  {name}: {code},");
    }
    js += "});\n/** The `code`s of the socket's `error` message. */\nconst SOCKET_ERROR = Object.freeze({\n";
    for e in ErrorCode::ALL {
        let _ = writeln!(js, "  {}: '{}',", e.code().to_uppercase(), e.code());
    }
    js += "});\n/** The HTTP API's error codes: their status, and the code a LivetallyError reports. */\n";
    js += "const API_ERRORS = Object.freeze([\n";
    for c in ApiCode::ALL {
        let (code, status, sdk) = (c.code(), c.status(), c.sdk_code());
        let _ = writeln!(js, "  {{ code: '{code}', status: {status}, sdk: '{sdk}' }},");
    }
    js += "]);\n";
    js + END
}

fn path(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(file)
}

/// Rows of the first markdown table from the line containing `anchor` on (indented too, as
/// in a list), header and separator left out, each cell trimmed and without backticks.
fn table_after(doc: &str, anchor: &str) -> Vec<Vec<String>> {
    let start = doc.find(anchor).unwrap_or_else(|| panic!("{DOCS}: no {anchor:?}"));
    doc[start..]
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().replace('`', ""))
                .collect()
        })
        .collect()
}

/// Fails with both lists when the first `expected[0].len()` columns of a docs table differ.
fn assert_columns(doc: &str, anchor: &str, expected: &[Vec<String>]) {
    let width = expected.first().map_or(0, Vec::len);
    let found: Vec<Vec<String>> = table_after(doc, anchor)
        .into_iter()
        .map(|mut row| {
            row.truncate(width);
            row
        })
        .collect();
    assert!(
        found == expected,
        "{DOCS}, the table after {anchor:?}, differs from src/protocol/ (edit the docs by hand):\n\
         expected {expected:#?}\nfound {found:#?}"
    );
}

/// 4096 → "4,096", as the docs write numbers.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[test]
fn the_sdk_constants_are_the_tables() {
    let file = path(SDK);
    let text = std::fs::read_to_string(&file).unwrap();
    let (begin, end) = (text.find(BEGIN), text.find(END));
    let (Some(begin), Some(end)) = (begin, end) else {
        panic!("{SDK} has no block between {BEGIN:?} and {END:?}");
    };
    let current = &text[begin..end + END.len()];
    let wanted = sdk_block();
    if current == wanted {
        return;
    }
    if std::env::var_os("LIVETALLY_BLESS").is_some() {
        std::fs::write(&file, text.replacen(current, &wanted, 1)).unwrap();
        return;
    }
    panic!("{SDK}'s generated constants differ from src/protocol/; regenerate with `{BLESS}`.\nexpected:\n{wanted}\nfound:\n{current}");
}

#[test]
fn the_docs_close_codes_are_the_tables() {
    let doc = std::fs::read_to_string(path(DOCS)).unwrap();
    let codes: Vec<Vec<String>> = close::CODES.iter().map(|c| vec![c.1.to_string()]).collect();
    assert_columns(&doc, "### Close codes", &codes);
    let too_big = table_after(&doc, "### Close codes")
        .into_iter()
        .find(|row| row[0] == close::TOO_BIG.to_string())
        .unwrap();
    let limit = format!("{} bytes", thousands(MAX_MESSAGE_BYTES));
    assert!(
        too_big[1].contains(&limit),
        "{DOCS}: the 1009 row must say {limit:?}: {too_big:?}"
    );
}

#[test]
fn the_docs_socket_errors_are_the_tables() {
    let doc = std::fs::read_to_string(path(DOCS)).unwrap();
    let anchor = "| code | meaning | counts towards the 1008 close |";
    let rows: Vec<Vec<String>> = ErrorCode::ALL.iter().map(|e| vec![e.code().to_owned()]).collect();
    assert_columns(&doc, anchor, &rows);
    for (row, e) in table_after(&doc, anchor).iter().zip(ErrorCode::ALL) {
        let counts = if e.is_bad_input() { "yes" } else { "no" };
        assert_eq!(
            row[2],
            counts,
            "{DOCS}: whether `{}` counts towards the 1008 close",
            e.code()
        );
    }
    let bad_count = &table_after(&doc, anchor)[3];
    let limit = format!("1–{MAX_COUNT}");
    assert!(
        bad_count[1].contains(&limit),
        "{DOCS}: bad_count must say {limit:?}: {bad_count:?}"
    );
}

#[test]
fn the_docs_api_errors_are_the_tables() {
    let doc = std::fs::read_to_string(path(DOCS)).unwrap();
    let rows: Vec<Vec<String>> = ApiCode::ALL
        .iter()
        .map(|c| vec![c.code().to_owned(), c.status().to_string(), c.sdk_code().to_owned()])
        .collect();
    assert_columns(&doc, "| code | status | SDK code |", &rows);
}

/// Fails when `file` quotes (between two `quote`s) a `^…$` that is none of the
/// protocol's patterns.
fn assert_quotes_known(file: &Path, quote: char) {
    let known: Vec<String> = limits::PATTERNS.iter().map(|p| p.1.to_string()).collect();
    let text = std::fs::read_to_string(file).unwrap();
    for (at, _) in text.match_indices(&format!("{quote}^")) {
        let quoted = text[at + 1..].split(quote).next().unwrap_or_default();
        if quoted.ends_with('$') {
            assert!(
                known.iter().any(|k| k == quoted),
                "{}: {quoted} is none of {known:?}",
                file.display()
            );
        }
    }
}

/// Every `^…$` the docs, the SDK's types and the OpenAPI document quote is one of the
/// protocol's patterns, so none is left behind when a pattern changes.
#[test]
fn the_docs_quote_only_the_tables_patterns() {
    for entry in std::fs::read_dir(path("docs")).unwrap() {
        let file = entry.unwrap().path();
        if file.extension().is_some_and(|e| e == "md") {
            assert_quotes_known(&file, '`');
        }
    }
    assert_quotes_known(&path("web/sdk/livetally.d.ts"), '`');
    assert_quotes_known(&path("src/http/openapi.json"), '"');
}

/// The viewer-id pattern is the SDK's alone: no other web file, and no other line of the
/// SDK, writes it; nor does the SDK write any other pattern outside its block. (The pages
/// and the widget still write the campaign-id, kind and region patterns: once they take
/// them from the SDK, every pattern joins [`WEB_ONCE`].)
#[test]
fn the_web_writes_each_pattern_once() {
    let mut files = vec![path("web")];
    while let Some(dir) = files.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let file = entry.unwrap().path();
            if file.is_dir() {
                // Build outputs (gitignored) and installed packages are not sources.
                if !file.ends_with("dist") && !file.ends_with("node_modules") {
                    files.push(file);
                }
                continue;
            }
            if file.extension().is_none_or(|e| e != "js" && e != "mjs" && e != "html") {
                continue;
            }
            let mut text = std::fs::read_to_string(&file).unwrap();
            let sdk = file == path(SDK);
            if sdk {
                let block = text.find(BEGIN).zip(text.find(END)).map(|(b, e)| b..e);
                text.replace_range(block.expect("the SDK's generated block"), "");
            }
            for (name, pattern) in limits::PATTERNS.iter().filter(|p| sdk || WEB_ONCE.contains(&p.0)) {
                let regex = pattern.to_string();
                let body = &regex[1..regex.len() - 1];
                assert!(
                    !text.contains(body),
                    "{} writes {name} ({regex}): take it from the SDK",
                    file.display()
                );
            }
        }
    }
}

#[test]
fn every_api_status_is_an_http_error_status() {
    for c in ApiCode::ALL {
        assert!((400..600).contains(&c.status()), "{c:?}");
    }
    assert_eq!(thousands(4096), "4,096");
    assert_eq!(thousands(100), "100");
    assert_eq!(thousands(1_000_000), "1,000,000");
}
