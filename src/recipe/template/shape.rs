//! A template's nesting, bounded on its text before tera parses it.
//!
//! tera's parser (pest) recurses once per nested tag or bracket, about
//! 4 KiB of stack a level: 2000 nested `{% if %}` overflow an 8 MiB stack
//! before any check of the AST could run, and a long chain of operators
//! builds an AST whose drop recurses as deep. One pass over the text
//! bounds both: the open block tags, plus, inside each tag, its deepest
//! bracket and its operators, must stay within [`MAX_DEPTH`]. Text,
//! comments, raw blocks and string literals are skipped as tera's grammar
//! (`tera.pest`) skips them.

use super::MAX_DEPTH;

/// Tags that open a body closed by an `end…` tag.
const OPENERS: [&str; 5] = ["if", "for", "macro", "filter", "block"];
const CLOSERS: [&str; 5] = ["endif", "endfor", "endmacro", "endfilter", "endblock"];

/// Refuses `source` if it nests deeper than [`MAX_DEPTH`]; the error names
/// the 1-based line and column of the tag that crossed the limit.
pub(super) fn check(source: &str) -> Result<(), (usize, usize, String)> {
    let b = source.as_bytes();
    let mut open = 0usize;
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] != b'{' {
            i += 1;
            continue;
        }
        match b[i + 1] {
            b'#' => i = find(b, i + 2, b"#}").map_or(b.len(), |j| j + 2),
            b'{' | b'%' => {
                let statement = b[i + 1] == b'%';
                let close: &[u8] = if statement { b"%}" } else { b"}}" };
                let tag = Tag::scan(b, i + 2, close);
                if statement && tag.word == b"raw" {
                    i = end_of_raw(b, tag.end);
                    continue;
                }
                if statement && OPENERS.iter().any(|w| w.as_bytes() == tag.word) {
                    open += 1;
                } else if statement && CLOSERS.iter().any(|w| w.as_bytes() == tag.word) {
                    open = open.saturating_sub(1);
                }
                let depth = open + tag.brackets + tag.operators;
                if depth > MAX_DEPTH {
                    let (line, col) = position(source, i);
                    return Err((
                        line,
                        col,
                        format!(
                            "the template nests deeper than {MAX_DEPTH} levels (open tags, brackets and operators)"
                        ),
                    ));
                }
                i = tag.end;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// What one `{{ … }}` or `{% … %}` holds, as far as nesting goes.
struct Tag<'a> {
    /// The first word (`if`, `endfor`, …), empty for a variable tag's.
    word: &'a [u8],
    /// The deepest `(` or `[`.
    brackets: usize,
    /// Binary and unary operators: each may add a level to the AST.
    operators: usize,
    /// Just after the closing delimiter, or the end of the text.
    end: usize,
}

impl<'a> Tag<'a> {
    fn scan(b: &'a [u8], start: usize, close: &[u8]) -> Tag<'a> {
        let mut i = start;
        while i < b.len() && (b[i] == b'-' || b[i].is_ascii_whitespace()) {
            i += 1;
        }
        let word_start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
            i += 1;
        }
        let mut tag = Tag {
            word: &b[word_start..i],
            brackets: 0,
            operators: 0,
            end: b.len(),
        };
        let mut open = 0usize;
        while i < b.len() {
            let c = b[i];
            if b[i..].starts_with(close) {
                tag.end = i + close.len();
                break;
            }
            match c {
                b'"' | b'\'' | b'`' => {
                    i = b[i + 1..]
                        .iter()
                        .position(|&q| q == c)
                        .map_or(b.len(), |j| i + 1 + j + 1);
                    continue;
                }
                b'(' | b'[' => {
                    open += 1;
                    tag.brackets = tag.brackets.max(open);
                }
                b')' | b']' => open = open.saturating_sub(1),
                b'+' | b'-' | b'*' | b'/' | b'%' | b'<' | b'>' => tag.operators += 1,
                b'=' | b'!' if b.get(i + 1) == Some(&b'=') => {
                    tag.operators += 1;
                    i += 2;
                    continue;
                }
                _ if c.is_ascii_alphabetic() || c == b'_' => {
                    let s = i;
                    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                        i += 1;
                    }
                    if matches!(&b[s..i], b"and" | b"or" | b"not" | b"in" | b"is") {
                        tag.operators += 1;
                    }
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
        tag
    }
}

/// After `{% raw %}`: just past the `{% endraw %}` that ends it.
fn end_of_raw(b: &[u8], mut i: usize) -> usize {
    while let Some(j) = find(b, i, b"{%") {
        let tag = Tag::scan(b, j + 2, b"%}");
        if tag.word == b"endraw" {
            return tag.end;
        }
        i = j + 2;
    }
    b.len()
}

fn find(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|j| from + j)
}

/// 1-based line and column (in characters) of byte `at`.
fn position(source: &str, at: usize) -> (usize, usize) {
    let before = &source[..at];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before, |nl| &before[nl + 1..])
        .chars()
        .count()
        + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_tags_brackets_and_operators_count() {
        let ok = format!(
            "{}x{}",
            "{% if a %}".repeat(MAX_DEPTH),
            "{% endif %}".repeat(MAX_DEPTH)
        );
        assert_eq!(check(&ok), Ok(()));
        let deep = format!("{}x", "{% if a %}".repeat(MAX_DEPTH + 1));
        let (line, col, message) = check(&deep).unwrap_err();
        assert_eq!((line, col), (1, 10 * MAX_DEPTH + 1), "{message}");
        assert!(message.contains("deeper than 128"), "{message}");
        let parens = format!("ok\n  {{{{ {}1{} }}}}", "(".repeat(200), ")".repeat(200));
        assert_eq!(check(&parens).unwrap_err().0, 2);
        let sum = format!("{{{{ 1{} }}}}", " + 1".repeat(200));
        assert!(check(&sum).is_err());
        let or = format!("{{% if a{} %}}{{% endif %}}", " or a".repeat(200));
        assert!(check(&or).is_err());
        // Closed tags do not add up.
        let flat = "{% if a %}{{ (1 + 2) * 3 }}{% endif %}\n".repeat(10_000);
        assert_eq!(check(&flat), Ok(()));
    }

    #[test]
    fn text_comments_raw_and_strings_are_skipped() {
        let many = "{% if a %}(((".repeat(200);
        for skipped in [
            format!("{{# {many} #}}"),
            format!("{{% raw %}}{many}{{%- endraw -%}}"),
            format!("{{{{ \"{many}\" ~ '{many}' ~ `{many}` }}}}"),
            "( [ + - and or ".repeat(1000),
        ] {
            assert_eq!(check(&skipped), Ok(()), "{skipped:.40}");
        }
        // What follows a raw block or a comment counts again.
        let after = format!("{{% raw %}}x{{% endraw %}}{{{{ {} }}}}", "(".repeat(200));
        assert!(check(&after).is_err());
        let after = format!("{{# x #}}{{{{ {} }}}}", "[".repeat(200));
        assert!(check(&after).is_err());
    }
}
