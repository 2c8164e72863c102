//! Spreadsheet exports (XLSX and CSV) in bounded memory.
//!
//! An export is a sequence of sheets, each a header row and rows of
//! [`Cell`]s that arrive page by page from the database:
//!
//! - CSV ([`csv_header`], [`csv_rows`]): UTF-8 with a byte-order mark so that
//!   Excel reads the Chinese; the handler streams each page to the client as
//!   it is read, so memory holds one page.
//! - XLSX ([`XlsxWriter`]): rust_xlsxwriter in constant-memory mode, which
//!   writes each row to a temporary file as it comes; the workbook is then
//!   zipped into an anonymous temporary file that the handler streams. It
//!   runs on a blocking thread fed page by page through a bounded channel,
//!   so memory holds a page or two whatever the number of rows. Headers are
//!   bold, the header row frozen, columns sized.

use std::io::{Seek, SeekFrom};

use rust_xlsxwriter::{Color, Format, FormatBorder, Workbook, XlsxError};

/// The UTF-8 byte-order mark every CSV export starts with.
pub const BOM: &str = "\u{FEFF}";

/// Rows read from the database per page.
pub const PAGE_ROWS: i64 = 500;

/// One cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Text.
    Text(String),
    /// A whole number.
    Int(i64),
    /// A decimal number.
    Num(f64),
    /// Nothing.
    Empty,
}

impl From<&str> for Cell {
    fn from(s: &str) -> Self {
        Cell::Text(s.to_owned())
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Self {
        Cell::Text(s)
    }
}

impl From<Option<String>> for Cell {
    fn from(s: Option<String>) -> Self {
        s.map_or(Cell::Empty, Cell::Text)
    }
}

impl From<i64> for Cell {
    fn from(n: i64) -> Self {
        Cell::Int(n)
    }
}

impl From<Option<f64>> for Cell {
    fn from(n: Option<f64>) -> Self {
        n.map_or(Cell::Empty, Cell::Num)
    }
}

/// A column: its Chinese header and its width in characters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Column {
    /// Header text.
    pub header: &'static str,
    /// Width (Excel character units; a Chinese character is about 2).
    pub width: f64,
}

/// Shorthand for a [`Column`].
pub const fn col(header: &'static str, width: f64) -> Column {
    Column { header, width }
}

/// The CSV header line of `columns` (no BOM).
pub fn csv_header(columns: &[Column]) -> String {
    let cells: Vec<Cell> = columns.iter().map(|c| Cell::from(c.header)).collect();
    csv_rows(std::slice::from_ref(&cells))
}

/// `rows` as CSV lines (RFC 4180: fields with a comma, quote or line break
/// are quoted, quotes doubled; CRLF line ends, as Excel writes them).
/// A text cell that starts with `=`, `+`, `-` or `@` gets a leading `'`,
/// so a resident's words never run as a formula in a spreadsheet.
pub fn csv_rows(rows: &[Vec<Cell>]) -> String {
    let mut out = String::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            match cell {
                Cell::Text(t) => {
                    let t = defuse(t);
                    if t.contains([',', '"', '\n', '\r']) {
                        out.push('"');
                        out.push_str(&t.replace('"', "\"\""));
                        out.push('"');
                    } else {
                        out.push_str(&t);
                    }
                }
                Cell::Int(n) => out.push_str(&n.to_string()),
                Cell::Num(n) => out.push_str(&n.to_string()),
                Cell::Empty => {}
            }
        }
        out.push_str("\r\n");
    }
    out
}

fn defuse(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@']) {
        std::borrow::Cow::Owned(format!("'{text}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// What the XLSX writer thread is fed.
#[derive(Debug)]
pub enum XlsxPart {
    /// Start a new sheet.
    Sheet {
        /// Its name (at most 31 characters).
        name: String,
        columns: Vec<Column>,
    },
    /// More rows for the current sheet.
    Rows(Vec<Vec<Cell>>),
}

/// Writes an XLSX workbook from [`XlsxPart`]s, a sheet at a time, in
/// constant-memory mode.
pub struct XlsxWriter {
    workbook: Workbook,
    sheets: usize,
    next_row: u32,
    header: Format,
}

impl std::fmt::Debug for XlsxWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XlsxWriter")
            .field("sheets", &self.sheets)
            .field("next_row", &self.next_row)
            .finish_non_exhaustive()
    }
}

impl Default for XlsxWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl XlsxWriter {
    /// An empty workbook.
    pub fn new() -> Self {
        XlsxWriter {
            workbook: Workbook::new(),
            sheets: 0,
            next_row: 0,
            header: Format::new()
                .set_bold()
                .set_background_color(Color::RGB(0x00DD_EBF7))
                .set_border(FormatBorder::Thin),
        }
    }

    /// Adds one part.
    pub fn add(&mut self, part: XlsxPart) -> Result<(), XlsxError> {
        match part {
            XlsxPart::Sheet { name, columns } => {
                let sheet = self.workbook.add_worksheet_with_constant_memory()?;
                sheet.set_name(name)?;
                for (i, c) in columns.iter().enumerate() {
                    let i = u16::try_from(i).map_err(|_| XlsxError::RowColumnLimitError)?;
                    sheet.set_column_width(i, c.width)?;
                    sheet.write_string_with_format(0, i, c.header, &self.header)?;
                }
                sheet.set_freeze_panes(1, 0)?;
                self.sheets += 1;
                self.next_row = 1;
            }
            XlsxPart::Rows(rows) => {
                let index = self.sheets.checked_sub(1).ok_or_else(|| {
                    XlsxError::ParameterError("rows before the first sheet".to_owned())
                })?;
                let sheet = self.workbook.worksheet_from_index(index)?;
                for row in rows {
                    for (i, cell) in row.into_iter().enumerate() {
                        let i = u16::try_from(i).map_err(|_| XlsxError::RowColumnLimitError)?;
                        match cell {
                            Cell::Text(t) => {
                                sheet.write_string(self.next_row, i, t)?;
                            }
                            #[allow(clippy::cast_precision_loss)]
                            Cell::Int(n) => {
                                sheet.write_number(self.next_row, i, n as f64)?;
                            }
                            Cell::Num(n) => {
                                sheet.write_number(self.next_row, i, n)?;
                            }
                            Cell::Empty => {}
                        }
                    }
                    self.next_row += 1;
                }
            }
        }
        Ok(())
    }

    /// Zips the workbook into an anonymous temporary file, rewound.
    pub fn finish(mut self) -> Result<std::fs::File, XlsxError> {
        if self.sheets == 0 {
            self.workbook.add_worksheet();
        }
        let mut file = tempfile::tempfile()?;
        self.workbook.save_to_writer(&mut file)?;
        file.seek(SeekFrom::Start(0))?;
        Ok(file)
    }
}

/// Runs an [`XlsxWriter`] on the parts arriving on `parts` until the
/// sender closes, then zips it. Call on a blocking thread.
pub fn write_xlsx(
    mut parts: tokio::sync::mpsc::Receiver<XlsxPart>,
) -> Result<std::fs::File, XlsxError> {
    let mut writer = XlsxWriter::new();
    while let Some(part) = parts.blocking_recv() {
        writer.add(part)?;
    }
    writer.finish()
}

/// A `Content-Disposition` for a download named `ascii` (fallback) and
/// `name` (UTF-8, RFC 5987).
pub fn content_disposition(ascii: &str, name: &str) -> String {
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_defuses() {
        let rows = vec![vec![
            Cell::from("王秀英"),
            Cell::from("路灯坏了, 晚上\"看不见\""),
            Cell::from("=cmd()"),
            Cell::Int(3),
            Cell::Empty,
        ]];
        assert_eq!(
            csv_rows(&rows),
            "王秀英,\"路灯坏了, 晚上\"\"看不见\"\"\",'=cmd(),3,\r\n"
        );
        assert_eq!(
            csv_header(&[col("诉求人", 10.0), col("事项", 30.0)]),
            "诉求人,事项\r\n"
        );
        assert_eq!(
            content_disposition("ledger.csv", "台账.csv"),
            "attachment; filename=\"ledger.csv\"; filename*=UTF-8''%E5%8F%B0%E8%B4%A6.csv"
        );
    }
}
