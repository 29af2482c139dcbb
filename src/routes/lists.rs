//! The offices' user lists and the rename map, read in the formats each office already keeps.
//!
//! Every name is checked against what the tables can carry (letters, digits, `.`, `-`, `_`,
//! `+`, not starting with `.` or `-`), so a bad line is reported with `file:line:column`
//! instead of writing a table sendmail or Postfix would misread.

use std::fs;
use std::path::{Path, PathBuf};

use super::User;
use super::layout::{ListFormat, ListSource};

/// A list that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{command} failed ({message}); the last tables stay")]
    Command { command: PathBuf, message: String },
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

/// A list line's name that is not a user name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a user name: letters, digits, '.', '-', '_' and '+' only")]
pub struct NameError(String);

/// A name one list line gives, checked.
pub fn check_name(name: &str) -> Result<String, NameError> {
    let n = name.to_ascii_lowercase();
    let ok = !n.is_empty()
        && n.len() <= 64
        && !n.starts_with(['.', '-'])
        && !n.ends_with('.')
        && !n.contains("..")
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b));
    if ok {
        Ok(n)
    } else {
        Err(NameError(name.to_string()))
    }
}

/// The lines of `text` that carry data: (1-based line number, line without comment).
fn data_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(i, l)| {
        let l = l.trim_end_matches('\r');
        let t = l.trim_start();
        (!t.is_empty() && !t.starts_with('#')).then_some((i + 1, l))
    })
}

fn column(line: &str, word: &str) -> usize {
    let at = word.as_ptr() as usize - line.as_ptr() as usize;
    line[..at].chars().count() + 1
}

/// Reads an office's list. `domains` are the names that make `user@domain` one of this
/// office's users in the formats that carry a domain (the shared domain, the office's own);
/// entries for other domains are skipped, as they are not users of this layout.
pub fn read(
    source: &ListSource,
    format: ListFormat,
    domains: &[&str],
) -> Result<Vec<User>, ListError> {
    let (name, text) = fetch(source)?;
    parse(&name, &text, format, domains)
}

/// The list's text, and the name its problems are reported under.
pub fn fetch(source: &ListSource) -> Result<(PathBuf, String), ListError> {
    match source {
        ListSource::File(path) => {
            let text = fs::read_to_string(path).map_err(|source| ListError::Read {
                path: path.to_owned(),
                source,
            })?;
            Ok((path.clone(), text))
        }
        ListSource::Command(argv) => {
            let shown = PathBuf::from(format!("`{}`", argv.join(" ")));
            let fail = |message: String| ListError::Command {
                command: shown.clone(),
                message,
            };
            let out = super::run(argv).map_err(|e| fail(e.to_string()))?;
            let text = String::from_utf8(out)
                .map_err(|_| fail("printed something that is not UTF-8".into()))?;
            Ok((shown, text))
        }
    }
}

pub fn parse(
    path: &Path,
    text: &str,
    format: ListFormat,
    domains: &[&str],
) -> Result<Vec<User>, ListError> {
    let fail = |line: usize, column: usize, message: String| ListError::Parse {
        path: path.to_owned(),
        line,
        column,
        message,
    };
    let mut users: Vec<User> = Vec::new();
    for (n, line) in data_lines(text) {
        let first = match format {
            ListFormat::Passwd => line.split(':').next().unwrap_or_default().trim(),
            _ => line.split_whitespace().next().unwrap_or_default(),
        };
        let (local, domain) = match first.rsplit_once('@') {
            Some((l, d)) => (l, Some(d)),
            None => (first, None),
        };
        match (format, domain) {
            (ListFormat::Text, Some(_)) => {
                return Err(fail(
                    n,
                    column(line, first),
                    format!("{first:?}: a text list names users, without @domain"),
                ));
            }
            (ListFormat::Recipients, None) => {
                return Err(fail(
                    n,
                    column(line, first),
                    format!("{first:?}: a recipients file lists user@domain"),
                ));
            }
            (_, Some(d)) if !domains.iter().any(|x| x.eq_ignore_ascii_case(d)) => continue,
            _ => {}
        }
        // `@domain` in a recipients file accepts everyone: it lists nobody.
        if local.is_empty() && format == ListFormat::Recipients {
            continue;
        }
        let name = check_name(local).map_err(|m| fail(n, column(line, local), m.to_string()))?;
        let mailbox = match format {
            ListFormat::Text => match line.split_whitespace().nth(1) {
                Some(m) => check_name(m).map_err(|e| fail(n, column(line, m), e.to_string()))?,
                None => name.clone(),
            },
            _ => name.clone(),
        };
        if format == ListFormat::Text && line.split_whitespace().nth(2).is_some() {
            let extra = line.split_whitespace().nth(2).unwrap_or_default();
            return Err(fail(
                n,
                column(line, extra),
                "a text list line is NAME [MAILBOX]".into(),
            ));
        }
        if users.iter().any(|u| u.name == name) {
            continue;
        }
        users.push(User { name, mailbox });
    }
    Ok(users)
}

/// The rename map: `old new` lines; mail to the old address goes where the new one does.
pub fn read_renames(path: &Path) -> Result<Vec<(String, String)>, ListError> {
    let text = fs::read_to_string(path).map_err(|source| ListError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_renames(path, &text)
}

pub fn parse_renames(path: &Path, text: &str) -> Result<Vec<(String, String)>, ListError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (n, line) in data_lines(text) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let fail = |word: &str, message: String| ListError::Parse {
            path: path.to_owned(),
            line: n,
            column: column(line, word),
            message,
        };
        let [old, new] = words.as_slice() else {
            return Err(fail(words[0], "a rename line is OLD NEW".into()));
        };
        let o = check_name(old).map_err(|m| fail(old, m.to_string()))?;
        let w = check_name(new).map_err(|m| fail(new, m.to_string()))?;
        if o == w {
            return Err(fail(new, format!("{old:?} is renamed to itself")));
        }
        if out.iter().any(|(x, _)| *x == o) {
            return Err(fail(old, format!("{old:?} is renamed twice")));
        }
        out.push((o, w));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(u: &[User]) -> Vec<(&str, &str)> {
        u.iter()
            .map(|u| (u.name.as_str(), u.mailbox.as_str()))
            .collect()
    }

    #[test]
    fn text_lists_with_mailbox_aliases() {
        let u = parse(
            Path::new("cuzco.txt"),
            "# Cuzco\ninti\ndiego2 diego\n\nInti\n",
            ListFormat::Text,
            &[],
        )
        .unwrap();
        assert_eq!(names(&u), [("inti", "inti"), ("diego2", "diego")]);
        let e = parse(Path::new("c"), "ana\nbad/name\n", ListFormat::Text, &[]).unwrap_err();
        assert!(e.to_string().starts_with("c:2:1: \"bad/name\""), "{e}");
        let e = parse(Path::new("c"), "ana x y\n", ListFormat::Text, &[]).unwrap_err();
        assert_eq!(e.to_string(), "c:1:7: a text list line is NAME [MAILBOX]");
    }

    #[test]
    fn recipients_and_passwd_files_keep_only_this_offices_domains() {
        let d = ["inkacoca.org", "lima.inkacoca.org"];
        let r = "ana@inkacoca.org OK\nrosa@lima.inkacoca.org x\nbob@elsewhere.org\n@inkacoca.org\n";
        let u = parse(Path::new("r"), r, ListFormat::Recipients, &d).unwrap();
        assert_eq!(names(&u), [("ana", "ana"), ("rosa", "rosa")]);
        let p =
            "ana:{SHA512-CRYPT}$6$x$y:1000:1000::/home/ana::\nrosa@lima.inkacoca.org:{PLAIN}z\n";
        let u = parse(Path::new("p"), p, ListFormat::Passwd, &d).unwrap();
        assert_eq!(names(&u), [("ana", "ana"), ("rosa", "rosa")]);
        let e = parse(Path::new("r"), "ana\n", ListFormat::Recipients, &d).unwrap_err();
        assert!(e.to_string().contains("user@domain"), "{e}");
    }

    #[test]
    fn lists_from_commands() {
        let src = ListSource::Command(vec!["printf".into(), "ana\\nrosa\\n".into()]);
        let u = read(&src, ListFormat::Text, &[]).unwrap();
        assert_eq!(names(&u), [("ana", "ana"), ("rosa", "rosa")]);
        let src = ListSource::Command(vec!["false".into()]);
        let e = read(&src, ListFormat::Text, &[]).unwrap_err();
        assert!(
            e.to_string().starts_with("`false` failed (exit status: 1"),
            "{e}"
        );
        let src = ListSource::Command(vec!["printf".into(), "a/b\\n".into()]);
        let e = read(&src, ListFormat::Text, &[]).unwrap_err();
        assert!(e.to_string().starts_with("`printf a/b\\n`:1:1:"), "{e}");
    }

    #[test]
    fn renames() {
        let r = parse_renames(Path::new("renames"), "diego diego1\n").unwrap();
        assert_eq!(r, [("diego".to_string(), "diego1".to_string())]);
        let e = parse_renames(Path::new("renames"), "a b\na c\n").unwrap_err();
        assert_eq!(e.to_string(), "renames:2:1: \"a\" is renamed twice");
        assert!(parse_renames(Path::new("r"), "a\n").is_err());
    }
}
