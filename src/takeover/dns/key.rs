//! TSIG keys (RFC 8945) from BIND-format key files, as `tsig-keygen -a hmac-sha256 NAME` writes
//! them and `nsupdate -k` and named's `include` read them:
//!
//! ```text
//! key "posta-key" {
//!         algorithm hmac-sha256;
//!         secret "base64...";
//! };
//! ```
//!
//! The file must be owner-only (`crate::secret`); errors carry file:line and never the secret.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_proto::rr::{Name, TSigner};

use super::DnsError;
use crate::secret;

/// How far apart (seconds) our clock and the server's may be; BIND and nsupdate use 300.
pub const FUDGE: u16 = 300;

/// A TSIG key: name, algorithm and (private) secret. `Debug` never shows the secret.
#[derive(Clone)]
pub struct TsigKey {
    /// The key's name, as the server's `key` statement spells it (fully qualified).
    pub name: Name,
    /// hmac-sha256, hmac-sha384 or hmac-sha512.
    pub algorithm: TsigAlgorithm,
    /// The file the key came from, for error messages.
    pub file: PathBuf,
    signer: TSigner,
}

impl TsigKey {
    /// The signer that puts the secret to use; nothing else reads it.
    pub(crate) fn signer(&self) -> &TSigner {
        &self.signer
    }

    /// The name as written in the key file (no trailing dot), for messages.
    pub fn display_name(&self) -> String {
        self.name.to_string().trim_end_matches('.').to_owned()
    }
}

impl fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.display_name())
            .field("algorithm", &self.algorithm.to_string())
            .field("file", &self.file)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Reads the single key in the BIND-format key file at `path`, after checking that only its
/// owner can read it.
pub fn read_key_file(path: &Path) -> Result<TsigKey, DnsError> {
    let text = secret::read_text(path)?;
    parse_key_file(&text, path)
}

/// Parses key-file text; `path` only labels errors.
pub fn parse_key_file(text: &str, path: &Path) -> Result<TsigKey, DnsError> {
    let err = |line: usize, message: String| DnsError::KeyFile {
        path: path.to_owned(),
        line,
        message,
    };
    let tokens = tokenize(text).map_err(|(line, m)| err(line, m.to_owned()))?;
    let mut p = Parser { tokens, at: 0 };
    let mut keys: Vec<(usize, String, Body)> = Vec::new();
    while let Some(tok) = p.peek() {
        let line = tok.line;
        match &tok.kind {
            Kind::Word(w) if w.eq_ignore_ascii_case("key") => {
                p.at += 1;
                let name = p
                    .string("the key's name after `key`")
                    .map_err(|(l, m)| err(l, m))?;
                let body = p.body().map_err(|(l, m)| err(l, m))?;
                keys.push((line, name, body));
            }
            _ => {
                return Err(err(
                    line,
                    "expected a `key \"name\" { ... };` statement (a BIND key file as \
                     tsig-keygen writes it)"
                        .into(),
                ));
            }
        }
    }
    let (line, name, body) = match keys.len() {
        0 => return Err(err(1, "no `key` statement in the file".into())),
        1 => keys.remove(0),
        n => {
            let names: Vec<&str> = keys.iter().map(|(_, n, _)| n.as_str()).collect();
            return Err(err(
                keys[1].0,
                format!(
                    "{n} keys ({}): posta needs a file with exactly one",
                    names.join(", ")
                ),
            ));
        }
    };
    let key_name = Name::from_ascii(&name)
        .map_err(|e| err(line, format!("key name {name:?} is not a DNS name: {e}")))?;
    let (alg_line, alg) = body
        .algorithm
        .ok_or_else(|| err(line, format!("key {name} has no `algorithm`")))?;
    let algorithm = algorithm(&alg).ok_or_else(|| {
        err(
            alg_line,
            format!(
                "unsupported TSIG algorithm {alg:?}: use hmac-sha256 (the default), \
                 hmac-sha384 or hmac-sha512 (tsig-keygen -a hmac-sha256 {name})"
            ),
        )
    })?;
    let (secret_line, encoded) = body
        .secret
        .ok_or_else(|| err(line, format!("key {name} has no `secret`")))?;
    let compact: String = encoded.split_whitespace().collect();
    let secret = STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| err(secret_line, "the secret is not valid base64".into()))?;
    if secret.is_empty() {
        return Err(err(secret_line, "the secret is empty".into()));
    }
    let signer = TSigner::new(secret, algorithm.clone(), key_name.clone(), FUDGE)
        .map_err(|e| err(alg_line, format!("cannot use algorithm {alg}: {e}")))?;
    let mut name = key_name;
    name.set_fqdn(true);
    Ok(TsigKey {
        name,
        algorithm,
        file: path.to_owned(),
        signer,
    })
}

/// The algorithms ring computes; BIND spells them in lowercase, case is not significant.
fn algorithm(name: &str) -> Option<TsigAlgorithm> {
    match name.to_ascii_lowercase().trim_end_matches('.') {
        "hmac-sha256" => Some(TsigAlgorithm::HmacSha256),
        "hmac-sha384" => Some(TsigAlgorithm::HmacSha384),
        "hmac-sha512" => Some(TsigAlgorithm::HmacSha512),
        _ => None,
    }
}

#[derive(Default)]
struct Body {
    algorithm: Option<(usize, String)>,
    secret: Option<(usize, String)>,
}

#[derive(Debug, PartialEq)]
enum Kind {
    Word(String),
    Quoted(String),
    Open,
    Close,
    Semi,
}

struct Token {
    line: usize,
    kind: Kind,
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

type ParseResult<T> = Result<T, (usize, String)>;

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn last_line(&self) -> usize {
        self.tokens.last().map_or(1, |t| t.line)
    }

    fn next(&mut self, wanted: &str) -> ParseResult<&Token> {
        let line = self.last_line();
        let tok = self
            .tokens
            .get(self.at)
            .ok_or_else(|| (line, format!("the file ends where {wanted} should be")))?;
        self.at += 1;
        Ok(tok)
    }

    fn expect(&mut self, kind: Kind, wanted: &str) -> ParseResult<()> {
        let tok = self.next(wanted)?;
        if tok.kind == kind {
            Ok(())
        } else {
            Err((tok.line, format!("expected {wanted}")))
        }
    }

    /// A quoted or bare string (key names may be either; secrets usually quoted).
    fn string(&mut self, wanted: &str) -> ParseResult<String> {
        let tok = self.next(wanted)?;
        match &tok.kind {
            Kind::Word(s) | Kind::Quoted(s) => Ok(s.clone()),
            _ => Err((tok.line, format!("expected {wanted}"))),
        }
    }

    /// `{ algorithm X; secret "Y"; };`
    fn body(&mut self) -> ParseResult<Body> {
        self.expect(Kind::Open, "`{` after the key's name")?;
        let mut body = Body::default();
        loop {
            let tok = self.next("`algorithm`, `secret` or `}`")?;
            let line = tok.line;
            let field = match &tok.kind {
                Kind::Close => break,
                Kind::Word(w) if w.eq_ignore_ascii_case("algorithm") => &mut body.algorithm,
                Kind::Word(w) if w.eq_ignore_ascii_case("secret") => &mut body.secret,
                // Never echo the token: a misplaced secret would end up in the message.
                _ => return Err((line, "expected `algorithm`, `secret` or `}`".into())),
            };
            if field.is_some() {
                return Err((line, "repeated statement in the key".into()));
            }
            let value = self.string("a value")?;
            *field = Some((line, value));
            self.expect(Kind::Semi, "`;` after the value")?;
        }
        self.expect(Kind::Semi, "`;` after `}`")?;
        Ok(body)
    }
}

/// named.conf lexing: `#`, `//` and `/* */` comments, quoted strings, `{ } ;` and bare words.
fn tokenize(text: &str) -> Result<Vec<Token>, (usize, &'static str)> {
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            '#' => skip_line(&mut chars),
            '/' if chars.peek() == Some(&'/') => skip_line(&mut chars),
            '/' if chars.peek() == Some(&'*') => {
                let start = line;
                chars.next();
                let mut prev = ' ';
                loop {
                    match chars.next() {
                        None => return Err((start, "unterminated /* comment")),
                        Some('/') if prev == '*' => break,
                        Some(c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            prev = c;
                        }
                    }
                }
            }
            '{' => tokens.push(Token {
                line,
                kind: Kind::Open,
            }),
            '}' => tokens.push(Token {
                line,
                kind: Kind::Close,
            }),
            ';' => tokens.push(Token {
                line,
                kind: Kind::Semi,
            }),
            '"' => {
                let start = line;
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err((start, "unterminated quoted string")),
                        Some('"') => break,
                        Some('\\') => {
                            if let Some(c) = chars.next() {
                                s.push(c);
                            }
                        }
                        Some(c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            s.push(c);
                        }
                    }
                }
                tokens.push(Token {
                    line: start,
                    kind: Kind::Quoted(s),
                });
            }
            c => {
                let mut s = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || matches!(n, '{' | '}' | ';' | '"') {
                        break;
                    }
                    s.push(n);
                    chars.next();
                }
                tokens.push(Token {
                    line,
                    kind: Kind::Word(s),
                });
            }
        }
    }
    Ok(tokens)
}

fn skip_line(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while chars.peek().is_some_and(|&c| c != '\n') {
        chars.next();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "c2VjcmV0LWtleS1ieXRlcy1mb3ItdGVzdGluZy0xMjM0NTY=";

    fn parse(text: &str) -> Result<TsigKey, DnsError> {
        parse_key_file(text, Path::new("k.key"))
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn reads_what_tsig_keygen_writes() {
        let text = format!(
            "key \"posta-key\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{SECRET}\";\n}};\n"
        );
        let key = parse(&text).unwrap();
        assert_eq!(key.name, Name::from_ascii("posta-key.").unwrap());
        assert_eq!(key.algorithm, TsigAlgorithm::HmacSha256);
        assert_eq!(key.display_name(), "posta-key");
        assert_eq!(key.signer().key(), b"secret-key-bytes-for-testing-123456");
    }

    #[test]
    fn comments_bare_names_and_other_algorithms() {
        let text = format!(
            "# made by hand\n// for mail\n/* multi\nline */ key mail.key {{ secret \
             \"{SECRET}\"; algorithm HMAC-SHA512; }};"
        );
        let key = parse(&text).unwrap();
        assert_eq!(key.display_name(), "mail.key");
        assert_eq!(key.algorithm, TsigAlgorithm::HmacSha512);
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = parse(&format!(
            "key k {{ algorithm hmac-sha256; secret \"{SECRET}\"; }};"
        ))
        .unwrap();
        let shown = format!("{key:?}");
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn errors_carry_file_and_line() {
        let e = error("key k {\n  algorithm hmac-sha256;\n  secret \"not base64!\";\n};\n");
        assert_eq!(e, "k.key:3: the secret is not valid base64");
        let e = error(&format!(
            "key k {{\n algorithm hmac-md5;\n secret \"{SECRET}\";\n}};"
        ));
        assert!(
            e.starts_with("k.key:2: unsupported TSIG algorithm \"hmac-md5\""),
            "{e}"
        );
        let e = error(&format!("key k {{\n secret \"{SECRET}\";\n}};"));
        assert_eq!(e, "k.key:1: key k has no `algorithm`");
        let e = error("key k {\n algorithm hmac-sha256;\n}\n");
        assert_eq!(e, "k.key:3: the file ends where `;` after `}` should be");
        let e = error("");
        assert_eq!(e, "k.key:1: no `key` statement in the file");
        let e = error("options { };");
        assert!(e.starts_with("k.key:1: expected a `key"), "{e}");
    }

    #[test]
    fn misplaced_secret_is_not_echoed() {
        let e = error(&format!(
            "key k {{\n algorithm hmac-sha256;\n \"{SECRET}\";\n}};"
        ));
        assert!(!e.contains(SECRET), "{e}");
        assert!(e.starts_with("k.key:3: expected `algorithm`"), "{e}");
    }

    #[test]
    fn two_keys_are_refused() {
        let one = format!("key a {{ algorithm hmac-sha256; secret \"{SECRET}\"; }};\n");
        let two = format!("key b {{ algorithm hmac-sha256; secret \"{SECRET}\"; }};\n");
        let e = error(&(one + &two));
        assert_eq!(
            e,
            "k.key:2: 2 keys (a, b): posta needs a file with exactly one"
        );
    }

    #[test]
    fn unterminated_things_are_located() {
        assert_eq!(
            error("key k {\n secret \"abc\n"),
            "k.key:2: unterminated quoted string"
        );
        assert_eq!(error("/* open\n\n"), "k.key:1: unterminated /* comment");
    }

    #[test]
    fn mangled_key_files_never_panic() {
        let text = format!(
            "key \"posta-key\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{SECRET}\";\n}};\n"
        );
        for end in 0..=text.len() {
            let _ = parse(&text[..end]);
        }
        for at in 0..=text.len() {
            for c in ["\"", "{", "}", ";", "/*", "#", "\\", "é"] {
                let _ = parse(&format!("{}{c}{}", &text[..at], &text[at..]));
            }
        }
    }

    #[test]
    fn read_key_file_checks_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        let text = format!("key k {{ algorithm hmac-sha256; secret \"{SECRET}\"; }};");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_key_file(&path).unwrap_err();
        assert!(matches!(e, DnsError::KeyFileAccess(_)), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_key_file(&path).unwrap().display_name(), "k");
    }
}
