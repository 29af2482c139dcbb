//! Folder names across servers: mailserver2 and mailserver1 may use different hierarchy
//! delimiters and personal-namespace prefixes (RFC 2342), so a folder is mapped by its path
//! components, not by its string. INBOX is INBOX everywhere (RFC 3501 §5.1: case-insensitive).

/// How a server names personal folders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naming {
    /// Personal namespace prefix, e.g. `INBOX.` on Courier-style servers, empty on Dovecot.
    pub prefix: String,
    pub delimiter: Option<char>,
}

/// True for the INBOX, whatever its case.
pub fn is_inbox(name: &str) -> bool {
    name.eq_ignore_ascii_case("INBOX")
}

/// The path components of a decoded source folder name, below the personal prefix.
pub fn components(name: &str, naming: &Naming) -> Vec<String> {
    if is_inbox(name) {
        return vec!["INBOX".into()];
    }
    let rest = name.strip_prefix(naming.prefix.as_str()).unwrap_or(name);
    match naming.delimiter {
        Some(d) => rest.split(d).map(str::to_owned).collect(),
        None => vec![rest.to_owned()],
    }
}

/// The decoded destination name for source path `components`.
pub fn dest_name(components: &[String], naming: &Naming) -> String {
    if components.len() == 1 && is_inbox(&components[0]) {
        return "INBOX".into();
    }
    let sep = naming.delimiter.map(String::from).unwrap_or_default();
    format!("{}{}", naming.prefix, components.join(&sep))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dovecot() -> Naming {
        Naming {
            prefix: String::new(),
            delimiter: Some('.'),
        }
    }

    fn courier() -> Naming {
        Naming {
            prefix: "INBOX.".into(),
            delimiter: Some('.'),
        }
    }

    fn slash() -> Naming {
        Naming {
            prefix: String::new(),
            delimiter: Some('/'),
        }
    }

    #[test]
    fn maps_paths_between_delimiters_and_prefixes() {
        let c = components("Projects.2026", &dovecot());
        assert_eq!(c, ["Projects", "2026"]);
        assert_eq!(dest_name(&c, &slash()), "Projects/2026");
        assert_eq!(dest_name(&c, &courier()), "INBOX.Projects.2026");
        let back = components("INBOX.Projects.2026", &courier());
        assert_eq!(dest_name(&back, &dovecot()), "Projects.2026");
    }

    #[test]
    fn inbox_is_inbox_everywhere() {
        assert_eq!(
            dest_name(&components("inbox", &dovecot()), &courier()),
            "INBOX"
        );
        assert!(is_inbox("Inbox"));
    }
}
