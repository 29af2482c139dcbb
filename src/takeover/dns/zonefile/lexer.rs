//! Master-file lexing (RFC 1035 §5.1) that remembers where everything is, so an edit can
//! replace a few bytes and leave every other byte, comment and tab alone.
//!
//! The file is cut into chunks of whole lines: an entry (a record or a `$` directive, spanning
//! several lines inside parentheses) or a blank/comment-only line. Tokens are byte ranges.

/// A token's byte range in the file and the line it is on (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Token {
    pub start: usize,
    pub end: usize,
    pub line: usize,
}

impl Token {
    pub fn text<'a>(&self, file: &'a str) -> &'a str {
        &file[self.start..self.end]
    }
}

/// Whole lines of the file: `start..end` includes the final newline, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Chunk {
    pub start: usize,
    pub end: usize,
    /// The first line.
    pub line: usize,
    /// No tokens: a blank or comment-only line.
    pub blank: bool,
    /// The first token when the entry starts in column 0 (an owner or a `$` directive);
    /// `None` when the line starts with white space (the previous owner continues).
    pub head: Option<Token>,
    /// The tokens after `head`.
    pub tokens: Vec<Token>,
    /// Where the comment on the entry's last line starts, if it has one.
    pub comment: Option<usize>,
}

/// Cuts `text` into chunks covering it completely. Errors are (line, message).
pub(super) fn chunks(text: &str) -> Result<Vec<Chunk>, (usize, String)> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut open_line = 0;
    let mut current: Option<Chunk> = None;
    let mut line_no = 0;
    let mut pos = 0;
    while pos < text.len() {
        line_no += 1;
        let line_end = text[pos..].find('\n').map_or(text.len(), |i| pos + i + 1);
        let chunk = current.get_or_insert_with(|| Chunk {
            start: pos,
            end: pos,
            line: line_no,
            blank: true,
            head: None,
            tokens: Vec::new(),
            comment: None,
        });
        chunk.comment = None;
        let starts_entry = depth == 0;
        let mut i = pos;
        let bytes = text.as_bytes();
        while i < line_end {
            match bytes[i] {
                b'\n' | b'\r' | b' ' | b'\t' => i += 1,
                b';' => {
                    chunk.comment = Some(i);
                    i = line_end;
                }
                b'(' => {
                    if depth == 0 {
                        open_line = line_no;
                    }
                    depth += 1;
                    i += 1;
                }
                b')' => {
                    depth = depth
                        .checked_sub(1)
                        .ok_or_else(|| (line_no, "`)` without `(`".to_owned()))?;
                    i += 1;
                }
                b'"' => {
                    let start = i;
                    i += 1;
                    loop {
                        match bytes.get(i) {
                            None | Some(b'\n') => {
                                return Err((line_no, "unterminated quoted string".into()));
                            }
                            Some(b'\\') => i += 2,
                            Some(b'"') => {
                                i += 1;
                                break;
                            }
                            Some(_) => i += 1,
                        }
                    }
                    push(chunk, starts_entry && start == pos, start, i, line_no);
                }
                _ => {
                    let start = i;
                    while i < line_end
                        && !matches!(bytes[i], b' ' | b'\t' | b'\r' | b'\n' | b';' | b'(' | b')')
                    {
                        // An escaped character (`\.`, `\;`) belongs to the token.
                        i += if bytes[i] == b'\\' { 2 } else { 1 };
                    }
                    let end = i.min(line_end);
                    push(chunk, starts_entry && start == pos, start, end, line_no);
                }
            }
        }
        pos = line_end;
        chunk.end = pos;
        if depth == 0
            && let Some(done) = current.take()
        {
            out.push(done);
        }
    }
    if depth > 0 {
        return Err((open_line, "`(` is never closed".into()));
    }
    Ok(out)
}

fn push(chunk: &mut Chunk, head: bool, start: usize, end: usize, line: usize) {
    let token = Token { start, end, line };
    chunk.blank = false;
    if head {
        chunk.head = Some(token);
    } else {
        chunk.tokens.push(token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts<'a>(file: &'a str, c: &Chunk) -> (Option<&'a str>, Vec<&'a str>) {
        (
            c.head.map(|t| t.text(file)),
            c.tokens.iter().map(|t| t.text(file)).collect(),
        )
    }

    #[test]
    fn chunks_cover_the_file_and_keep_owners_apart_from_continuations() {
        let file = "$TTL 60\n; comment\n\nmail\tIN\tA\t10.0.0.25 ; primary\n\tIN\tTXT\t\"a ; b\"\n";
        let cs = chunks(file).unwrap();
        assert_eq!(cs.len(), 5);
        let joined: String = cs.iter().map(|c| &file[c.start..c.end]).collect();
        assert_eq!(joined, file);
        assert_eq!(texts(file, &cs[0]), (Some("$TTL"), vec!["60"]));
        assert!(cs[1].blank && cs[2].blank);
        assert_eq!(
            texts(file, &cs[3]),
            (Some("mail"), vec!["IN", "A", "10.0.0.25"])
        );
        assert_eq!(cs[3].line, 4);
        assert_eq!(&file[cs[3].comment.unwrap()..cs[3].end], "; primary\n");
        assert_eq!(texts(file, &cs[4]), (None, vec!["IN", "TXT", "\"a ; b\""]));
        assert_eq!(cs[4].comment, None);
    }

    #[test]
    fn parentheses_make_one_entry_of_several_lines() {
        let file = "@ IN SOA ns1 host (\n  7 ; serial\n  60 60 600 60 )\nns1 A 1.2.3.4";
        let cs = chunks(file).unwrap();
        assert_eq!(cs.len(), 2);
        assert_eq!(
            texts(file, &cs[0]).1,
            vec!["IN", "SOA", "ns1", "host", "7", "60", "60", "600", "60"]
        );
        assert_eq!(cs[0].tokens[4].line, 2);
        assert_eq!(cs[1].line, 4);
        assert_eq!(cs[1].end, file.len(), "last line without a newline");
    }

    #[test]
    fn escapes_stay_in_their_token() {
        let file = "a\\.b IN TXT \"x\\\"y\"\n";
        let cs = chunks(file).unwrap();
        assert_eq!(
            texts(file, &cs[0]),
            (Some("a\\.b"), vec!["IN", "TXT", "\"x\\\"y\""])
        );
    }

    #[test]
    fn unbalanced_and_unterminated_are_located() {
        assert_eq!(chunks("a ( b\nc\n").unwrap_err().0, 1);
        assert_eq!(
            chunks("a\nb )\n").unwrap_err(),
            (2, "`)` without `(`".into())
        );
        assert_eq!(chunks("a TXT \"open\n").unwrap_err().0, 1);
    }
}
