//! How deeply a request body nests, found in one linear pass before the body is
//! parsed, so that no body makes the parser's work grow faster than its size.
//!
//! libyaml (under serde_yaml_ng) reads a whole document into events before anything
//! can refuse it, and its work per token grows with the flow nesting (`[`, `{`): a
//! 100 KB body of `{a: {a: ...` takes over a second, and the 3 MiB body limit
//! allows a thousand times that. So the depth is measured first, here, and a body
//! nested deeper than [`MAX_DEPTH`] levels is refused; below the bound the parser's
//! work is linear in the size. kube-apiserver's JSON decoder allows 10000 levels;
//! berth's objects nest about a dozen deep, and serde refuses more than 128 anyway,
//! after the whole document was parsed.
//!
//! For YAML the measure has to see the structure libyaml sees, or a body could hide
//! its nesting from it (a `[` inside what libyaml scans as a quoted or block scalar
//! is text; one outside is structure). So [`yaml`] follows libyaml's scanner, token
//! by token: where tokens start, quoted, plain and block scalars (whose extent
//! depends on the block indentation, hence the indentation stack and the one simple
//! key of the block context), comments, anchors and tags. It counts a level for
//! each flow collection and each block indentation; it never stops early, so a body
//! libyaml gives up on is measured to its end all the same.

/// The deepest nesting a request body may have.
pub const MAX_DEPTH: usize = 100;

/// Where a body first nests deeper than the limit: 1-based line and column
/// (characters), for the error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooDeep {
    pub line: usize,
    pub column: usize,
}

/// Checks a JSON body; exact for valid JSON (an invalid one fails to parse anyway,
/// in linear time).
pub fn json(body: &[u8], max_depth: usize) -> Result<(), TooDeep> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let (mut line, mut line_start) = (1, 0);
    for (i, &byte) in body.iter().enumerate() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max_depth {
                    let column = String::from_utf8_lossy(&body[line_start..=i]).chars().count();
                    return Err(TooDeep { line, column });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'\n' => {
                line += 1;
                line_start = i + 1;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks a YAML body (UTF-8, as the caller has made sure).
pub fn yaml(body: &str, max_depth: usize) -> Result<(), TooDeep> {
    yaml::measure(body, max_depth)
}

mod yaml;

#[cfg(test)]
mod tests;
