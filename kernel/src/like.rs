//! SQL `LIKE` patterns: `%` matches any run of characters, `_` exactly one,
//! the escape character (default `\`) makes the next one literal. Text
//! matches case-insensitively for ASCII (MySQL's `_ci` collations); bytes
//! match exactly.

/// One element of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A literal byte (already lower-cased when matching without case).
    Byte(u8),
    /// `_`: any one character (one UTF-8 sequence for text, one byte otherwise).
    One,
    /// `%`: any run of characters.
    Any,
}

/// A compiled `LIKE` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LikePattern {
    tokens: Vec<Token>,
    case_insensitive: bool,
    utf8: bool,
    /// The pattern as written (for display).
    source: Vec<u8>,
}

impl LikePattern {
    /// Compiles `pattern` with escape byte `escape`. `text` selects text
    /// semantics (case-insensitive, `_` = one UTF-8 character) over bytes.
    pub fn new(pattern: &[u8], escape: u8, text: bool) -> LikePattern {
        let mut tokens = Vec::with_capacity(pattern.len());
        let mut bytes = pattern.iter().copied();
        while let Some(byte) = bytes.next() {
            let token = if byte == escape {
                // A trailing escape stands for itself (MySQL).
                Token::Byte(bytes.next().unwrap_or(escape))
            } else if byte == b'%' {
                Token::Any
            } else if byte == b'_' {
                Token::One
            } else {
                Token::Byte(byte)
            };
            let token = match token {
                Token::Byte(b) if text => Token::Byte(b.to_ascii_lowercase()),
                other => other,
            };
            // Collapse runs of `%`.
            if token == Token::Any && tokens.last() == Some(&Token::Any) {
                continue;
            }
            tokens.push(token);
        }
        LikePattern {
            tokens,
            case_insensitive: text,
            utf8: text,
            source: pattern.to_vec(),
        }
    }

    /// The pattern as written.
    pub fn source(&self) -> &[u8] {
        &self.source
    }

    /// True when the pattern is a lone `%` (matches every non-null value).
    pub fn matches_everything(&self) -> bool {
        self.tokens == [Token::Any]
    }

    /// Whether `value` matches. Iterative wildcard matching with one
    /// backtrack point: O(len(value) × len(pattern)) at worst, no recursion.
    pub fn matches(&self, value: &[u8]) -> bool {
        let mut value_pos = 0usize;
        let mut token_pos = 0usize;
        // Where to resume after the last `%`: (token after it, value position).
        let mut backtrack: Option<(usize, usize)> = None;
        loop {
            if token_pos < self.tokens.len() {
                match self.tokens[token_pos] {
                    Token::Any => {
                        token_pos += 1;
                        backtrack = Some((token_pos, value_pos));
                        continue;
                    }
                    Token::One if value_pos < value.len() => {
                        value_pos += self.char_len(value, value_pos);
                        token_pos += 1;
                        continue;
                    }
                    Token::Byte(expected) if value_pos < value.len() => {
                        let actual = if self.case_insensitive {
                            value[value_pos].to_ascii_lowercase()
                        } else {
                            value[value_pos]
                        };
                        if actual == expected {
                            value_pos += 1;
                            token_pos += 1;
                            continue;
                        }
                    }
                    _ => {}
                }
            } else if value_pos == value.len() {
                return true;
            }
            // Mismatch: let the last `%` swallow one more character.
            match backtrack {
                Some((after_any, start)) if start < value.len() => {
                    let next = start + self.char_len(value, start);
                    backtrack = Some((after_any, next));
                    token_pos = after_any;
                    value_pos = next;
                }
                _ => return false,
            }
        }
    }

    fn char_len(&self, value: &[u8], position: usize) -> usize {
        if !self.utf8 {
            return 1;
        }
        let lead = value[position];
        let len = match lead {
            0x00..=0x7F => 1,
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        len.min(value.len() - position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn like(value: &str, pattern: &str) -> bool {
        LikePattern::new(pattern.as_bytes(), b'\\', true).matches(value.as_bytes())
    }

    #[test]
    fn wildcards_escapes_and_case() {
        assert!(like("", "%"));
        assert!(like("abc", "%"));
        assert!(like("abc", "a%"));
        assert!(like("abc", "%c"));
        assert!(like("abc", "a_c"));
        assert!(!like("abc", "a_"));
        assert!(like("ABC", "abc"));
        assert!(like("a%c", "a\\%c"));
        assert!(!like("abc", "a\\%c"));
        assert!(like("3,3", "3,3"));
        assert!(!like("0,2", "3,%"));
        assert!(like("mississippi", "%iss%ppi"));
        assert!(!like("mississippi", "%iss%ppx"));
        assert!(like("é", "_"));
        assert!(like("aXbXc", "a%b%c"));
        assert!(!like("ab", "a%b%c"));
    }

    #[test]
    fn bytes_match_exactly() {
        let pattern = LikePattern::new(b"A%", b'\\', false);
        assert!(pattern.matches(b"ABC"));
        assert!(!pattern.matches(b"abc"));
    }
}
