//! The measures against the bodies users and attackers send, and against libyaml
//! itself on random documents.

use super::*;

fn depth_ok(body: &str, max: usize) -> bool {
    yaml(body, max).is_ok()
}

/// The smallest limit the document passes.
fn yaml_depth(body: &str) -> usize {
    (0..).find(|&max| depth_ok(body, max)).unwrap()
}

#[test]
fn json_depth_counts_brackets_outside_strings() {
    assert_eq!(json(br#"{"a": [1, {"b": "[[[[\"[["}]}"#, 3), Ok(()));
    assert_eq!(
        json(br#"{"a": [1, {"b": [[]]}]}"#, 4),
        Err(TooDeep { line: 1, column: 18 })
    );
    let deep = format!("{}{}", "[".repeat(101), "]".repeat(101));
    assert_eq!(json(deep.as_bytes(), MAX_DEPTH), Err(TooDeep { line: 1, column: 101 }));
    assert_eq!(json(b"{\n \"a\": [[\n[1]]]}", 3), Err(TooDeep { line: 3, column: 1 }));
}

#[test]
fn yaml_depth_follows_flow_and_block_structure() {
    assert_eq!(yaml_depth("a: 1\n"), 1);
    assert_eq!(yaml_depth("a:\n  b:\n    c: 1\n"), 3);
    assert_eq!(yaml_depth("- - - x\n"), 3);
    assert_eq!(yaml_depth("a: [1, {b: [2]}]\n"), 4);
    assert_eq!(yaml_depth("{\"a\": [[1], [2]]}"), 3);
    // A flow collection as a key: the scanner opens the mapping once it has
    // closed the key.
    assert_eq!(yaml_depth("[a, b]: c\n"), 1);
    assert_eq!(
        yaml_depth("spec:\n  containers:\n  - name: c\n    args: [\"-c\", \"x\"]\n"),
        4,
        "an indentless sequence is no level of its own"
    );
}

#[test]
fn text_that_only_looks_nested_is_text() {
    let scalars = "\
a: 'it''s [[[[['
b: \"[[[[\\\"[[[\"
c: x[[[[ # [[[[
d: |
  [[[[[[[[
    {{{{{{
e: >-
  [[[[

  [[[[
f: it's [[[[
g: \"multi
  line [[[[\"
h: plain
  continued [[[[
# [[[[[[
i: &anchor [1]
j: !tag [1]
k: !<tag:x,[y]> [1]
";
    assert_eq!(yaml_depth(scalars), 2);
    // (A tag makes serde read an enum: hence YAML values.)
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(scalars).unwrap();
    assert_eq!(value["d"], "[[[[[[[[\n  {{{{{{\n");
    assert_eq!(value["f"], "it's [[[[");
    assert_eq!(value["h"], "plain continued [[[[");
}

#[test]
fn block_scalars_end_where_libyaml_ends_them() {
    // The scalar ends at the first line indented less than its first; what
    // follows is structure again, nested or not.
    let doc = "- a: |\n    text\n  b: [[[1]]]\n";
    assert_eq!(yaml_depth(doc), 5);
    let value: serde_json::Value = serde_yaml_ng::from_str(doc).unwrap();
    assert_eq!(value[0]["b"][0][0][0], 1);
    // With an indentation indicator, the indentation is fixed by it: one space
    // here, so the less indented ` b: x` is text too.
    let indicated = "a: |1\n  two spaces [[[\n b: [[x]]\n";
    assert_eq!(yaml_depth(indicated), 1);
    let value: serde_json::Value = serde_yaml_ng::from_str(indicated).unwrap();
    assert_eq!(value["a"], " two spaces [[[\nb: [[x]]\n");
}

#[test]
fn deep_bodies_are_refused_where_they_pass_the_limit() {
    let flow = "[".repeat(50_000);
    assert_eq!(yaml(&flow, MAX_DEPTH), Err(TooDeep { line: 1, column: 101 }));
    let mappings = "{a: ".repeat(25_000);
    assert_eq!(yaml(&mappings, MAX_DEPTH), Err(TooDeep { line: 1, column: 401 }));
    let sequences = "- ".repeat(50_000);
    assert_eq!(yaml(&sequences, MAX_DEPTH), Err(TooDeep { line: 1, column: 201 }));
    let mut indented = String::new();
    for depth in 0..200 {
        indented.push_str(&format!("{}a:\n", " ".repeat(depth)));
    }
    assert_eq!(yaml(&indented, MAX_DEPTH), Err(TooDeep { line: 101, column: 102 }));
    // Hiding the nesting in what might pass for a quoted or block scalar does
    // not work: libyaml does not read them as scalars either.
    let after_quote = format!("a: it's\n{}", "[".repeat(200));
    assert!(yaml(&after_quote, MAX_DEPTH).is_err());
    let after_literal = format!("- a: |\n    x\n  b: {}", "[".repeat(200));
    assert!(yaml(&after_literal, MAX_DEPTH).is_err());
    let after_comment = format!("a: \"x\"#comment\nb: {}", "{a: ".repeat(200));
    assert!(yaml(&after_comment, MAX_DEPTH).is_err());
}

/// Random documents of every style, with text that looks nested in every kind
/// of scalar and comment: where libyaml reads them, the scanner measures the
/// depth of what libyaml built, exactly.
#[test]
fn measures_what_libyaml_builds() {
    struct Random(u64);
    impl Random {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }
    const BLOCK_SCALARS: &[&str] = &["x[y]", "it's", "a#b", "'[[it''s'", "\"[\\\"{\"", "{{}", "'a: [b'", "k]"];
    const FLOW_SCALARS: &[&str] = &["x", "'[[it''s'", "\"[\\\"{\"", "a#b", "\"]}\"", "'a: [b'"];
    fn flow(r: &mut Random, budget: usize) -> String {
        match r.below(if budget == 0 { 1 } else { 3 }) {
            0 => FLOW_SCALARS[r.below(FLOW_SCALARS.len() as u64) as usize].to_string(),
            1 => {
                let items: Vec<String> = (0..=r.below(3)).map(|_| flow(r, budget - 1)).collect();
                format!("[{}]", items.join(", "))
            }
            _ => {
                let items: Vec<String> = (0..=r.below(3))
                    .map(|i| format!("k{i}: {}", flow(r, budget - 1)))
                    .collect();
                format!("{{{}}}", items.join(", "))
            }
        }
    }
    /// A value after `key:` or `- ` at block indentation `indent`.
    fn value(r: &mut Random, indent: usize, budget: usize, out: &mut String) {
        let pad = " ".repeat(indent + 2);
        match r.below(if budget == 0 { 3 } else { 6 }) {
            0 => out.push_str(&format!(
                " {}\n",
                BLOCK_SCALARS[r.below(BLOCK_SCALARS.len() as u64) as usize]
            )),
            1 => out.push_str(&format!(" |\n{pad}[[[ {{{{\n{pad}  ]] '\n\n{pad}\"[\n")),
            2 => out.push_str(&format!(" plain\n{pad}[[[ continued # [[[\n")),
            3 => out.push_str(&format!(" {} # [[[\n", flow(r, budget - 1))),
            4 => {
                out.push('\n');
                mapping(r, indent + 2, budget - 1, out);
            }
            _ => {
                out.push('\n');
                for _ in 0..=r.below(2) {
                    out.push_str(&format!("{pad}-"));
                    value(r, indent + 2, budget - 1, out);
                }
            }
        }
    }
    fn mapping(r: &mut Random, indent: usize, budget: usize, out: &mut String) {
        for i in 0..=r.below(2) {
            if r.below(4) == 0 {
                out.push_str(&format!("{}# [[[[ {{{{\n", " ".repeat(indent)));
            }
            out.push_str(&format!("{}k{i}:", " ".repeat(indent)));
            value(r, indent, budget, out);
        }
    }
    fn depth(value: &serde_yaml_ng::Value) -> usize {
        match value {
            serde_yaml_ng::Value::Sequence(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
            serde_yaml_ng::Value::Mapping(entries) => 1 + entries.values().map(depth).max().unwrap_or(0),
            _ => 0,
        }
    }
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let mut parsed = 0;
    for _ in 0..3000 {
        let mut doc = String::new();
        mapping(&mut random, 0, 6, &mut doc);
        let Ok(value) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&doc) else {
            continue;
        };
        parsed += 1;
        assert_eq!(yaml_depth(&doc), depth(&value), "{doc}");
    }
    assert!(parsed > 2500, "only {parsed} documents parsed");
}
