//! Config errors: each names a file, a 1-based line and column, and says
//! what is wrong in words a user can act on.

use std::fmt;
use std::ops::Range;

/// One thing wrong with a config file, at one place in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file as the user named it.
    pub file: String,
    /// 1-based line of the offending key or value; 0 when the error is
    /// about the whole file (it could not be read).
    pub line: usize,
    /// 1-based column, counted in characters (not bytes); 0 with line 0.
    pub col: usize,
    /// One line, no trailing period.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.col, self.message
            )
        }
    }
}

/// Every error found in a config file, in file order; never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The errors, in the order of their place in the file.
    pub fn errors(&self) -> &[ConfigError] {
        &self.0
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// The 1-based (line, column) of byte `offset` in `text`. Columns count
/// characters, so a multi-byte UTF-8 character before the offset counts
/// once; a CRLF line ending is one line break (the `\r` belongs to the
/// line before). An offset past the end or inside a character is clamped
/// back to the nearest character boundary.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// A file the checker reads: the config itself or one it includes. Spans
/// of an included file are shifted by `base`, so that one byte offset
/// names a place in one of the files.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub(crate) file: String,
    pub(crate) text: String,
    pub(crate) base: usize,
}

impl Source {
    /// The offset where the next included file starts (one past this
    /// one's end, so that an empty file still owns an offset).
    pub(crate) fn next_base(&self) -> usize {
        self.base + self.text.len() + 1
    }
}

/// Collects errors for one file and the files it includes while the
/// checker walks them.
pub(crate) struct Diag<'a> {
    file: &'a str,
    text: &'a str,
    included: &'a [Source],
    errors: Vec<(usize, ConfigError)>,
}

impl<'a> Diag<'a> {
    /// Errors at offsets into `text` are `file`'s; at or past an included
    /// file's `base`, that file's.
    pub(crate) fn with_includes(file: &'a str, text: &'a str, included: &'a [Source]) -> Self {
        Diag {
            file,
            text,
            included,
            errors: Vec::new(),
        }
    }

    /// The file, its text and the offset of `at` in it.
    fn place(&self, at: usize) -> (&'a str, &'a str, usize) {
        match self.included.iter().rev().find(|s| at >= s.base) {
            Some(s) => (&s.file, &s.text, at - s.base),
            None => (self.file, self.text, at),
        }
    }

    /// Records `message` at the start of `span` (a byte range of the text).
    pub(crate) fn at(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (file, text, offset) = self.place(span.start);
        let (line, col) = line_col(text, offset);
        self.errors.push((
            span.start,
            ConfigError {
                file: file.to_string(),
                line,
                col,
                message: message.into(),
            },
        ));
    }

    /// The 1-based line where `span` starts (in whichever file it is), for
    /// "first defined at line N".
    pub(crate) fn line(&self, span: &Range<usize>) -> usize {
        let (_, text, offset) = self.place(span.start);
        line_col(text, offset).0
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// How many errors so far: a check compares before and after to know
    /// whether it found one.
    pub(crate) fn count(&self) -> usize {
        self.errors.len()
    }

    /// The errors sorted by place in the file (stable: two at one place
    /// keep the order they were found in).
    pub(crate) fn finish(mut self) -> ConfigErrors {
        self.errors.sort_by_key(|(at, _)| *at);
        ConfigErrors(self.errors.into_iter().map(|(_, e)| e).collect())
    }
}

/// toml's own error (a syntax error, an unknown key, a value of the wrong
/// type) as one `ConfigError`: its span gives the place, and its message,
/// which can run over several lines, is joined into one.
pub(crate) fn from_toml(file: &str, text: &str, e: &toml::de::Error) -> ConfigError {
    let (line, col) = match e.span() {
        Some(span) => line_col(text, span.start),
        None => (1, 1),
    };
    let message = e
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    ConfigError {
        file: file.to_string(),
        line,
        col,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_byte_is_line_one_column_one() {
        assert_eq!(line_col("abc", 0), (1, 1));
        assert_eq!(line_col("abc", 2), (1, 3));
        assert_eq!(line_col("", 0), (1, 1));
    }

    #[test]
    fn a_column_counts_characters_not_bytes() {
        // "é" is two bytes, "🦀" four: the '=' after them is column 4.
        let text = "x\n# é🦀\né🦀 = 1\n";
        let eq = text.find('=').unwrap();
        assert_eq!(line_col(text, eq), (3, 4));
    }

    #[test]
    fn a_crlf_line_ending_is_one_line_break() {
        let text = "a = 1\r\nb = 2\r\n\r\nc = 3\r\n";
        assert_eq!(line_col(text, text.find('b').unwrap()), (2, 1));
        assert_eq!(line_col(text, text.find('c').unwrap()), (4, 1));
        assert_eq!(line_col(text, text.find('3').unwrap()), (4, 5));
    }

    #[test]
    fn an_offset_inside_a_character_or_past_the_end_is_clamped() {
        let text = "é";
        assert_eq!(line_col(text, 1), (1, 1));
        assert_eq!(line_col(text, 99), (1, 2));
    }

    #[test]
    fn errors_display_one_per_line_as_file_line_col_message() {
        let errs = ConfigErrors(vec![
            ConfigError {
                file: "a.toml".into(),
                line: 3,
                col: 8,
                message: "bad".into(),
            },
            ConfigError {
                file: "a.toml".into(),
                line: 0,
                col: 0,
                message: "cannot read".into(),
            },
        ]);
        assert_eq!(errs.to_string(), "a.toml:3:8: bad\na.toml: cannot read");
    }
}
