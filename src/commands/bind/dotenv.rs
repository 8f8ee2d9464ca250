//! `--format env`: a dotenv file in the POSIX shell's dialect.
//!
//! One `NAME="VALUE"` line per param, sorted by name. Inside the double
//! quotes, `\`, `"`, `$` and `` ` `` are escaped with a backslash and a
//! newline is kept as it is (the value continues on the next line), so
//! `set -a; . ./app.env` gives back every value byte for byte. Comments
//! name the image by digest.

use super::{Binding, Bound};
use crate::commands::source::Identity;

/// The file's text. Every binding is a value here: resolution refuses
/// secret references for this format.
pub fn render(image: &str, identity: &Identity, bindings: &[Binding]) -> String {
    // A docker-archive is named by its config digest, and says so.
    let digest = match identity {
        Identity::Manifest(d) => format!("digest: {d}"),
        Identity::Config(d) => format!("config digest: {d}"),
    };
    let mut out = format!(
        "# ingot bind --format env\n# image: {}\n# {digest}\n",
        image.escape_debug()
    );
    for b in bindings {
        if let Bound::Value(v) = &b.value {
            out.push_str(&b.name);
            out.push('=');
            out.push_str(&quote(v));
            out.push('\n');
        }
    }
    out
}

/// `value` in POSIX shell double quotes.
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if matches!(c, '\\' | '"' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::bind::Source;

    fn binding(name: &str, v: &str) -> Binding {
        Binding {
            name: name.into(),
            value: Bound::Value(v.into()),
            source: Source::Values,
            secret: false,
        }
    }

    #[test]
    fn quotes_what_the_shell_would_expand() {
        assert_eq!(quote("plain"), "\"plain\"");
        assert_eq!(quote(r#"a"b\c$d`e"#), r#""a\"b\\c\$d\`e""#);
        assert_eq!(quote("two\nlines"), "\"two\nlines\"");
        assert_eq!(quote("'single'"), "\"'single'\"");
    }

    #[test]
    fn names_the_image_by_digest() {
        let d = crate::digest::Digest::of(b"x");
        let text = render("oci:out/a:1", &Identity::Manifest(d), &[binding("A", "1")]);
        assert_eq!(
            text,
            format!("# ingot bind --format env\n# image: oci:out/a:1\n# digest: {d}\nA=\"1\"\n")
        );
        let text = render("docker-archive:a.tar", &Identity::Config(d), &[]);
        assert!(
            text.contains(&format!("\n# config digest: {d}\n")),
            "{text}"
        );
    }
}
