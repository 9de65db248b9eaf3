//! Reading an org upload: CSV (header `code,parent,name`, RFC 4180 quoting, with the `csv`
//! crate) or NDJSON (one `{"code","parent","name"}` object a line). Both read from any
//! `Read`, record by record, straight into a [`TreeBuilder`]: memory holds the tree being
//! built and one record, never the body. The first error stops the read and names its
//! line (1-based; a CSV's header is line 1) and field, so an operator can fix the file.

use std::io::{BufRead, BufReader, Read};

use csv::{ByteRecord, ReaderBuilder};
use serde_json::{Map, Value};

use super::tree::{Tree, TreeBuilder};

/// One NDJSON line at most: a unit is ~500 bytes at worst, so a longer line is not one.
const MAX_NDJSON_LINE: u64 = 64 * 1024;

/// The columns a CSV header must name, in any order.
const COLUMNS: [&str; 3] = ["code", "parent", "name"];

/// Why an upload was refused: the 400's `line`, `field` and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct UploadError {
    pub line: u64,
    /// `header`, `code`, `parent`, `name`, `columns`, `json`, `units` or `body`.
    pub field: &'static str,
    pub message: String,
}

fn error(line: u64, field: &'static str, message: impl Into<String>) -> UploadError {
    UploadError {
        line,
        field,
        message: message.into(),
    }
}

/// A failed read of the body (the client went away, or the body passed its cap: the
/// reader says which in its message).
fn body_error(line: u64, e: &std::io::Error) -> UploadError {
    error(line, "body", format!("could not read the body: {e}"))
}

/// Reads a CSV org. See the module doc.
pub fn parse_csv(reader: impl Read) -> Result<Tree, UploadError> {
    let mut csv = ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(reader);
    let mut record = ByteRecord::new();
    let mut line = 1;
    let csv_error = |e: csv::Error, line: u64| match e.kind() {
        csv::ErrorKind::Io(io) => body_error(line, io),
        _ => error(line, "body", format!("unreadable CSV: {e}")),
    };
    if !csv.read_byte_record(&mut record).map_err(|e| csv_error(e, 1))? {
        return Err(error(1, "header", "the file is empty: the header is code,parent,name"));
    }
    let columns = header_columns(&record)?;
    let mut units = TreeBuilder::default();
    loop {
        match csv.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(csv_error(e, line + 1)),
        }
        line = record.position().map_or(line + 1, |p| p.line());
        if record.len() > COLUMNS.len() {
            return Err(error(
                line,
                "columns",
                format!("{} columns: a unit has 3", record.len()),
            ));
        }
        let mut cells = [""; 3];
        for (cell, (&at, field)) in cells.iter_mut().zip(columns.iter().zip(COLUMNS)) {
            let bytes = record
                .get(at)
                .ok_or_else(|| error(line, field, format!("{field} is missing (3 columns)")))?;
            *cell = std::str::from_utf8(bytes).map_err(|_| error(line, field, format!("{field} is not UTF-8")))?;
        }
        units
            .push(cells[0], cells[1], cells[2])
            .map_err(|(field, message)| error(line, field, message))?;
    }
    finish(units, line + 1)
}

/// Where each of [`COLUMNS`] is in the header (a UTF-8 byte-order mark, as spreadsheets
/// write, is skipped).
fn header_columns(header: &ByteRecord) -> Result<[usize; 3], UploadError> {
    let bad = || error(1, "header", "the header must be code,parent,name");
    if header.len() != COLUMNS.len() {
        return Err(bad());
    }
    let mut at = [usize::MAX; 3];
    for (i, cell) in header.iter().enumerate() {
        let cell = if i == 0 {
            cell.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(cell)
        } else {
            cell
        };
        let cell = std::str::from_utf8(cell).map_err(|_| bad())?.trim();
        let column = COLUMNS.iter().position(|c| *c == cell).ok_or_else(bad)?;
        if at[column] != usize::MAX {
            return Err(bad());
        }
        at[column] = i;
    }
    Ok(at)
}

/// Reads an NDJSON org. See the module doc. Blank lines are skipped; `parent` may be
/// absent, `null` or `""` for a top-level unit.
pub fn parse_ndjson(reader: impl Read) -> Result<Tree, UploadError> {
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    let mut units = TreeBuilder::default();
    let mut line = 0;
    loop {
        line += 1;
        buf.clear();
        let read = (&mut reader)
            .take(MAX_NDJSON_LINE + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| body_error(line, &e))?;
        if read == 0 {
            break;
        }
        if buf.len() as u64 > MAX_NDJSON_LINE {
            return Err(error(line, "json", format!("line over {MAX_NDJSON_LINE} bytes")));
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let unit: Map<String, Value> =
            serde_json::from_slice(&buf).map_err(|e| error(line, "json", format!("not a JSON object: {e}")))?;
        let (code, parent, name) = ndjson_fields(&unit).map_err(|(field, message)| error(line, field, message))?;
        units
            .push(code, parent, name)
            .map_err(|(field, message)| error(line, field, message))?;
    }
    finish(units, line)
}

/// `code`, `parent` and `name` of one NDJSON unit.
fn ndjson_fields(unit: &Map<String, Value>) -> Result<(&str, &str, &str), (&'static str, String)> {
    if let Some(key) = unit.keys().find(|k| !COLUMNS.contains(&k.as_str())) {
        return Err((
            "json",
            format!("unknown field {key:?}: a unit has code, parent and name"),
        ));
    }
    let text = |field: &'static str| match unit.get(field) {
        Some(Value::String(s)) => Ok(s.as_str()),
        None | Some(Value::Null) if field == "parent" => Ok(""),
        None => Err((field, format!("{field} is missing"))),
        Some(_) => Err((field, format!("{field} must be a string"))),
    };
    Ok((text("code")?, text("parent")?, text("name")?))
}

fn finish(units: TreeBuilder, line: u64) -> Result<Tree, UploadError> {
    if units.is_empty() {
        return Err(error(line, "units", "the file holds no units"));
    }
    Ok(units.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv_err(body: &str) -> (u64, &'static str) {
        let e = parse_csv(body.as_bytes()).unwrap_err();
        (e.line, e.field)
    }

    fn nd_err(body: &str) -> (u64, &'static str) {
        let e = parse_ndjson(body.as_bytes()).unwrap_err();
        (e.line, e.field)
    }

    #[test]
    fn csv_reads_quoted_chinese_names_and_a_bom() {
        let t = parse_csv("\u{feff}code,parent,name\ncn,,中国\ngd,cn,\"广东省, 南方\"\r\n".as_bytes()).unwrap();
        assert_eq!(t.levels(), [1, 1]);
        assert_eq!(t.unit(t.find("gd").unwrap()).name, "广东省, 南方");
        let t = parse_csv("name,code,parent\n中国,cn,\n".as_bytes()).unwrap();
        assert_eq!(t.unit(0).code, "cn");
    }

    #[test]
    fn every_csv_error_names_its_line_and_field() {
        assert_eq!(csv_err(""), (1, "header"));
        assert_eq!(csv_err("code,parent\n"), (1, "header"));
        assert_eq!(csv_err("code,parent,title\n"), (1, "header"));
        assert_eq!(csv_err("code,parent,name\n"), (2, "units"));
        assert_eq!(csv_err("code,parent,name\na,,x\nb c,,y\n"), (3, "code"));
        assert_eq!(csv_err("code,parent,name\na,,x\na,,y\n"), (3, "code"));
        assert_eq!(csv_err("code,parent,name\nb,a,x\na,,y\n"), (2, "parent"));
        assert_eq!(csv_err("code,parent,name\na,,x\nb,a,\n"), (3, "name"));
        assert_eq!(csv_err("code,parent,name\na,,x\nb,a\n"), (3, "name"));
        assert_eq!(csv_err("code,parent,name\na,,x\nb,a,y,z\n"), (3, "columns"));
        assert_eq!(csv_err("code,parent,name\na,,\"x\ny\"\nb,a,\n"), (2, "name"));
        let deep = "code,parent,name\nl1,,x\nl2,l1,x\nl3,l2,x\nl4,l3,x\nl5,l4,x\nl6,l5,x\nl7,l6,x\n";
        assert_eq!(csv_err(deep), (8, "parent"));
        let e = parse_csv(&b"code,parent,name\na,,\xff\n"[..]).unwrap_err();
        assert_eq!((e.line, e.field), (2, "name"));
    }

    #[test]
    fn ndjson_reads_units_and_names_errors_by_line() {
        let body = "{\"code\":\"cn\",\"name\":\"中国\"}\n\n{\"code\":\"gd\",\"parent\":\"cn\",\"name\":\"广东\"}\n";
        let t = parse_ndjson(body.as_bytes()).unwrap();
        assert_eq!(t.levels(), [1, 1]);
        assert_eq!(nd_err(""), (1, "units"));
        assert_eq!(nd_err("{\"code\":\"a\",\"name\":\"x\"}\nnot json\n"), (2, "json"));
        assert_eq!(nd_err("{\"code\":\"a\",\"name\":\"x\",\"extra\":1}\n"), (1, "json"));
        assert_eq!(nd_err("{\"code\":1,\"name\":\"x\"}\n"), (1, "code"));
        assert_eq!(nd_err("{\"code\":\"a\"}\n"), (1, "name"));
        assert_eq!(
            nd_err("{\"code\":\"a\",\"parent\":\"z\",\"name\":\"x\"}\n"),
            (1, "parent")
        );
        let long = format!("{{\"code\":\"a\",\"name\":\"{}\"}}\n", "x".repeat(70_000));
        assert_eq!(nd_err(&long), (1, "json"));
    }
}
