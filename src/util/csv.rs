//! The one way the node writes a CSV cell (the registrations export and the report both
//! use it), so a spreadsheet opening the file reads every cell as the text it was.
//!
//! Quoting (RFC 4180, quotes doubled) covers more than the RFC's comma, quote and line
//! break: a `;` or a tab is a separator to Excel in many locales (it guesses from the
//! system's list separator), so a cell holding either is quoted too. Formula injection
//! (OWASP "CSV Injection"): a cell that begins with `=`, `+`, `-`, `@`, a tab or a CR is a
//! formula to a spreadsheet, so it gets a leading `'`, unless it is a number (`-5` stays a
//! number). An id is never a number to its reader, so [`id`] prefixes `-1234567` too: the
//! docs say a leading `'` belongs to the export, not to the value. (The `csv` crate's
//! writer picks one quoting style for every cell and never quotes `;`, so it cannot say
//! this rule; the rule is a dozen lines.)

/// Characters that make a cell quoted: RFC 4180's, plus the separators Excel may use.
const QUOTED: [char; 6] = [',', ';', '"', '\t', '\r', '\n'];

/// First characters that make a spreadsheet read a cell as a formula.
const FORMULA_LEADS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// Appends `value` as one cell of free text (a sign-up value, a title, a field name).
pub fn text(out: &mut String, value: &str) {
    cell(out, value, value.parse::<f64>().is_err());
}

/// Appends `value` as one cell holding an identifier: a formula lead is defused even when
/// the id reads as a number.
pub fn id(out: &mut String, value: &str) {
    cell(out, value, true);
}

fn cell(out: &mut String, value: &str, unless_number: bool) {
    let guard = unless_number && value.starts_with(FORMULA_LEADS);
    let quote = value.contains(QUOTED);
    if quote {
        out.push('"');
    }
    if guard {
        out.push('\'');
    }
    if quote {
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_cell(v: &str) -> String {
        let mut s = String::new();
        text(&mut s, v);
        s
    }

    fn id_cell(v: &str) -> String {
        let mut s = String::new();
        id(&mut s, v);
        s
    }

    #[test]
    fn separators_quotes_and_line_breaks_are_quoted() {
        assert_eq!(text_cell("plain 北京"), "plain 北京");
        assert_eq!(text_cell("a,b"), "\"a,b\"");
        assert_eq!(text_cell("x;=1+1"), "\"x;=1+1\"");
        assert_eq!(text_cell("a\tb"), "\"a\tb\"");
        assert_eq!(text_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(text_cell("two\nlines"), "\"two\nlines\"");
        assert_eq!(text_cell("two\r\nlines"), "\"two\r\nlines\"");
        assert_eq!(text_cell(""), "");
        assert_eq!(text_cell("a=b"), "a=b");
    }

    #[test]
    fn formula_leads_are_defused_unless_a_number() {
        assert_eq!(
            text_cell("=HYPERLINK(\"http://x\")"),
            "\"'=HYPERLINK(\"\"http://x\"\")\""
        );
        for lead in ["=1+1", "+1 2", "-x", "@SUM(A1)"] {
            assert_eq!(text_cell(lead), format!("'{lead}"));
        }
        assert_eq!(text_cell("\tx"), "\"'\tx\"");
        assert_eq!(text_cell("\rx"), "\"'\rx\"");
        assert_eq!(text_cell("=1;2"), "\"'=1;2\"");
        assert_eq!(text_cell("-5"), "-5");
        assert_eq!(text_cell("+1.5"), "+1.5");
    }

    #[test]
    fn an_id_that_reads_as_a_number_is_defused_too() {
        assert_eq!(id_cell("-1234567"), "'-1234567");
        assert_eq!(id_cell("-viewer-02"), "'-viewer-02");
        assert_eq!(id_cell("viewer-01"), "viewer-01");
        assert_eq!(id_cell("12345678"), "12345678");
    }
}
