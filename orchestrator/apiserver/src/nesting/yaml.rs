//! The YAML measure: libyaml's scanner, as far as where its tokens start and end
//! decides what is structure and what is text (the parent module says why).

use super::TooDeep;

/// Measures a YAML body by scanning it as libyaml does.
pub(super) fn measure(body: &str, max_depth: usize) -> Result<(), TooDeep> {
    let mut scanner = Scanner {
        text: body.as_bytes(),
        pos: 0,
        line: 0,
        column: 0,
        index: 0,
        flow_level: 0,
        indent: -1,
        indents: Vec::new(),
        simple_key_allowed: true,
        key: None,
        max_depth,
    };
    scanner.run()
}

/// The possible simple key of the block context (flow level 0): where it starts.
/// libyaml keeps one per flow level; only the block context's moves the
/// indentation, so only that one matters here.
#[derive(Debug, Clone, Copy)]
struct SimpleKey {
    line: usize,
    column: usize,
    index: usize,
}

/// libyaml's scanner state, as far as token boundaries depend on it. Columns and
/// indices count characters, as libyaml's do.
struct Scanner<'a> {
    text: &'a [u8],
    pos: usize,
    line: usize,
    column: usize,
    index: usize,
    flow_level: usize,
    /// The current block indentation column (-1 at the top level) and those below it.
    indent: i64,
    indents: Vec<i64>,
    simple_key_allowed: bool,
    key: Option<SimpleKey>,
    max_depth: usize,
}

impl Scanner<'_> {
    /// The byte `k` bytes ahead; 0 at the end. libyaml stops at control characters
    /// (its reader refuses them), so they read as the end too.
    fn at(&self, k: usize) -> u8 {
        match self.text.get(self.pos + k) {
            Some(&b) if b >= 0x20 && b != 0x7f => b,
            Some(&b) if matches!(b, b'\t' | b'\n' | b'\r') => b,
            _ => 0,
        }
    }

    fn is_end(&self) -> bool {
        self.at(0) == 0
    }

    /// The length in bytes of the line break at `k` bytes ahead (LF, CR, CRLF, and
    /// the Unicode breaks NEL, LS and PS, as libyaml counts them), or 0.
    fn break_len(&self, k: usize) -> usize {
        match (self.at(k), self.at(k + 1), self.at(k + 2)) {
            (b'\r', b'\n', _) => 2,
            (b'\r' | b'\n', _, _) => 1,
            (0xc2, 0x85, _) => 2,
            (0xe2, 0x80, 0xa8 | 0xa9) => 3,
            _ => 0,
        }
    }

    fn is_break(&self, k: usize) -> bool {
        self.break_len(k) > 0
    }

    fn is_blank(&self, k: usize) -> bool {
        matches!(self.at(k), b' ' | b'\t')
    }

    fn is_blankz(&self, k: usize) -> bool {
        self.is_blank(k) || self.is_break(k) || self.at(k) == 0
    }

    fn is_alpha(&self, k: usize) -> bool {
        matches!(self.at(k), b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'_' | b'-')
    }

    /// Moves over one character (not a line break).
    fn skip(&mut self) {
        let width = match self.at(0) {
            0 => return,
            b if b < 0x80 => 1,
            b if b >= 0xf0 => 4,
            b if b >= 0xe0 => 3,
            _ => 2,
        };
        self.pos = (self.pos + width).min(self.text.len());
        self.column += 1;
        self.index += 1;
    }

    /// Moves over one line break.
    fn skip_line(&mut self) {
        let length = self.break_len(0);
        if length > 0 {
            self.pos += length;
            self.index += if length == 2 && self.text[self.pos - 2] == b'\r' {
                2
            } else {
                1
            };
            self.line += 1;
            self.column = 0;
        }
    }

    fn is_document_indicator(&self) -> bool {
        self.column == 0
            && (self.text[self.pos..].starts_with(b"---") || self.text[self.pos..].starts_with(b"..."))
            && self.is_blankz(3)
    }

    fn depth(&self) -> usize {
        self.indents.len() + self.flow_level
    }

    fn check_depth(&self) -> Result<(), TooDeep> {
        if self.depth() > self.max_depth {
            return Err(TooDeep {
                line: self.line + 1,
                column: self.column + 1,
            });
        }
        Ok(())
    }

    fn roll_indent(&mut self, column: usize) -> Result<(), TooDeep> {
        let column = column as i64;
        if self.flow_level == 0 && self.indent < column {
            self.indents.push(self.indent);
            self.indent = column;
            self.check_depth()?;
        }
        Ok(())
    }

    fn unroll_indent(&mut self, column: i64) {
        if self.flow_level == 0 {
            while self.indent > column {
                self.indent = self.indents.pop().unwrap_or(-1);
            }
        }
    }

    fn save_simple_key(&mut self) {
        if self.flow_level == 0 && self.simple_key_allowed {
            self.key = Some(SimpleKey {
                line: self.line,
                column: self.column,
                index: self.index,
            });
        }
    }

    fn remove_simple_key(&mut self) {
        if self.flow_level == 0 {
            self.key = None;
        }
    }

    /// A simple key must be on one line and at most 1024 characters long.
    fn stale_simple_keys(&mut self) {
        if self
            .key
            .is_some_and(|key| key.line < self.line || key.index + 1024 < self.index)
        {
            self.key = None;
        }
    }

    fn run(&mut self) -> Result<(), TooDeep> {
        loop {
            self.scan_to_next_token();
            self.stale_simple_keys();
            self.unroll_indent(self.column as i64);
            if self.is_end() {
                return Ok(());
            }
            let start = self.pos;
            self.fetch_token()?;
            if self.pos == start {
                // A character libyaml cannot start a token with: it stops there with
                // an error; measuring on is the safe side.
                self.skip();
            }
        }
    }

    fn scan_to_next_token(&mut self) {
        loop {
            if self.column == 0 && self.text[self.pos..].starts_with("\u{feff}".as_bytes()) {
                self.skip();
            }
            while self.at(0) == b' ' || ((self.flow_level > 0 || !self.simple_key_allowed) && self.at(0) == b'\t') {
                self.skip();
            }
            if self.at(0) == b'#' {
                while !self.is_break(0) && !self.is_end() {
                    self.skip();
                }
            }
            if !self.is_break(0) {
                return;
            }
            self.skip_line();
            if self.flow_level == 0 {
                self.simple_key_allowed = true;
            }
        }
    }

    fn fetch_token(&mut self) -> Result<(), TooDeep> {
        let c = self.at(0);
        let in_flow = self.flow_level > 0;
        if self.column == 0 && c == b'%' {
            // A directive: one line, no structure.
            self.unroll_indent(-1);
            self.remove_simple_key();
            self.simple_key_allowed = false;
            while !self.is_break(0) && !self.is_end() {
                self.skip();
            }
            return Ok(());
        }
        if self.is_document_indicator() {
            self.unroll_indent(-1);
            self.remove_simple_key();
            self.simple_key_allowed = false;
            for _ in 0..3 {
                self.skip();
            }
            return Ok(());
        }
        match c {
            b'[' | b'{' => {
                self.save_simple_key();
                self.flow_level += 1;
                self.check_depth()?;
                self.simple_key_allowed = true;
                self.skip();
            }
            b']' | b'}' => {
                self.remove_simple_key();
                self.flow_level = self.flow_level.saturating_sub(1);
                self.simple_key_allowed = false;
                self.skip();
            }
            b',' => {
                self.remove_simple_key();
                self.simple_key_allowed = true;
                self.skip();
            }
            b'-' if self.is_blankz(1) => {
                self.roll_indent(self.column)?;
                self.remove_simple_key();
                self.simple_key_allowed = true;
                self.skip();
            }
            b'?' if in_flow || self.is_blankz(1) => {
                self.roll_indent(self.column)?;
                self.remove_simple_key();
                self.simple_key_allowed = !in_flow;
                self.skip();
            }
            b':' if in_flow || self.is_blankz(1) => {
                // In the flow context the key is the flow level's own, which moves
                // no indentation.
                if in_flow {
                    self.simple_key_allowed = false;
                } else if let Some(key) = self.key.take() {
                    self.roll_indent(key.column)?;
                    self.simple_key_allowed = false;
                } else {
                    self.roll_indent(self.column)?;
                    self.simple_key_allowed = true;
                }
                self.skip();
            }
            b'*' | b'&' => {
                self.save_simple_key();
                self.simple_key_allowed = false;
                self.skip();
                while self.is_alpha(0) {
                    self.skip();
                }
            }
            b'!' => {
                self.save_simple_key();
                self.simple_key_allowed = false;
                self.scan_tag();
            }
            b'|' | b'>' if !in_flow => {
                self.remove_simple_key();
                self.simple_key_allowed = true;
                self.scan_block_scalar();
            }
            b'\'' | b'"' => {
                self.save_simple_key();
                self.simple_key_allowed = false;
                self.scan_quoted_scalar(c);
            }
            _ if self.starts_plain_scalar() => {
                self.save_simple_key();
                self.simple_key_allowed = false;
                self.scan_plain_scalar();
            }
            _ => {}
        }
        Ok(())
    }

    fn starts_plain_scalar(&self) -> bool {
        let c = self.at(0);
        let indicator = self.is_blankz(0) || b"-?:,[]{}#&*!|>'\"%@`".contains(&c);
        !indicator
            || (c == b'-' && !self.is_blank(1))
            || (self.flow_level == 0 && (c == b'?' || c == b':') && !self.is_blankz(1))
    }

    /// `!<verbatim>`, or a handle and a suffix of URI characters.
    fn scan_tag(&mut self) {
        self.skip();
        if self.at(0) == b'<' {
            self.skip();
            while self.is_alpha(0) || b";/?:@&=+$.%!~*'(),[]".contains(&self.at(0)) {
                self.skip();
            }
            if self.at(0) == b'>' {
                self.skip();
            }
            return;
        }
        while self.is_alpha(0) || b";/?:@&=+$.%!~*'()".contains(&self.at(0)) {
            self.skip();
        }
    }

    /// A single- or double-quoted scalar, to its closing quote.
    fn scan_quoted_scalar(&mut self, quote: u8) {
        self.skip();
        loop {
            if self.is_document_indicator() || self.is_end() {
                return; // libyaml's error
            }
            match self.at(0) {
                b'\'' if quote == b'\'' && self.at(1) == b'\'' => {
                    self.skip();
                    self.skip();
                }
                b'\\' if quote == b'"' && self.is_break(1) => {
                    self.skip();
                    self.skip_line();
                }
                b'\\' if quote == b'"' => {
                    self.skip();
                    self.skip();
                }
                c if c == quote => {
                    self.skip();
                    return;
                }
                _ if self.is_break(0) => self.skip_line(),
                _ => self.skip(),
            }
        }
    }

    /// A plain scalar: words and the blanks between them, across lines while they
    /// are indented more than the block (any line in the flow context).
    fn scan_plain_scalar(&mut self) {
        let indent = self.indent + 1;
        let in_flow = self.flow_level > 0;
        let mut leading_blanks = false;
        loop {
            if self.is_document_indicator() || self.at(0) == b'#' {
                break;
            }
            while !self.is_blankz(0) {
                let c = self.at(0);
                if in_flow && c == b':' && b",?[]{}".contains(&self.at(1)) {
                    return; // libyaml's error
                }
                if (c == b':' && self.is_blankz(1)) || (in_flow && b",[]{}".contains(&c)) {
                    break;
                }
                self.skip();
            }
            if !(self.is_blank(0) || self.is_break(0)) {
                break;
            }
            while self.is_blank(0) || self.is_break(0) {
                if self.is_blank(0) {
                    if leading_blanks && (self.column as i64) < indent && self.at(0) == b'\t' {
                        return; // libyaml's error
                    }
                    self.skip();
                } else {
                    self.skip_line();
                    leading_blanks = true;
                }
            }
            if !in_flow && (self.column as i64) < indent {
                break;
            }
        }
        if leading_blanks {
            self.simple_key_allowed = true;
        }
    }

    /// A literal (`|`) or folded (`>`) scalar: its header line, then every line
    /// indented as its first (or as its indentation indicator says), and blank lines.
    fn scan_block_scalar(&mut self) {
        self.skip();
        // The header: a chomping indicator and an indentation indicator, either first.
        let digit = |c: u8| c.is_ascii_digit().then(|| i64::from(c - b'0'));
        let mut increment = None;
        if matches!(self.at(0), b'+' | b'-') {
            self.skip();
            increment = digit(self.at(0));
            if increment.is_some() {
                self.skip();
            }
        } else if let Some(d) = digit(self.at(0)) {
            increment = Some(d);
            self.skip();
            if matches!(self.at(0), b'+' | b'-') {
                self.skip();
            }
        }
        if increment == Some(0) {
            return; // libyaml's error: an indentation indicator of 0
        }
        let increment = increment.unwrap_or(0);
        while self.is_blank(0) {
            self.skip();
        }
        if self.at(0) == b'#' {
            while !self.is_break(0) && !self.is_end() {
                self.skip();
            }
        }
        if !self.is_break(0) {
            return; // libyaml's error, or the end
        }
        self.skip_line();
        let mut indent = if increment > 0 {
            if self.indent >= 0 {
                self.indent + increment
            } else {
                increment
            }
        } else {
            0
        };
        if !self.scan_block_scalar_breaks(&mut indent) {
            return;
        }
        while self.column as i64 == indent && !self.is_end() {
            while !self.is_break(0) && !self.is_end() {
                self.skip();
            }
            if self.is_end() {
                return;
            }
            self.skip_line();
            if !self.scan_block_scalar_breaks(&mut indent) {
                return;
            }
        }
    }

    /// Blank lines and the indentation of the next line; works out the indentation
    /// when `indent` is still 0. False where libyaml fails (a tab as indentation).
    fn scan_block_scalar_breaks(&mut self, indent: &mut i64) -> bool {
        let mut max_indent = 0;
        loop {
            while (*indent == 0 || (self.column as i64) < *indent) && self.at(0) == b' ' {
                self.skip();
            }
            max_indent = max_indent.max(self.column as i64);
            if (*indent == 0 || (self.column as i64) < *indent) && self.at(0) == b'\t' {
                return false;
            }
            if !self.is_break(0) {
                break;
            }
            self.skip_line();
        }
        if *indent == 0 {
            *indent = max_indent.max(self.indent + 1).max(1);
        }
        true
    }
}
