//! Editing a site file by its keys, the way the drill and the integration tests make their site
//! files from `examples/site.toml`: every change names a key (dotted: `probe.interval`,
//! `migrate.accounts.0.user` for an array's element by index) that the file already has, so a
//! key renamed or dropped from the example is an error naming it, never a key silently added
//! back to a site nobody configures.

use toml::{Table, Value};

/// A key or table the file lacks.
#[derive(Debug, thiserror::Error)]
#[error("the site file has no {0}")]
pub struct Missing(pub String);

/// A site file as a TOML table, changed key by key.
#[derive(Debug, Clone)]
pub struct SiteEdit {
    table: Table,
}

impl SiteEdit {
    pub fn parse(text: &str) -> Result<SiteEdit, toml::de::Error> {
        Ok(SiteEdit {
            table: text.parse()?,
        })
    }

    /// The table at dotted `path` (empty: the whole file).
    pub fn table_mut(&mut self, path: &str) -> Result<&mut Table, Missing> {
        let missing = || Missing(format!("[{path}]"));
        let mut t = &mut self.table;
        let mut parts = path.split('.').filter(|p| !p.is_empty());
        while let Some(part) = parts.next() {
            t = match t.get_mut(part) {
                Some(Value::Table(t)) => t,
                Some(Value::Array(a)) => {
                    let i = parts.next().and_then(|i| i.parse::<usize>().ok());
                    match i.and_then(|i| a.get_mut(i)) {
                        Some(Value::Table(t)) => t,
                        _ => return Err(missing()),
                    }
                }
                _ => return Err(missing()),
            };
        }
        Ok(t)
    }

    /// (table path, key) of a dotted key: `dns.ttl` → (`dns`, `ttl`).
    pub fn split(key: &str) -> (&str, &str) {
        key.rsplit_once('.').unwrap_or(("", key))
    }

    /// Replaces `key`, which the file must have.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) -> Result<&mut Self, Missing> {
        let (table, name) = Self::split(key);
        let t = self.table_mut(table)?;
        if !t.contains_key(name) {
            return Err(Missing(key.to_owned()));
        }
        t.insert(name.into(), value.into());
        Ok(self)
    }

    /// Removes `key` or a whole table, which the file must have.
    pub fn remove(&mut self, key: &str) -> Result<&mut Self, Missing> {
        let (table, name) = Self::split(key);
        match self.table_mut(table)?.remove(name) {
            Some(_) => Ok(self),
            None => Err(Missing(key.to_owned())),
        }
    }

    pub fn render(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(&self.table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITE: &str = "domain = \"a.org\"\n[probe]\ninterval = \"5s\"\n\
                        [[migrate.accounts]]\nuser = \"ana\"\n";

    #[test]
    fn keys_the_file_has_change_and_others_are_named() {
        let mut e = SiteEdit::parse(SITE).unwrap();
        e.set("probe.interval", "1s")
            .unwrap()
            .set("migrate.accounts.0.user", "eva")
            .unwrap()
            .remove("domain")
            .unwrap();
        let text = e.render().unwrap();
        let t: Table = text.parse().unwrap();
        assert_eq!(t["probe"]["interval"].as_str(), Some("1s"));
        assert_eq!(t["migrate"]["accounts"][0]["user"].as_str(), Some("eva"));
        assert!(!t.contains_key("domain"));
        assert_eq!(
            e.set("probe.intervall", "1s").unwrap_err().to_string(),
            "the site file has no probe.intervall"
        );
        assert_eq!(
            e.remove("migrate.accounts.1.user").unwrap_err().0,
            "[migrate.accounts.1]"
        );
        assert!(e.table_mut("probe.interval").is_err(), "not a table");
    }
}
