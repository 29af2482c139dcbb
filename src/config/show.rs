//! [`Site`] written back as a site file: what `posta config show` prints.
//!
//! Every key has its effective value (defaults filled in, paths absolute), in the site file's
//! own spelling, so the output is itself a valid site file that reads back to the same site.

use std::path::Path;
use std::time::Duration;

use toml::{Table, Value};

use super::{
    MigrateAccount, MtaSection, NotifyRecipients, NotifySettings, Server, Service, Site,
    TakeoverMode, format_duration,
};
use crate::service::StartTls;

/// The site as a site file (TOML). Secret files appear by path, never by content.
pub fn to_site_file(site: &Site) -> String {
    let mut top = Table::new();
    top.insert("domain".into(), site.domain.clone().into());
    top.insert("primary".into(), server(&site.primary).into());
    top.insert("backup".into(), server(&site.backup).into());
    if let Some(relay) = &site.relay {
        top.insert("relay".into(), server(relay).into());
    }
    let mut takeover = Table::new();
    let mode = match site.takeover {
        TakeoverMode::Vip => "vip",
        TakeoverMode::Dns => "dns",
    };
    takeover.insert("mode".into(), mode.into());
    put_path(
        &mut takeover,
        "state_file",
        site.takeover_state_file.as_deref(),
    );
    top.insert("takeover".into(), takeover.into());
    top.insert("hooks".into(), hooks(site).into());
    if let Some(vip) = &site.vip {
        let mut t = Table::new();
        t.insert(
            "address".into(),
            format!("{}/{}", vip.address, vip.prefix).into(),
        );
        t.insert("interface".into(), vip.interface.clone().into());
        if let Some(label) = &vip.label {
            t.insert("label".into(), label.clone().into());
        }
        top.insert("vip".into(), t.into());
    }
    if let Some(dns) = &site.dns {
        let mut t = Table::new();
        t.insert("server".into(), dns.server.to_string().into());
        t.insert("zone".into(), dns.zone.clone().into());
        t.insert("name".into(), dns.name.clone().into());
        t.insert("ttl".into(), i64::from(dns.ttl).into());
        put_path(&mut t, "tsig_key_file", Some(&dns.tsig_key_file));
        put_path(&mut t, "zone_file", dns.zone_file.as_deref());
        if !dns.reload_command.is_empty() {
            t.insert("reload_command".into(), strings(&dns.reload_command));
        }
        top.insert("dns".into(), t.into());
    }
    let p = &site.probe;
    let mut probe = Table::new();
    probe.insert("interval".into(), duration(p.interval));
    probe.insert("timeout".into(), duration(p.timeout));
    probe.insert("fall".into(), i64::from(p.fall).into());
    probe.insert("rise".into(), i64::from(p.rise).into());
    probe.insert("takeover_grace".into(), duration(p.takeover_grace));
    probe.insert("helo".into(), p.helo.clone().into());
    top.insert("probe".into(), probe.into());
    let mut tls = Table::new();
    put_path(&mut tls, "ca_file", site.tls.ca_file.as_deref());
    tls.insert(
        "cert_warning_days".into(),
        i64::from(site.tls.cert_warning_days).into(),
    );
    tls.insert(
        "cert_critical_days".into(),
        i64::from(site.tls.cert_critical_days).into(),
    );
    top.insert("tls".into(), tls.into());
    if site.migrate_state_dir.is_some()
        || site.migrate_source != crate::config::MigrateSource::Server
        || !site.migrate.is_empty()
        || site.migrate_all.is_some()
        || site.migrate_source_admin.is_some()
        || site.migrate_dest_admin.is_some()
    {
        let mut t = Table::new();
        put_path(&mut t, "state_dir", site.migrate_state_dir.as_deref());
        if site.migrate_source == crate::config::MigrateSource::Maildir {
            t.insert("source".into(), "maildir".into());
        }
        for (key, admin) in [
            ("source_admin", &site.migrate_source_admin),
            ("dest_admin", &site.migrate_dest_admin),
        ] {
            if let Some(a) = admin {
                let mut at = Table::new();
                at.insert("user".into(), a.user.clone().into());
                put_path(&mut at, "password_file", Some(&a.password_file));
                at.insert("login".into(), a.login.name().into());
                t.insert(key.into(), at.into());
            }
        }
        if let Some(template) = &site.migrate_all {
            t.insert("accounts".into(), "all".into());
            t.insert("deliver_to".into(), template.as_str().into());
        }
        if !site.migrate.is_empty() {
            let accounts = site.migrate.iter().map(account).map(Value::Table);
            t.insert("accounts".into(), Value::Array(accounts.collect()));
        }
        top.insert("migrate".into(), t.into());
    }
    if let Some(mta) = &site.mta {
        top.insert("mta".into(), mta_table(mta).into());
    }
    let w = &site.watch;
    let mut watch = Table::new();
    watch.insert("auto_takeover".into(), w.auto_takeover.into());
    watch.insert("auto_failback".into(), w.auto_failback.into());
    let witnesses: Vec<String> = w.witnesses.iter().map(ToString::to_string).collect();
    watch.insert("witnesses".into(), strings(&witnesses));
    if let Some(listen) = w.listen {
        watch.insert("listen".into(), listen.to_string().into());
    }
    put_path(&mut watch, "state_file", w.state_file.as_deref());
    let sweep = w.sweep_interval.map_or_else(|| "off".into(), duration);
    watch.insert("sweep_interval".into(), sweep);
    top.insert("watch".into(), watch.into());
    if let Some(n) = &site.notify {
        top.insert("notify".into(), notify(n).into());
    }
    // Without [mirror] there is no mirror: showing the defaults would turn one on.
    if site.mirror.enabled {
        let mut mirror = Table::new();
        mirror.insert("interval".into(), duration(site.mirror.interval));
        put_path(&mut mirror, "state_dir", site.mirror.state_dir.as_deref());
        mirror.insert("max_lag".into(), duration(site.mirror.max_lag));
        top.insert("mirror".into(), mirror.into());
    }
    // A table of strings, numbers and arrays always serializes; an empty string would only
    // hide a bug, so say so in the output instead.
    toml::to_string_pretty(&top).unwrap_or_else(|e| format!("# cannot write the site: {e}\n"))
}

fn server(s: &Server) -> Table {
    let mut t = Table::new();
    t.insert("name".into(), s.name.clone().into());
    t.insert("address".into(), s.address.to_string().into());
    if let Some(a) = s.probe_address {
        t.insert("probe_address".into(), a.to_string().into());
    }
    let services: Vec<String> = s.services.iter().map(service).collect();
    t.insert("services".into(), strings(&services));
    if let Some(account) = &s.probe_account {
        t.insert("probe_user".into(), account.user.clone().into());
        put_path(&mut t, "probe_password_file", Some(&account.password_file));
    }
    t
}

/// `smtp`, `imap:10143`, `submission?starttls=require`: the shortest spelling that parses back.
fn service(s: &Service) -> String {
    let mut text = s.scheme.name().to_string();
    if s.port != s.scheme.default_port() {
        text.push_str(&format!(":{}", s.port));
    }
    if s.starttls != StartTls::Auto {
        text.push_str(&format!("?starttls={}", s.starttls.name()));
    }
    text
}

fn hooks(site: &Site) -> Table {
    let h = &site.hooks;
    let mut t = Table::new();
    for (key, list) in [
        ("on_transition", &h.on_transition),
        ("pre_takeover", &h.pre_takeover),
        ("post_takeover", &h.post_takeover),
        ("pre_failback", &h.pre_failback),
        ("post_failback", &h.post_failback),
    ] {
        let argvs = list.iter().map(|argv| strings(argv));
        t.insert(key.into(), Value::Array(argvs.collect()));
    }
    t.insert("timeout".into(), duration(h.timeout));
    t
}

fn notify(n: &NotifySettings) -> Table {
    let mut t = Table::new();
    let events: Vec<String> = n.events.iter().map(|e| e.name().to_string()).collect();
    t.insert("events".into(), strings(&events));
    let recipients = match &n.recipients {
        NotifyRecipients::Accounts => "accounts".into(),
        NotifyRecipients::List(list) => strings(list),
    };
    t.insert("recipients".into(), recipients);
    if let Some(from) = &n.from {
        t.insert("from".into(), from.clone().into());
    }
    t.insert("language".into(), n.language.name().into());
    t.insert("rate_limit".into(), duration(n.rate_limit));
    if !n.templates.is_empty() {
        let mut templates = Table::new();
        for file in &n.templates {
            put_path(&mut templates, file.event.name(), Some(&file.path));
        }
        t.insert("templates".into(), templates.into());
    }
    t
}

fn account(a: &MigrateAccount) -> Table {
    let mut t = Table::new();
    t.insert("user".into(), a.user.clone().into());
    put_path(&mut t, "password_file", a.password_file.as_deref());
    t.insert("deliver_to".into(), a.deliver_to.clone().into());
    if let Some(u) = &a.dest_user {
        t.insert("dest_user".into(), u.clone().into());
    }
    put_path(
        &mut t,
        "dest_password_file",
        a.dest_password_file.as_deref(),
    );
    t
}

fn mta_table(m: &MtaSection) -> Table {
    let mut t = Table::new();
    let addrs = |list: &[std::net::SocketAddr]| {
        let text: Vec<String> = list.iter().map(ToString::to_string).collect();
        strings(&text)
    };
    let mut list = |key: &str, value: Value| {
        if value.as_array().is_some_and(|a| !a.is_empty()) {
            t.insert(key.into(), value);
        }
    };
    list("listen", addrs(&m.listen));
    list("domains", strings(&m.domains));
    list("relay_domains", strings(&m.relay_domains));
    list("pop3_listen", addrs(&m.pop3_listen));
    list("pop3s_listen", addrs(&m.pop3s_listen));
    if let Some(h) = &m.hostname {
        t.insert("hostname".into(), h.clone().into());
    }
    if let Some(r) = &m.relay_to {
        t.insert("relay_to".into(), r.clone().into());
    }
    if let Some(r) = &m.relay_tls {
        t.insert("relay_tls".into(), r.clone().into());
    }
    if let Some(o) = &m.maildir_owner {
        t.insert("maildir_owner".into(), o.clone().into());
    }
    for (key, path) in [
        ("maildir", &m.maildir),
        ("queue", &m.queue),
        ("control_socket", &m.control_socket),
        ("access", &m.access),
        ("virtusertable", &m.virtusertable),
        ("local_host_names", &m.local_host_names),
        ("recipients", &m.recipients),
        ("pop3_users", &m.pop3_users),
        ("tls_cert", &m.tls_cert),
        ("tls_key", &m.tls_key),
        ("vip_tls_cert", &m.vip_tls_cert),
        ("vip_tls_key", &m.vip_tls_key),
    ] {
        put_path(&mut t, key, path.as_deref());
    }
    if m.verify_recipients {
        t.insert("verify_recipients".into(), true.into());
    }
    for (key, n) in [
        ("max_message_size", m.max_message_size),
        ("min_free", m.min_free),
        ("max_recipients", m.max_recipients.map(|n| n as u64)),
        ("max_connections", m.max_connections.map(|n| n as u64)),
        ("max_per_ip", m.max_per_ip.map(|n| n as u64)),
    ] {
        if let Some(n) = n {
            // TOML integers are i64; a larger limit is written as the largest one.
            t.insert(key.into(), i64::try_from(n).unwrap_or(i64::MAX).into());
        }
    }
    for (key, d) in [
        ("timeout", m.timeout),
        ("retry_min", m.retry_min),
        ("retry_max", m.retry_max),
        ("lifetime", m.lifetime),
    ] {
        if let Some(d) = d {
            t.insert(key.into(), duration(d));
        }
    }
    t
}

fn strings(list: &[String]) -> Value {
    Value::Array(list.iter().cloned().map(Value::String).collect())
}

fn duration(d: Duration) -> Value {
    format_duration(d).into()
}

fn put_path(t: &mut Table, key: &str, path: Option<&Path>) {
    if let Some(p) = path {
        t.insert(key.into(), p.display().to_string().into());
    }
}
