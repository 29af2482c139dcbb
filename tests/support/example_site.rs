//! `examples/site.toml`, the file users copy, read at test time and changed only where a test
//! site must differ from the example's (addresses, names, paths, fast timings), so a test built
//! on it fails whenever the example would fail a real site.
//!
//! [`ExampleSite::set`] replaces a key the example has and panics if it has no such key: a key
//! renamed or dropped from the example breaks the test instead of silently being added back.
//! [`ExampleSite::insert`] is for keys the example leaves commented out.

use std::fs;
use std::path::Path;

pub struct ExampleSite {
    table: toml::Table,
}

impl ExampleSite {
    pub fn load() -> ExampleSite {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/site.toml");
        let text = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let table = text
            .parse::<toml::Table>()
            .unwrap_or_else(|e| panic!("{} is not TOML: {e}", path.display()));
        ExampleSite { table }
    }

    /// The table at dotted `path` (`primary`, `migrate.accounts.0`: an array's element by
    /// index); panics if absent.
    fn table_mut(&mut self, path: &str) -> &mut toml::Table {
        let mut t = &mut self.table;
        let mut parts = path.split('.').filter(|p| !p.is_empty());
        while let Some(part) = parts.next() {
            let missing = format!("examples/site.toml has no [{path}]");
            t = match t.get_mut(part) {
                Some(toml::Value::Table(t)) => t,
                Some(toml::Value::Array(a)) => {
                    let i = parts.next().and_then(|i| i.parse::<usize>().ok());
                    match i.and_then(|i| a.get_mut(i)) {
                        Some(toml::Value::Table(t)) => t,
                        _ => panic!("{missing}"),
                    }
                }
                _ => panic!("{missing}"),
            };
        }
        t
    }

    /// (table path, key) of a dotted key path: `dns.ttl` → (`dns`, `ttl`).
    fn split(key: &str) -> (&str, &str) {
        key.rsplit_once('.').unwrap_or(("", key))
    }

    /// Replaces `key` (dotted: `dns.ttl`), which the example must have.
    pub fn set(&mut self, key: &str, value: impl Into<toml::Value>) -> &mut Self {
        let (table, name) = Self::split(key);
        let t = self.table_mut(table);
        assert!(t.contains_key(name), "examples/site.toml has no {key}");
        t.insert(name.into(), value.into());
        self
    }

    /// Adds `key`, which the example only shows commented out.
    pub fn insert(&mut self, key: &str, value: impl Into<toml::Value>) -> &mut Self {
        let (table, name) = Self::split(key);
        let t = self.table_mut(table);
        assert!(
            !t.contains_key(name),
            "examples/site.toml already has {key}"
        );
        t.insert(name.into(), value.into());
        self
    }

    /// Removes `key` or a whole table, which the example must have.
    pub fn remove(&mut self, key: &str) -> &mut Self {
        let (table, name) = Self::split(key);
        let t = self.table_mut(table);
        assert!(t.remove(name).is_some(), "examples/site.toml has no {key}");
        self
    }

    /// The value at `key`, for a test that follows what the example says.
    pub fn get(&mut self, key: &str) -> toml::Value {
        let (table, name) = Self::split(key);
        self.table_mut(table)
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("examples/site.toml has no {key}"))
    }

    pub fn write(&self, path: &Path) {
        let text = toml::to_string(&self.table).expect("cannot render the site file");
        fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
}
