//! What the binaries print: every line escaped ([`cert_loading::escape_for_terminal`]: control
//! and bidi characters from a certificate, a file name or the manager never reach a terminal as
//! they are), and a closed stdout or stderr (`| head`, a dead pipe) is never a panic: the write
//! is dropped and the exit status still says what happened.

use std::io::Write;

/// Escapes each line of `text` for a terminal, keeping the line breaks between lines.
pub(crate) fn escape_lines(text: &str) -> String {
    text.split_inclusive('\n')
        .map(|line| match line.strip_suffix('\n') {
            Some(body) => format!("{}\n", cert_loading::escape_for_terminal(body)),
            None => cert_loading::escape_for_terminal(line),
        })
        .collect()
}

/// JSON text with every character that is unsafe on a terminal written as a JSON `\uXXXX`
/// escape (serde_json already escapes the C0 controls; this adds DEL, C1 and the bidi
/// controls, which may only occur inside strings, so the JSON means the same). The line breaks
/// and tabs of pretty-printed JSON are layout, outside strings, and stay.
pub fn escape_json(json: &str) -> String {
    let mut escaped = String::with_capacity(json.len());
    for character in json.chars() {
        if cert_loading::is_unsafe_for_terminal(character) && !matches!(character, '\n' | '\t') {
            let mut units = [0u16; 2];
            for unit in character.encode_utf16(&mut units) {
                escaped.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            escaped.push(character);
        }
    }
    escaped
}

/// Writes `text` (escaped) to stdout; a closed stdout is ignored.
pub fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(escape_lines(text).as_bytes())
        .and_then(|()| stdout.flush());
}

/// Writes `text` (escaped) to stderr; a closed stderr is ignored.
pub fn err(text: &str) {
    let _ = std::io::stderr().write_all(escape_lines(text).as_bytes());
}

/// `println!` through [`out`]: escaped, never a panic on a closed stdout.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::terminal::out(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` through [`err`]: escaped, never a panic on a closed stderr.
#[macro_export]
macro_rules! say_err {
    ($($arg:tt)*) => {
        $crate::terminal::err(&format!("{}\n", format_args!($($arg)*)))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_their_breaks_and_lose_their_controls() {
        assert_eq!(
            escape_lines("cn: a\u{1b}[2Jb\u{202e}c\nnext\n"),
            "cn: a\\u{1b}[2Jb\\u{202e}c\nnext\n"
        );
        let json = serde_json::to_string(&serde_json::json!({"cn": "a\u{202e}b\u{7f}\n"})).unwrap();
        let escaped = escape_json(&json);
        assert_eq!(escaped, r#"{"cn":"a\u202eb\u007f\n"}"#);
        let pretty = serde_json::to_string_pretty(&serde_json::json!({"a": 1})).unwrap();
        assert_eq!(escape_json(&pretty), pretty);
        let back: serde_json::Value = serde_json::from_str(&escaped).unwrap();
        assert_eq!(back["cn"], "a\u{202e}b\u{7f}\n");
    }
}
