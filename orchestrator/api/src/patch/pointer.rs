//! JSON pointers (RFC 6901): `""` is the whole document, `/a/0/b~1c` names member `b/c`
//! of element 0 of member `a`. `~1` stands for `/` and `~0` for `~`, decoded in that
//! order, so `~01` is the member `~1`.

/// A parsed JSON pointer: its reference tokens, unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pointer {
    pub tokens: Vec<String>,
}

impl Pointer {
    /// Parses `text`, or says what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        if text.is_empty() {
            return Ok(Pointer { tokens: Vec::new() });
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err("a pointer other than \"\" starts with '/'");
        };
        let tokens = rest.split('/').map(unescape).collect::<Result<_, _>>()?;
        Ok(Pointer { tokens })
    }

    /// The pointer to the container of the location, and the location's last token;
    /// `None` for the whole document.
    pub fn split_last(&self) -> Option<(&[String], &str)> {
        let (last, parent) = self.tokens.split_last()?;
        Some((parent, last))
    }

    /// Whether `self` names a location strictly inside `other`'s.
    pub fn is_inside(&self, other: &Pointer) -> bool {
        self.tokens.len() > other.tokens.len() && self.tokens.starts_with(&other.tokens)
    }
}

fn unescape(token: &str) -> Result<String, &'static str> {
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        if c != '~' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('0') => out.push('~'),
            Some('1') => out.push('/'),
            _ => return Err("'~' is followed by neither '0' nor '1'"),
        }
    }
    Ok(out)
}

/// Escapes one member name for use in a pointer.
pub(crate) fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// An array index as RFC 6901 spells it: `0`, or digits without a leading zero.
pub(crate) fn parse_index(token: &str) -> Option<usize> {
    let is_decimal =
        !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) && (token == "0" || !token.starts_with('0'));
    if is_decimal { token.parse().ok() } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_escapes_in_order() {
        let pointer = Pointer::parse("/metadata/annotations/example.com~1x/~01").unwrap();
        assert_eq!(pointer.tokens, ["metadata", "annotations", "example.com/x", "~1"]);
        assert_eq!(Pointer::parse("").unwrap().tokens, Vec::<String>::new());
        assert_eq!(Pointer::parse("/").unwrap().tokens, [""]);
    }

    #[test]
    fn rejects_what_is_not_a_pointer() {
        assert!(Pointer::parse("spec").is_err());
        assert!(Pointer::parse("/a~2").is_err());
        assert!(Pointer::parse("/a~").is_err());
    }

    #[test]
    fn escape_inverts_unescape() {
        let name = "a/~b";
        let pointer = Pointer::parse(&format!("/{}", escape(name))).unwrap();
        assert_eq!(pointer.tokens, [name]);
    }

    #[test]
    fn indexes_have_no_leading_zero() {
        assert_eq!(parse_index("0"), Some(0));
        assert_eq!(parse_index("12"), Some(12));
        assert_eq!(parse_index("01"), None);
        assert_eq!(parse_index("-"), None);
        assert_eq!(parse_index("-1"), None);
        assert_eq!(parse_index(""), None);
    }

    #[test]
    fn inside_is_strict() {
        let a = Pointer::parse("/a").unwrap();
        let ab = Pointer::parse("/a/b").unwrap();
        assert!(ab.is_inside(&a));
        assert!(!a.is_inside(&a));
        assert!(!a.is_inside(&ab));
    }
}
