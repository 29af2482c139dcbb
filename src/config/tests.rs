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
    assert_eq!(site.primary.probe_target().to_string(), "192.0.2.11");
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
    assert_eq!(mta.maildir_owner.as_deref(), Some("vmail"));
    let bad = text
        .replace("listen = [\"0.0.0.0:25\"]", "listen = [\"0.0.0.0\"]")
        .replace("lifetime = \"5d\"", "lifetime = \"5 days\"")
        .replace(
            "retry_max = \"1h6m40s\"",
            "retry_max = \"1h6m40s\"\nrelay_tls = \"sometimes\"",
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
fn a_loose_secret_never_blocks_loading_and_host_check_names_its_section() {
    let dir = tempfile::tempdir().unwrap();
    let (path, text) = example_in(dir.path());
    let secret = dir.path().join("secrets/alice.password");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).unwrap();
    // Loading reads no secret: takeover, failback, check and watch still have their site.
    let site = parse(&path, &text).unwrap();
    let found = check_host(&site).problems;
    assert_eq!(found.len(), 1, "{found:?}");
    let line = text
        .lines()
        .position(|l| l.contains("alice.password"))
        .unwrap()
        + 1;
    assert_eq!(
        (found[0].file.as_path(), found[0].line),
        (path.as_path(), line)
    );
    let message = &found[0].message;
    assert!(
        message.contains("`password_file` in [[migrate.accounts]]"),
        "{message}"
    );
    assert!(message.contains("mode 0644"), "{message}");
    assert!(message.contains(&secret.display().to_string()), "{message}");
}

#[test]
fn every_secret_file_is_known_with_its_section() {
    let dir = tempfile::tempdir().unwrap();
    let (path, text) = example_in(dir.path());
    let site = parse(&path, &text).unwrap();
    let named: Vec<&str> = site.secrets.iter().map(|s| s.needed_by.as_str()).collect();
    assert_eq!(
        named,
        [
            "`probe_password_file` in [primary]",
            "`tsig_key_file` in [dns]",
            "`password_file` in [[migrate.accounts]]",
        ]
    );
    let missing = dir.path().join("secrets/tsig.key");
    fs::remove_file(&missing).unwrap();
    let found = check_host(&site).problems;
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0]
            .message
            .starts_with("`tsig_key_file` in [dns]: cannot read"),
        "{}",
        found[0]
    );
}

#[test]
fn probing_only_the_vip_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (path, text) = example_in(dir.path());
    let text = text.replace("probe_address = \"192.0.2.11\"\n", "");
    let found = problems(&path, &text);
    assert_eq!(found.len(), 1, "{found:?}");
    let line = text
        .lines()
        .position(|l| l == "address = \"192.0.2.10\"")
        .unwrap()
        + 1;
    assert_eq!(found[0].line, line);
    let message = &found[0].message;
    assert!(message.contains("the [vip] address"), "{message}");
    assert!(message.contains("would probe itself"), "{message}");
    assert!(message.contains("`probe_address`"), "{message}");
    // The same probe address given explicitly is refused at that key.
    let text = text.replace(
        "address = \"192.0.2.10\"\n",
        "address = \"192.0.2.10\"\nprobe_address = \"192.0.2.10\"\n",
    );
    let found = problems(&path, &text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].line, line + 1);
    // In DNS mode the VIP is not used and the address never moves to mailserver2.
    let text = text.replace("mode = \"vip\"", "mode = \"dns\"");
    assert!(parse(&path, &text).is_ok());
}

#[test]
fn the_example_states_the_code_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let (path, text) = example_in(dir.path());
    let example = parse(&path, &text).unwrap();
    let minimal = parse(
        &path,
        "domain = \"a.org\"\n[primary]\nname = \"m1.a.org\"\naddress = \"192.0.2.11\"\n\
         [backup]\nname = \"m2.a.org\"\naddress = \"192.0.2.20\"\n[takeover]\nmode = \"dns\"\n\
         [dns]\nserver = \"192.0.2.53\"\nzone = \"a.org\"\nname = \"m1.a.org\"\ntsig_key_file = \"k\"\n",
    )
    .unwrap();
    let (e, d) = (&example.probe, &minimal.probe);
    assert_eq!(
        (e.interval, e.timeout, e.fall, e.rise, e.takeover_grace),
        (d.interval, d.timeout, d.fall, d.rise, d.takeover_grace)
    );
    let (e, d) = (&example.tls, &minimal.tls);
    assert_eq!(
        (e.cert_warning_days, e.cert_critical_days),
        (d.cert_warning_days, d.cert_critical_days)
    );
    assert_eq!(example.hooks.timeout, minimal.hooks.timeout);
    let mta = example.mta.as_ref().unwrap();
    let retry = crate::mta::settings::Retry::default();
    assert_eq!(
        (mta.retry_min, mta.retry_max, mta.lifetime),
        (
            Some(retry.min_backoff),
            Some(retry.max_backoff),
            Some(retry.lifetime)
        )
    );
    assert!(text.contains(&format!("Default: {}.", minimal.dns.as_ref().unwrap().ttl)));
    assert_eq!(
        example.watch.state_file.as_deref(),
        Some(Path::new(crate::watch::DEFAULT_STATE_FILE))
    );
    assert_eq!(minimal.watch.state_file, None);
    assert!(!minimal.watch.auto_takeover && !minimal.watch.auto_failback);
    assert!(text.contains("auto_takeover = true") && text.contains("Default: false"));
    assert_eq!(example.watch.witnesses, minimal.watch.witnesses);
    assert_eq!(example.watch.sweep_interval, minimal.watch.sweep_interval);
    assert_eq!(minimal.watch.sweep_interval, Some(DEFAULT_SWEEP_INTERVAL));
    assert_eq!(
        example.takeover_state_file.as_deref(),
        Some(Path::new(crate::takeover::state::DEFAULT_PATH))
    );
    let notify = example.notify.clone().unwrap();
    assert_eq!(
        NotifySettings {
            from: None,
            ..notify
        },
        NotifySettings::default()
    );
    // Every table the site file knows is in the example.
    for table in [
        "[primary]",
        "[backup]",
        "[relay]",
        "[takeover]",
        "[hooks]",
        "[vip]",
        "[dns]",
        "[probe]",
        "[tls]",
        "[watch]",
        "[migrate]",
        "[[migrate.accounts]]",
        "[mta]",
        "[notify]",
    ] {
        assert!(text.lines().any(|l| l == table), "{table} missing");
    }
    for event in [
        "on_transition",
        "pre_takeover",
        "post_takeover",
        "pre_failback",
        "post_failback",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{event} = "))),
            "{event}"
        );
    }
}

#[test]
fn show_prints_a_site_file_that_reads_back_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let (path, text) = example_in(dir.path());
    let site = parse(&path, &text).unwrap();
    let shown = to_site_file(&site);
    let again = parse(&dir.path().join("elsewhere/shown.toml"), &shown)
        .unwrap_or_else(|e| panic!("{e}\n{shown}"));
    assert_eq!(to_site_file(&again), shown);
    assert_eq!(
        serde_json::to_value(&again).unwrap(),
        serde_json::to_value(&site).unwrap()
    );
    assert_eq!(again.hooks, site.hooks);
    assert!(
        shown.contains("[hooks]") && shown.contains("on_transition = []"),
        "{shown}"
    );
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
fn the_mirror_section_states_the_defaults_and_a_bad_interval_is_located() {
    let dir = tempfile::tempdir().unwrap();
    let (path, text) = example_in(dir.path());
    let example = parse(&path, &text).unwrap();
    assert_eq!(
        example.mirror.interval,
        crate::config::DEFAULT_MIRROR_INTERVAL
    );
    assert!(
        example
            .mirror
            .state_dir
            .as_deref()
            .is_some_and(|d| d.ends_with("mirror")),
        "{:?}",
        example.mirror.state_dir
    );
    assert!(text.contains(&format!(
        "state_dir = \"{}\"",
        crate::mirror::DEFAULT_STATE_DIR
    )));
    let minimal = text.replace("[mirror]\n", "[unused_mirror]\n");
    assert!(
        !problems(&path, &minimal).is_empty(),
        "unknown tables are refused"
    );
    let with = |value: &str| text.replace("interval = \"60s\"", value);
    let site = parse(&path, &with("interval = \"5m\"")).unwrap();
    assert_eq!(site.mirror.interval, Duration::from_secs(300));
    for bad in ["interval = \"0\"", "interval = \"soon\""] {
        let found = problems(&path, &with(bad));
        assert!(found[0].message.starts_with("`interval`: "), "{found:?}");
        assert!(found[0].line > 0, "{found:?}");
    }
    assert!(example.mirror.enabled);
    assert_eq!(
        site.mirror.max_lag,
        Duration::from_secs(900),
        "3 x interval"
    );
    let lag = |value: &str| text.replace("# max_lag = \"3m\"", value);
    let site = parse(&path, &lag("max_lag = \"10m\"")).unwrap();
    assert_eq!(site.mirror.max_lag, Duration::from_secs(600));
    for (bad, says) in [
        ("max_lag = \"0\"", "`max_lag`: "),
        ("max_lag = \"30s\"", "`max_lag` is shorter than `interval`"),
    ] {
        let found = problems(&path, &lag(bad));
        assert!(found[0].message.starts_with(says), "{found:?}");
        assert!(found[0].line > 0 && found[0].column > 0, "{found:?}");
    }
    let minimal = parse(&path, &text[..text.find("[mirror]\n").unwrap()]);
    assert!(
        minimal.is_ok_and(|s| !s.mirror.enabled),
        "without [mirror] no mirror counts as existing"
    );
}

#[test]
fn the_sweep_is_turned_off_by_zero_or_off_and_a_bad_interval_is_located() {
    let dir = tempfile::tempdir().unwrap();
    let (path, text) = example_in(dir.path());
    let with = |value: &str| text.replace("sweep_interval = \"1m\"", value);
    for off in ["sweep_interval = \"off\"", "sweep_interval = \"0\""] {
        let site = parse(&path, &with(off)).unwrap();
        assert_eq!(site.watch.sweep_interval, None, "{off}");
    }
    let site = parse(&path, &with("sweep_interval = \"2s\"")).unwrap();
    assert_eq!(site.watch.sweep_interval, Some(Duration::from_secs(2)));
    let found = problems(&path, &with("sweep_interval = \"soon\""));
    assert!(
        found[0].message.starts_with("`sweep_interval`: "),
        "{found:?}"
    );
    assert!(found[0].line > 0, "{found:?}");
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
            .to_string()
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
        ("admin", crate::service::AdminForm::Separator)
    );
    assert_eq!(
        site.migrate_dest_admin.unwrap().login,
        crate::service::AdminForm::Auto
    );
    assert_eq!(site.migrate[0].password_file, None);

    let found = problems(&path, &admins("sideways", &loose));
    let shown: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(found.len(), 1, "{shown:?}");
    assert!(
        shown[0].contains("`login`: \"sideways\" is not one of auto, plain, separator"),
        "{shown:?}"
    );
    // A loose admin password blocks only migrate: loading reads no secret, the host check
    // names the file and its section.
    let site = parse(&path, &admins("auto", &loose)).unwrap();
    let host: Vec<String> = check_host(&site)
        .problems
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(host.len(), 1, "{host:?}");
    assert!(
        host[0].contains("mode 0644") && host[0].contains("[migrate]"),
        "{host:?}"
    );
    let line = text.lines().position(|l| l == "[migrate]").unwrap() + 2;
    assert!(
        shown[0].contains(&format!("site.toml:{line}:")),
        "{shown:?}"
    );
}

/// The example with its one account replaced by `migrate`'s extra lines.
fn with_migrate(text: &str, extra: &str) -> String {
    let start = text.find("[[migrate.accounts]]").unwrap();
    let end = text[start..].find("\n[mta]").map(|i| start + i).unwrap();
    let mut out = text[..start].to_string();
    out.push_str(&text[end..]);
    out.replace("[migrate]\n", &format!("[migrate]\n{extra}"))
}

#[test]
fn accounts_all_discovers_with_a_template_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let (path, text) = example_in(dir.path());
    let admin = format!(
        "source_admin = {{ user = \"admin\", password_file = \"{}/secrets/alice.password\" }}\n",
        dir.path().display()
    );
    let all = with_migrate(
        &text,
        &format!("accounts = \"all\"\ndeliver_to = \"%u@laorganizacion.org\"\n{admin}"),
    );
    let site = parse(&path, &all).unwrap_or_else(|e| panic!("{e}"));
    assert!(site.migrate.is_empty());
    let template = site.migrate_all.as_ref().unwrap();
    assert_eq!(template.address("bob"), "bob@laorganizacion.org");
    let shown = to_site_file(&site);
    assert!(shown.contains("accounts = \"all\""), "{shown}");
    let again = parse(&path, &shown).unwrap_or_else(|e| panic!("{e}\n{shown}"));
    assert_eq!(again.migrate_all, site.migrate_all);
    // The explicit list still reads as before.
    let listed = parse(&path, &text).unwrap();
    assert_eq!((listed.migrate.len(), listed.migrate_all), (1, None));
}

#[test]
fn accounts_all_mistakes_are_located() {
    let dir = tempfile::tempdir().unwrap();
    let (path, text) = example_in(dir.path());
    let admin = format!(
        "source_admin = {{ user = \"admin\", password_file = \"{}/secrets/alice.password\" }}\n",
        dir.path().display()
    );
    let line_of = |text: &str, needle: &str| text.lines().position(|l| l.starts_with(needle));
    let cases = [
        (
            format!("accounts = \"everyone\"\ndeliver_to = \"%u@a.org\"\n{admin}"),
            "accounts = ",
            "\"everyone\" is neither \"all\" nor [[migrate.accounts]] tables",
        ),
        (
            format!("accounts = \"all\"\ndeliver_to = \"postmaster@a.org\"\n{admin}"),
            "deliver_to = ",
            "`deliver_to`: \"postmaster@a.org\" is not an address template",
        ),
        (
            format!("accounts = \"all\"\n{admin}"),
            "[migrate]",
            "accounts = \"all\" needs deliver_to",
        ),
        (
            "accounts = \"all\"\ndeliver_to = \"%u@a.org\"\n".to_string(),
            "[migrate]",
            "accounts = \"all\" needs source_admin",
        ),
    ];
    for (extra, at, message) in cases {
        let bad = with_migrate(&text, &extra);
        let found = problems(&path, &bad);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].message.contains(message), "{}", found[0]);
        let line = line_of(&bad, at).unwrap() + 1;
        assert!(
            found[0].to_string().contains(&format!("site.toml:{line}:")),
            "{} (expected line {line})",
            found[0]
        );
    }
    // A template beside an explicit list is a mistake, not a silent default.
    let bad = text.replace("[migrate]\n", "[migrate]\ndeliver_to = \"%u@a.org\"\n");
    let found = problems(&path, &bad);
    assert!(
        found[0]
            .message
            .contains("address template of accounts = \"all\""),
        "{found:?}"
    );
    // Problems inside an explicit account keep their positions.
    let bad = text.replace(
        "deliver_to = \"alice@laorganizacion.org\"",
        "deliver_to = \"alice\"",
    );
    let found = problems(&path, &bad);
    let line = line_of(&bad, "deliver_to = \"alice\"").unwrap() + 1;
    assert!(
        found[0].to_string().contains(&format!("site.toml:{line}:")),
        "{found:?}"
    );
}

#[test]
fn a_maildir_source_needs_no_password_and_needs_mta_maildir() {
    let dir = tempfile::tempdir().unwrap();
    let (path, text) = example_in(dir.path());
    let alice_pw = format!(
        "password_file = \"{}/secrets/alice.password\"\n",
        dir.path().display()
    );
    let maildir = text
        .replace(&alice_pw, "")
        .replace("# source = \"maildir\"\n", "source = \"maildir\"\n");
    // [mirror] refuses a Maildir source (the_mirror_refuses_a_maildir_source).
    let start = maildir.find("[mirror]\n").unwrap();
    let end = start + maildir[start..].find("\n\n").unwrap();
    let mirrored = maildir.clone();
    let maildir = format!("{}{}", &maildir[..start], &maildir[end + 2..]);
    let found = problems(&path, &mirrored);
    assert!(
        found.len() == 1
            && found[0]
                .message
                .starts_with("[mirror] needs `[migrate] source = \"server\"`"),
        "{found:?}"
    );
    let site = parse(&path, &maildir).unwrap();
    assert_eq!(site.migrate_source, super::MigrateSource::Maildir);
    assert_eq!(site.migrate[0].password_file, None);
    let shown = to_site_file(&site);
    assert!(shown.contains("source = \"maildir\""), "{shown}");
    let again = parse(&dir.path().join("elsewhere/shown.toml"), &shown).unwrap();
    assert_eq!(again.migrate_source, super::MigrateSource::Maildir);

    let no_root = maildir.replace("maildir = \"/var/vmail/%u/Maildir\"\n", "");
    let found = problems(&path, &no_root);
    assert!(
        found.iter().any(|p| p.message.contains("[mta] maildir")),
        "{found:?}"
    );
    let wrong = maildir.replace("source = \"maildir\"", "source = \"nfs\"");
    let found = problems(&path, &wrong);
    assert!(
        found
            .iter()
            .any(|p| p.message.contains("not one of server, maildir")),
        "{found:?}"
    );
}

#[test]
fn notify_reads_its_templates_and_locates_their_mistakes() {
    let dir = tempfile::tempdir().unwrap();
    let (path, text) = example_in(dir.path());
    let good = dir.path().join("takeover.txt");
    fs::write(
        &good,
        "Subject: Aviso {event}\n\nDesde {since}.\n{what_you_can_see}\n",
    )
    .unwrap();
    let bad = dir.path().join("failback.txt");
    fs::write(&bad, "Subject: Vuelta\n\nHola {usuario}\n").unwrap();
    let with = |templates: &str, rest: &str| {
        text.replace(
            "rate_limit = \"6h\"\n",
            &format!("rate_limit = \"2h\"\n{rest}templates = {{ {templates} }}\n"),
        )
    };
    let site = parse(&path, &with("takeover = \"takeover.txt\"", "")).unwrap();
    let n = site.notify.as_ref().unwrap();
    assert_eq!(n.rate_limit, Duration::from_secs(7200));
    assert_eq!(n.language, Language::Es);
    assert_eq!(n.templates.len(), 1);
    assert!(n.template(NotifyEvent::Takeover).is_some());
    assert!(n.template(NotifyEvent::Failback).is_none());
    let shown = to_site_file(&site);
    let again = parse(&dir.path().join("shown.toml"), &shown).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.notify, site.notify);

    let wrong = with(
        "failback = \"failback.txt\", mirror_missing = \"absent.txt\"",
        "",
    )
    .replace("language = \"es\"", "language = \"fr\"")
    .replace(
        "recipients = \"accounts\"",
        "recipients = [\"not an address\"]",
    )
    .replace(
        "events = [\"takeover\", \"failback\", \"mirror_missing\"]",
        "events = [\"outage\"]",
    );
    let found = problems(&path, &wrong);
    let messages: Vec<String> = found.iter().map(ToString::to_string).collect();
    let line = |needle: &str| wrong.lines().position(|l| l.starts_with(needle)).unwrap() + 1;
    let at = |needle: &str, what: &str| {
        messages
            .iter()
            .any(|m| m.contains(&format!("site.toml:{}:", line(needle))) && m.contains(what))
    };
    assert!(
        at("events = [\"outage\"]", "unknown event \"outage\""),
        "{messages:#?}"
    );
    assert!(at("recipients = [", "not an address"), "{messages:#?}");
    assert!(
        at("language = \"fr\"", "not one of es, en"),
        "{messages:#?}"
    );
    // The template's own position, after the site file's.
    assert!(
        at(
            "templates = ",
            &format!("{}:3:6: unknown placeholder {{usuario}}", bad.display())
        ),
        "{messages:#?}"
    );
    assert!(at("templates = ", "cannot read"), "{messages:#?}");
}

#[test]
fn notify_accounts_need_accounts_to_tell() {
    let dir = tempfile::tempdir().unwrap();
    let (path, text) = example_in(dir.path());
    let start = text.find("[[migrate.accounts]]").unwrap();
    let end = text[start..].find("\n# `posta mta`").unwrap() + start;
    let without = format!("{}{}", &text[..start], &text[end..]);
    let found = problems(&path, &without);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].message.contains("lists none"), "{found:#?}");
    let listed = without.replace(
        "recipients = \"accounts\"",
        "recipients = [\"ana@laorganizacion.org\"]",
    );
    let site = parse(&path, &listed).unwrap();
    assert_eq!(
        site.notify.unwrap().recipients,
        NotifyRecipients::List(vec!["ana@laorganizacion.org".into()])
    );
}
