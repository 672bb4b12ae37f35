//! Glob patterns as Redis reads them: validation, and matching for the in-memory backend.
//!
//! The memory backend must delete exactly what Redis would, so this module follows Redis's
//! `stringmatchlen` byte for byte: `*`, `?`, `[abc]`, `[^abc]`, `[a-z]` and `\` escapes, all on
//! bytes. The one difference is deliberate: a pattern Redis would read leniently (an unclosed
//! `[`, a trailing `\`) is rejected here, because such a pattern is almost always a key that
//! should have gone through the key builder.

use crate::error::{Error, Result};

/// Checks that `pattern` is a well-formed glob, with a message that points at the problem.
pub(crate) fn validate(pattern: &str) -> Result<()> {
    let bytes = pattern.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if i + 1 == bytes.len() => {
                return Err(Error::invalid_input(format!(
                    "glob pattern {pattern:?}: trailing '\\' escapes nothing; \
                     write '\\\\' for a literal backslash, or build keys with key!()"
                )));
            }
            b'\\' => i += 2,
            b'[' => match class_end(bytes, i) {
                Some(end) => i = end,
                None => {
                    return Err(Error::invalid_input(format!(
                        "glob pattern {pattern:?}: unclosed '[' at byte {i}; \
                         close the set with ']', or escape it as '\\['"
                    )));
                }
            },
            _ => i += 1,
        }
    }
    Ok(())
}

/// True when `text` matches the glob `pattern`, with Redis's semantics.
pub(crate) fn matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where to resume after the last `*`: (pattern index after the star, text index it took).
    let mut resume: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    while p < pattern.len() && pattern[p] == b'*' {
                        p += 1;
                    }
                    if p == pattern.len() {
                        return true;
                    }
                    resume = Some((p, t));
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    if let Some((true, next)) = class_matches(pattern, p, text[t]) {
                        p = next;
                        t += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pattern.len() => {
                    if pattern[p + 1] == text[t] {
                        p += 2;
                        t += 1;
                        continue;
                    }
                }
                c => {
                    if c == text[t] {
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
            }
        }
        // Mismatch: let the last star swallow one more byte, or fail.
        match resume {
            Some((star_p, star_t)) => {
                p = star_p;
                t = star_t + 1;
                resume = Some((star_p, star_t + 1));
            }
            None => return false,
        }
    }
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}

/// The index just past the `]` closing the set that opens at `open`, if it is closed.
fn class_end(pattern: &[u8], open: usize) -> Option<usize> {
    class_matches(pattern, open, 0).map(|(_, end)| end)
}

/// Whether byte `c` is in the set opening at `open`, and the index past its `]`.
fn class_matches(pattern: &[u8], open: usize, c: u8) -> Option<(bool, usize)> {
    let mut i = open + 1;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut found = false;
    loop {
        let &b = pattern.get(i)?;
        if b == b'\\' && i + 1 < pattern.len() {
            found |= pattern[i + 1] == c;
            i += 2;
        } else if b == b']' {
            return Some((found != negate, i + 1));
        } else if i + 2 < pattern.len() && pattern[i + 1] == b'-' {
            let (lo, hi) = if b <= pattern[i + 2] {
                (b, pattern[i + 2])
            } else {
                (pattern[i + 2], b)
            };
            found |= (lo..=hi).contains(&c);
            i += 3;
        } else {
            found |= b == c;
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        matches(p.as_bytes(), t.as_bytes())
    }

    #[test]
    fn stars_and_question_marks() {
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("a*", "a"));
        assert!(m("a*c", "abbbc"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "axxbyy"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("**x", "abx"));
        assert!(!m("abc", "abcd"));
        assert!(!m("abcd", "abc"));
    }

    #[test]
    fn sets_ranges_and_negation() {
        assert!(m("[abc]x", "bx"));
        assert!(!m("[abc]x", "dx"));
        assert!(m("[^abc]x", "dx"));
        assert!(!m("[^abc]x", "ax"));
        assert!(m("[a-c]", "b"));
        assert!(m("[c-a]", "b"));
        assert!(!m("[a-c]", "d"));
        assert!(m(r"[\]]", "]"));
        assert!(!m("[]", "a"));
    }

    #[test]
    fn escapes_are_literal() {
        assert!(m(r"7\*", "7*"));
        assert!(!m(r"7\*", "71"));
        assert!(m(r"a\\b", r"a\b"));
        assert!(m(r"\?", "?"));
    }

    #[test]
    fn validation_names_the_problem() {
        assert!(validate("meals:*").is_ok());
        assert!(validate(r"a\[").is_ok());
        assert!(validate("[]").is_ok());
        let err = validate("meals:[7")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("unclosed '['"), "{err}");
        let err = validate(r"meals\")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("trailing"), "{err}");
    }
}
