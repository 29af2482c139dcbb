//! Site-file validation: every problem located, secrets guarded, the example accepted.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::*;

const EXAMPLE: &str = include_str!("../../examples/site.toml");

/// The example with its /etc/posta paths moved into `dir`, and those files created (mode 0600).
fn example_in(dir: &Path) -> (PathBuf, String) {
    let text = EXAMPLE.replace("/etc/posta/", &format!("{}/", dir.display()));
    for name in [
        "secrets/probe.password",
        "secrets/tsig.key",
        "secrets/alice.password",
        "ca.pem",
    ] {
        let path = dir.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, "x\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    }
    let path = dir.join("site.toml");
    fs::write(&path, &text).unwrap();
    (path, text)
}

fn problems(path: &Path, text: &str) -> Vec<Located> {
    match parse(path, text) {
        Err(ConfigError::Invalid { problems }) => problems,
        other => panic!("expected problems, got {other:?}"),
    }
}

#[test]
fn example_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let (path, text) = example_in(dir.path());
    let site = parse(&path, &text).unwrap();
    assert_eq!(site.domain, "laorganizacion.org");
    assert_eq!(site.primary.address.to_string(), "192.0.2.10");
    assert_eq!(site.primary.services.len(), 4);
    assert_eq!(site.primary.services[1].starttls, StartTls::Require);
    assert_eq!(site.backup.services[1].port, 143);
    assert_eq!(site.takeover, TakeoverMode::Vip);
    assert_eq!(site.vip.as_ref().unwrap().prefix, 24);
    assert_eq!(site.dns.as_ref().unwrap().server.port(), 53);
    assert_eq!(site.probe.takeover_grace, Duration::from_secs(300));
    assert_eq!(site.migrate[0].deliver_to, "alice@laorganizacion.org");
}

#[test]
fn reports_three_mistakes_at_once_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    let (path, text) = example_in(dir.path());
    let text = text
        .replace("address = \"192.0.2.20\"", "address = \"192.0.2.300\"")
        .replace("fall = 3", "fall = \"three\"")
        .replace("takeover_grace = \"5m\"", "takeover_grace = \"5 mins\"");
    let found = problems(&path, &text);
    let lines: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(found.len(), 3, "{lines:#?}");
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    assert_eq!(found[0].line, line_of("192.0.2.300"));
    assert_eq!(found[0].column, 11);
    assert!(found[0].message.contains("not an IP address"), "{lines:?}");
    assert_eq!(found[1].line, line_of("\"three\""));
    assert!(found[1].message.contains("`fall`"), "{lines:?}");
    assert_eq!(found[2].line, line_of("5 mins"));
    assert!(found[2].message.contains("unknown unit"), "{lines:?}");
    assert!(lines[0].starts_with(&format!("{}:", path.display())));
}

#[test]
fn mta_section_is_typed_and_located() {
    let dir = tempfile::tempdir().unwrap();
    let (path, text) = example_in(dir.path());
    let site = parse(&path, &text).unwrap();
    let mta = site.mta.expect("[mta]");
    assert_eq!(mta.listen, vec!["0.0.0.0:25".parse().unwrap()]);
    assert_eq!(mta.domains, vec!["laorganizacion.org".to_string()]);
    assert_eq!(mta.lifetime, Some(Duration::from_secs(5 * 86_400)));
    assert_eq!(mta.recipients, Some(dir.path().join("recipients")));
    let bad = text
        .replace("listen = [\"0.0.0.0:25\"]", "listen = [\"0.0.0.0\"]")
        .replace("lifetime = \"5d\"", "lifetime = \"5 days\"")
        .replace(
            "retry_max = \"1h\"",
            "retry_max = \"1h\"\nrelay_tls = \"sometimes\"",
        );
    let found = problems(&path, &bad);
    let lines: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(found.len(), 3, "{lines:#?}");
    let line_of = |needle: &str| bad.lines().position(|l| l.contains(needle)).unwrap() + 1;
    assert_eq!(found[0].line, line_of("listen = [\"0.0.0.0\"]"));
    assert!(
        found[0].message.contains("not an address with a port"),
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l.contains("`relay_tls`")), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("`lifetime`")), "{lines:?}");
}

#[test]
fn unknown_keys_are_located() {
    let dir = tempfile::tempdir().unwrap();
    let (path, text) = example_in(dir.path());
    let text = text.replace("interval = \"10s\"", "intervall = \"10s\"");
    let found = problems(&path, &text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].message, "unknown key `probe.intervall`");
    let line = text
        .lines()
        .position(|l| l.starts_with("intervall"))
        .unwrap()
        + 1;
    assert_eq!((found[0].line, found[0].column), (line, 1));
}

#[test]
fn syntax_errors_are_located() {
    let found = problems(
        Path::new("site.toml"),
        "domain = \"a.org\"\n[primary\nname = 1\n",
    );
    assert!(!found.is_empty());
    assert_eq!(found[0].line, 2);
}

#[test]
fn world_readable_secret_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (path, text) = example_in(dir.path());
    let secret = dir.path().join("secrets/tsig.key");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).unwrap();
    let found = problems(&path, &text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].message.contains("mode 0644"), "{}", found[0]);
    assert!(found[0].message.contains("chmod 600"), "{}", found[0]);
}

#[test]
fn missing_tables_and_mode_mismatch_are_reported() {
    let text = "domain = \"a.org\"\n[takeover]\nmode = \"dns\"\n";
    let found = problems(Path::new("s.toml"), text);
    let all: Vec<&str> = found.iter().map(|p| p.message.as_str()).collect();
    assert!(all.contains(&"missing table [primary]"), "{all:?}");
    assert!(all.contains(&"missing table [backup]"), "{all:?}");
    assert!(
        all.iter().any(|m| m.contains("needs a [dns] table")),
        "{all:?}"
    );
}

#[test]
fn timeout_longer_than_interval_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (path, text) = example_in(dir.path());
    let text = text.replace("timeout = \"5s\"", "timeout = \"20s\"");
    let found = problems(&path, &text);
    assert!(
        found[0].message.contains("probes would overlap"),
        "{found:?}"
    );
}

#[test]
fn services_parse() {
    let s = validate::parse_service("imap:10143?starttls=require").unwrap();
    assert_eq!(
        (s.scheme, s.port, s.starttls),
        (Scheme::Imap, 10143, StartTls::Require)
    );
    assert_eq!(validate::parse_service("pop3s").unwrap().port, 995);
    assert!(
        validate::parse_service("gopher")
            .unwrap_err()
            .contains("unknown service")
    );
    assert!(validate::parse_service("smtp:0").is_err());
    assert!(validate::parse_service("smtp?tls=1").is_err());
}

#[test]
fn admin_identities_replace_per_account_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let (path, text) = example_in(dir.path());
    let pw = |name: &str, mode| {
        let p = dir.path().join(name);
        fs::write(&p, "x\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        p.display().to_string()
    };
    let (good, loose) = (pw("admin.pw", 0o600), pw("loose.pw", 0o644));
    let alice_pw = format!(
        "password_file = \"{}/secrets/alice.password\"\n",
        dir.path().display()
    );
    let without_password = text.replace(&alice_pw, "");
    assert_ne!(
        without_password, text,
        "the example names alice's password file"
    );
    let found = problems(&path, &without_password);
    assert!(
        found[0].message.contains("(or set [migrate] source_admin)"),
        "{}",
        found[0]
    );

    let admins = |source_login: &str, dest_file: &str| {
        without_password.replace(
            "[migrate]\n",
            &format!(
                "[migrate]\nsource_admin = {{ user = \"admin\", password_file = \"{good}\", \
                 login = \"{source_login}\" }}\n\
                 dest_admin = {{ user = \"admin\", password_file = \"{dest_file}\" }}\n"
            ),
        )
    };
    let site = parse(&path, &admins("separator", &good)).unwrap();
    let source = site.migrate_source_admin.as_ref().unwrap();
    assert_eq!(
        (source.user.as_str(), source.login),
        ("admin", crate::client::AdminForm::Separator)
    );
    assert_eq!(
        site.migrate_dest_admin.unwrap().login,
        crate::client::AdminForm::Auto
    );
    assert_eq!(site.migrate[0].password_file, None);

    let found = problems(&path, &admins("sideways", &loose));
    let shown: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(found.len(), 2, "{shown:?}");
    assert!(
        shown[0].contains("`login`: \"sideways\" is not one of auto, plain, separator"),
        "{shown:?}"
    );
    assert!(shown[1].contains("mode 0644"), "{shown:?}");
    let line = text.lines().position(|l| l == "[migrate]").unwrap() + 2;
    assert!(
        shown[0].contains(&format!("site.toml:{line}:")),
        "{shown:?}"
    );
}
