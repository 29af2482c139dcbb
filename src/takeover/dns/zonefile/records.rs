//! From chunks to records: owners resolved against `$ORIGIN` and the previous owner, TTLs from
//! the record, `$TTL` or the last explicit TTL (RFC 1035 §5.1, RFC 2308 §4), class and type in
//! either order. Only what the editor needs: owner, TTL, type, rdata tokens, and where they are.

use hickory_proto::rr::Name;

use super::lexer::{Chunk, Token};

/// One resource record of the file.
#[derive(Debug, Clone)]
pub(super) struct Rr {
    /// Index of its chunk.
    pub chunk: usize,
    pub owner: Name,
    /// The effective TTL.
    pub ttl: u32,
    /// The TTL written on the record, if any.
    pub ttl_token: Option<Token>,
    /// The first token after the owner (class, TTL or type): where a TTL can be inserted.
    pub first: Token,
    /// Upper-case type mnemonic.
    pub rtype: String,
    pub type_token: Token,
    pub rdata: Vec<Token>,
}

const CLASSES: [&str; 4] = ["IN", "CH", "HS", "CS"];

/// The records of `file` (already cut into `chunks`), for zone `zone`.
pub(super) fn records(
    file: &str,
    chunks: &[Chunk],
    zone: &Name,
) -> Result<Vec<Rr>, (usize, String)> {
    let mut origin = zone.clone();
    let mut default_ttl: Option<u32> = None;
    let mut last_ttl: Option<u32> = None;
    let mut owner: Option<Name> = None;
    let mut out = Vec::new();
    for (index, c) in chunks.iter().enumerate() {
        if c.blank {
            continue;
        }
        let head = c.head.map(|t| t.text(file));
        if let Some(directive) = head.filter(|h| h.starts_with('$')) {
            let arg = c.tokens.first().map(|t| t.text(file));
            match (directive.to_ascii_uppercase().as_str(), arg) {
                ("$ORIGIN", Some(a)) => origin = name(a, &origin, c.line)?,
                ("$TTL", Some(a)) => {
                    default_ttl = Some(ttl(a).ok_or_else(|| (c.line, format!("bad $TTL {a:?}")))?)
                }
                ("$INCLUDE" | "$GENERATE", _) => {
                    return Err((
                        c.line,
                        format!("{directive} is not supported: posta edits one plain zone file"),
                    ));
                }
                _ => {
                    return Err((
                        c.line,
                        format!("unknown or incomplete directive {directive}"),
                    ));
                }
            }
            continue;
        }
        let rr_owner = match head {
            Some(text) => name(text, &origin, c.line)?,
            None => owner
                .clone()
                .ok_or_else(|| (c.line, "record without an owner name".to_owned()))?,
        };
        owner = Some(rr_owner.clone());
        let mut tokens = c.tokens.iter();
        let mut ttl_token = None;
        let mut type_token = None;
        let first = c.tokens.first().copied();
        for t in tokens.by_ref() {
            let text = t.text(file);
            if CLASSES.iter().any(|k| k.eq_ignore_ascii_case(text)) {
                continue;
            }
            if ttl_token.is_none() && text.starts_with(|ch: char| ch.is_ascii_digit()) {
                ttl_token = Some(*t);
                continue;
            }
            type_token = Some(*t);
            break;
        }
        let (Some(first), Some(type_token)) = (first, type_token) else {
            return Err((c.line, "record without a type".into()));
        };
        let explicit = match ttl_token {
            Some(t) => {
                let v = ttl(t.text(file)).ok_or_else(|| (t.line, "bad TTL".to_owned()))?;
                last_ttl = Some(v);
                Some(v)
            }
            None => None,
        };
        let rtype = type_token.text(file).to_ascii_uppercase();
        let rdata: Vec<Token> = tokens.copied().collect();
        // BIND: a record with no TTL anywhere takes the SOA's MINIMUM field.
        let soa_minimum = (rtype == "SOA")
            .then(|| rdata.get(6).and_then(|t| ttl(t.text(file))))
            .flatten();
        let effective = match explicit.or(default_ttl).or(last_ttl) {
            Some(t) => t,
            None => {
                let m = soa_minimum.ok_or_else(|| {
                    (
                        c.line,
                        "no TTL for this record and no $TTL before it".to_owned(),
                    )
                })?;
                // ... and becomes the default for the records after it.
                default_ttl = Some(m);
                m
            }
        };
        out.push(Rr {
            chunk: index,
            owner: rr_owner,
            ttl: effective,
            ttl_token,
            first,
            rtype,
            type_token,
            rdata,
        });
    }
    Ok(out)
}

/// `@`, absolute (`mail.example.test.`) or relative to `origin`.
fn name(text: &str, origin: &Name, line: usize) -> Result<Name, (usize, String)> {
    if text == "@" {
        return Ok(origin.clone());
    }
    Name::parse(text, Some(origin)).map_err(|e| (line, format!("bad name {text:?}: {e}")))
}

/// A TTL in seconds: `3600`, or BIND's units `1h30m`, `2d`, `1w` (case-insensitive).
pub(super) fn ttl(text: &str) -> Option<u32> {
    if let Ok(n) = text.parse::<u32>() {
        return Some(n);
    }
    let mut total: u32 = 0;
    let mut number: Option<u32> = None;
    for ch in text.chars() {
        if let Some(d) = ch.to_digit(10) {
            number = Some(number.unwrap_or(0).checked_mul(10)?.checked_add(d)?);
            continue;
        }
        let unit = match ch.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return None,
        };
        total = total.checked_add(number.take()?.checked_mul(unit)?)?;
    }
    match number {
        None => Some(total),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::lexer::chunks;
    use super::*;

    fn parse(file: &str) -> Result<Vec<Rr>, (usize, String)> {
        let zone = Name::from_ascii("example.test.").unwrap();
        records(file, &chunks(file).unwrap(), &zone)
    }

    fn summary(file: &str) -> Vec<(String, u32, String, Vec<String>)> {
        parse(file)
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r.owner.to_string(),
                    r.ttl,
                    r.rtype.clone(),
                    r.rdata.iter().map(|t| t.text(file).to_owned()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn owners_origins_and_ttls() {
        let file = "$TTL 1h\n@ IN SOA ns1 h ( 1 60 60 600 300 )\n\tIN NS ns1\n\
                    mail 60 IN A 10.0.0.25\n\tIN 120 AAAA ::1\n$ORIGIN sub\nx a 1.2.3.4\n\
                    y.example.test. in a 1.2.3.5\n";
        let s = summary(file);
        assert_eq!(
            s.iter()
                .map(|r| (r.0.as_str(), r.1, r.2.as_str()))
                .collect::<Vec<_>>(),
            vec![
                ("example.test.", 3600, "SOA"),
                ("example.test.", 3600, "NS"),
                ("mail.example.test.", 60, "A"),
                ("mail.example.test.", 120, "AAAA"),
                ("x.sub.example.test.", 3600, "A"),
                ("y.example.test.", 3600, "A"),
            ]
        );
        assert_eq!(s[0].3, vec!["ns1", "h", "1", "60", "60", "600", "300"]);
    }

    /// Both cases as `named-checkzone -D` (BIND 9.18) prints them.
    #[test]
    fn without_ttl_directive_soa_minimum_or_the_last_explicit_ttl_applies() {
        // An SOA without TTL: its MINIMUM becomes the default, like a $TTL.
        let file =
            "@ IN SOA ns1 h 1 60 60 600 300\na IN A 1.1.1.1\nb 90 IN A 1.1.1.2\nc A 1.1.1.3\n";
        let ttls: Vec<u32> = summary(file).iter().map(|r| r.1).collect();
        assert_eq!(ttls, vec![300, 300, 90, 300]);
        // An SOA with a TTL: RFC 1035 semantics, the last explicit TTL carries on.
        let file =
            "@ 700 IN SOA ns1 h 1 60 60 600 300\na IN A 1.1.1.1\nb 90 IN A 1.1.1.2\nc A 1.1.1.3\n";
        let ttls: Vec<u32> = summary(file).iter().map(|r| r.1).collect();
        assert_eq!(ttls, vec![700, 700, 90, 90]);
    }

    #[test]
    fn unsupported_and_broken_input_is_located() {
        assert_eq!(
            parse("$TTL 60\n$INCLUDE other.db\n").unwrap_err(),
            (
                2,
                "$INCLUDE is not supported: posta edits one plain zone file".into()
            )
        );
        assert_eq!(parse("\tIN A 1.2.3.4\n").unwrap_err().0, 1);
        assert_eq!(
            parse("$TTL 60\nmail IN\n").unwrap_err(),
            (2, "record without a type".into())
        );
        assert_eq!(parse("$TTL x\n").unwrap_err().0, 1);
    }

    #[test]
    fn ttl_units() {
        assert_eq!(ttl("3600"), Some(3600));
        assert_eq!(ttl("1h30m"), Some(5400));
        assert_eq!(ttl("2D"), Some(172_800));
        assert_eq!(ttl("1w"), Some(604_800));
        assert_eq!(ttl("1h5"), None);
        assert_eq!(ttl("h"), None);
        assert_eq!(ttl("99999999999"), None);
    }
}
