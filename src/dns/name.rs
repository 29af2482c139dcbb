//! Names as posta writes them: fully qualified (`mail.example.test.`), lowercase where they are
//! compared as text, relative to a zone's origin where a zone file shows them.

use hickory_proto::rr::Name;

/// A zone or record name that is not a valid DNS name.
#[derive(Debug, thiserror::Error)]
#[error("invalid DNS name {name:?}: {reason}")]
pub struct NameError {
    pub name: String,
    pub reason: String,
}

/// A fully qualified name from text with or without the trailing dot.
pub fn parse_name(text: &str) -> Result<Name, NameError> {
    let err = |reason: String| NameError {
        name: text.to_owned(),
        reason,
    };
    let trimmed = text.trim_end_matches('.');
    if trimmed.is_empty() {
        return Err(err("empty name".into()));
    }
    let mut name = Name::from_ascii(trimmed).map_err(|e| err(e.to_string()))?;
    name.set_fqdn(true);
    Ok(name)
}

/// `name` with the trailing dot, lowercase.
pub fn absolute(name: &str) -> String {
    let n = name.to_ascii_lowercase();
    if n.ends_with('.') { n } else { format!("{n}.") }
}

/// Whether `name` is `zone` itself or a name below it.
pub fn in_zone(name: &str, zone: &str) -> bool {
    name == zone || name.ends_with(&format!(".{zone}"))
}

/// `name` relative to `origin` (`@` for the origin itself); absolute when outside it or when
/// `origin` is empty.
pub fn relative(name: &str, origin: &str) -> String {
    if origin.is_empty() {
        return name.to_string();
    }
    if name == origin {
        return "@".to_string();
    }
    match name.strip_suffix(&format!(".{origin}")) {
        Some(rel) => rel.to_string(),
        None => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_relative_to_the_origin() {
        let o = "inkacoca.org.";
        assert_eq!(relative("inkacoca.org.", o), "@");
        assert_eq!(relative("lima-mail.inkacoca.org.", o), "lima-mail");
        assert_eq!(
            relative("mx.laorganizacion.org.", o),
            "mx.laorganizacion.org."
        );
        assert_eq!(relative("xinkacoca.org.", o), "xinkacoca.org.");
        assert_eq!(absolute("Switch.Inkacoca.org"), "switch.inkacoca.org.");
        assert!(in_zone("a.inkacoca.org.", o) && !in_zone("xinkacoca.org.", o));
    }
}
