//! Go's `text/tabwriter`, which kubectl's `describe` output is laid out with, so
//! berth's lines up the same way: cells end at a tab; a column is aligned over a
//! run of consecutive lines that all have a cell in it, and each nested column
//! within that run; the last cell of a line (after its last tab) is not aligned.

/// Aligns `text` (cells separated by `\t`) with at least `min_width` per cell and
/// `padding` spaces after the widest.
pub fn align(text: &str, min_width: usize, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|line| line.split('\t').collect()).collect();
    let writer = Writer {
        lines,
        min_width,
        padding,
    };
    let mut out = String::with_capacity(text.len() * 2);
    writer.format(&mut Vec::new(), 0, writer.lines.len(), &mut out);
    out
}

struct Writer<'a> {
    lines: Vec<Vec<&'a str>>,
    min_width: usize,
    padding: usize,
}

impl Writer<'_> {
    /// Go's `format`: finds the blocks of lines that have a cell in column
    /// `widths.len()`, sizes it per block, and recurses into the next column.
    fn format(&self, widths: &mut Vec<usize>, mut line0: usize, line1: usize, out: &mut String) {
        let column = widths.len();
        let mut this = line0;
        while this < line1 {
            if column + 1 >= self.lines[this].len() {
                this += 1;
                continue;
            }
            self.write_lines(widths, line0, this, out);
            line0 = this;
            let mut width = self.min_width;
            while this < line1 && column + 1 < self.lines[this].len() {
                width = width.max(self.lines[this][column].chars().count() + self.padding);
                this += 1;
            }
            widths.push(width);
            self.format(widths, line0, this, out);
            widths.pop();
            line0 = this;
        }
        self.write_lines(widths, line0, line1, out);
    }

    fn write_lines(&self, widths: &[usize], line0: usize, line1: usize, out: &mut String) {
        for i in line0..line1 {
            let cells = &self.lines[i];
            for (j, cell) in cells.iter().enumerate() {
                out.push_str(cell);
                if let Some(&width) = widths.get(j)
                    && j + 1 < cells.len()
                {
                    out.extend(std::iter::repeat_n(' ', width.saturating_sub(cell.chars().count())));
                }
            }
            if i + 1 < self.lines.len() {
                out.push('\n');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_runs_of_lines_as_go_does() {
        let text = "Name:\tweb\nNamespace:\tdefault\nContainers:\n  http:\n    Image:\tnginx\n    Restart Count:\t0\n";
        assert_eq!(
            align(text, 0, 2),
            "Name:       web\nNamespace:  default\nContainers:\n  http:\n    Image:          nginx\n    Restart Count:  0\n"
        );
    }

    #[test]
    fn nested_columns_align_within_their_block() {
        let text = "a:\tb\tc\nlonger:\tb\tc\nx:\tlong cell\tc\n";
        assert_eq!(
            align(text, 0, 2),
            "a:       b          c\nlonger:  b          c\nx:       long cell  c\n"
        );
        // A line with fewer cells ends the inner column's block, not the outer's.
        let text = "a\tb\tc\nlong\tb\nx\tlonger\tc\n";
        assert_eq!(align(text, 0, 1), "a    b c\nlong b\nx    longer c\n");
    }

    #[test]
    fn min_width_and_no_trailing_newline() {
        assert_eq!(align("a\tb", 6, 3), "a     b");
    }
}
