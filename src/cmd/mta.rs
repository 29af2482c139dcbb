//! `posta mta`: run the mini-MTA (SMTP listener, queue runner, control socket, POP3), or
//! `posta mta explain`: decide one recipient with the tables and print the trail.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use super::{EXIT_FAILURE, EXIT_USAGE, print};
use crate::cli::{ExplainArgs, MtaArgs, MtaCommand, MtaRunArgs, RelayTlsArg};
use crate::config::MtaSection;
use crate::mta::owner::Owner;
use crate::mta::policy::{Domains, Verdict, decide};
use crate::mta::pop3::{self, Pop3Config};
use crate::mta::recipients::Recipients;
use crate::mta::relay::{RelayConfig, Runner};
use crate::mta::route::{LookupOptions, Router, SelfIdentity};
use crate::mta::server::{Mta, load_tables, serve};
use crate::mta::settings::{self, NextHop, RelayTls, Settings, SettingsError};
use crate::mta::spool::Spool;
use crate::mta::tables::{Access, LocalHostNames, TableError, Tables, VirtUser, lint};
use crate::mta::tls::{CertFiles, Identities, Tls, VipIdentity};
use crate::mta::users::Users;
use crate::mta::verify::Verifier;
use crate::mta::{control, maildir};

pub fn execute(config: Option<PathBuf>, args: MtaArgs) -> u8 {
    match args.command {
        Some(MtaCommand::Explain(a)) => explain(&a),
        Some(MtaCommand::Passwd { user }) => passwd(&user),
        None => {
            let settings = match settings(config, &args.run) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("posta mta: {e}");
                    return EXIT_USAGE;
                }
            };
            super::runtime().block_on(run(settings))
        }
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// What `posta mta` reads from the site file: `[mta]`, the CA file and the VIP.
pub(super) struct SiteMta {
    pub mta: Option<MtaSection>,
    pub ca_file: Option<PathBuf>,
    /// Where mailserver1's certificate is presented.
    pub vip: Option<IpAddr>,
}

/// The site file's `[mta]` when there is a site file: the one `--config`/`POSTA_CONFIG`
/// names, else the default path if it exists. Without one, the flags alone decide.
pub(super) fn site_section(config: Option<PathBuf>) -> Result<SiteMta, String> {
    let path = match config {
        Some(p) => p,
        None if Path::new(crate::config::DEFAULT_PATH).exists() => {
            PathBuf::from(crate::config::DEFAULT_PATH)
        }
        None => {
            return Ok(SiteMta {
                mta: None,
                ca_file: None,
                vip: None,
            });
        }
    };
    let site = crate::config::load(&path).map_err(|e| e.to_string())?;
    Ok(SiteMta {
        mta: site.mta,
        ca_file: site.tls.ca_file,
        vip: site.vip.map(|v| v.address),
    })
}

/// The flags over the site file's `[mta]`: a flag given wins, a list flag given replaces the
/// site's list.
fn merge(
    site: MtaSection,
    site_ca: Option<PathBuf>,
    site_vip: Option<IpAddr>,
    a: &MtaRunArgs,
) -> Result<MtaRunArgs, String> {
    let list = |flag: &Vec<std::net::SocketAddr>, site: Vec<std::net::SocketAddr>| {
        if flag.is_empty() { site } else { flag.clone() }
    };
    let strings = |flag: &Vec<String>, site: Vec<String>| {
        if flag.is_empty() { site } else { flag.clone() }
    };
    let relay_tls = match (a.relay_tls, site.relay_tls) {
        (Some(t), _) => Some(t),
        (None, Some(t)) => Some(
            <RelayTlsArg as clap::ValueEnum>::from_str(&t, true)
                .map_err(|e| format!("[mta] relay_tls: {e}"))?,
        ),
        (None, None) => None,
    };
    Ok(MtaRunArgs {
        listen: list(&a.listen, site.listen),
        hostname: a.hostname.clone().or(site.hostname),
        domain: strings(&a.domain, site.domains),
        relay_domain: strings(&a.relay_domain, site.relay_domains),
        maildir: a.maildir.clone().or(site.maildir),
        maildir_owner: a.maildir_owner.clone().or(site.maildir_owner),
        queue: a.queue.clone().or(site.queue),
        control_socket: a.control_socket.clone().or(site.control_socket),
        relay_to: a.relay_to.clone().or(site.relay_to),
        relay_tls,
        ca_file: a.ca_file.clone().or(site_ca),
        mx_port: a.mx_port,
        dns_server: a.dns_server,
        access: a.access.clone().or(site.access),
        virtusertable: a.virtusertable.clone().or(site.virtusertable),
        local_host_names: a.local_host_names.clone().or(site.local_host_names),
        recipients: a.recipients.clone().or(site.recipients),
        verify_recipients: a.verify_recipients || site.verify_recipients,
        pop3_listen: list(&a.pop3_listen, site.pop3_listen),
        pop3s_listen: list(&a.pop3s_listen, site.pop3s_listen),
        pop3_users: a.pop3_users.clone().or(site.pop3_users),
        pop3_max_per_ip: a.pop3_max_per_ip,
        tls_cert: a.tls_cert.clone().or(site.tls_cert),
        tls_key: a.tls_key.clone().or(site.tls_key),
        vip_tls_cert: a.vip_tls_cert.clone().or(site.vip_tls_cert),
        vip_tls_key: a.vip_tls_key.clone().or(site.vip_tls_key),
        vip_address: a.vip_address.or(site_vip),
        max_message_size: a.max_message_size.or(site.max_message_size),
        max_recipients: a.max_recipients.or(site.max_recipients),
        max_connections: a.max_connections.or(site.max_connections),
        max_per_ip: a.max_per_ip.or(site.max_per_ip),
        timeout: a.timeout.or(site.timeout),
        retry_min: a.retry_min.or(site.retry_min),
        retry_max: a.retry_max.or(site.retry_max),
        lifetime: a.lifetime.or(site.lifetime),
        min_free: a.min_free.or(site.min_free),
    })
}

/// Settings from the site file's `[mta]` and the command line.
fn settings(config: Option<PathBuf>, flags: &MtaRunArgs) -> Result<Settings, String> {
    let SiteMta {
        mta: section,
        ca_file: site_ca,
        vip: site_vip,
    } = site_section(config)?;
    let merged;
    let a = match section {
        Some(section) => {
            merged = merge(section, site_ca, site_vip, flags)?;
            &merged
        }
        None => flags,
    };
    let mut s = Settings::new(a.hostname.clone().unwrap_or_else(host_name));
    s.listen = a.listen.clone();
    let domains =
        |f: fn(&'static str, &str) -> Result<String, SettingsError>, flag, list: &[String]| {
            list.iter()
                .map(|d| f(flag, d))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())
        };
    if a.maildir.is_some() {
        s.domains.local = domains(settings::domain, "--domain", &a.domain)?;
    } else {
        s.domains.relay = domains(settings::relay_domain, "--domain", &a.domain)?;
    }
    let relay = domains(settings::relay_domain, "--relay-domain", &a.relay_domain)?;
    s.domains.relay.extend(relay);
    s.maildir = a.maildir.clone();
    if let Some(spec) = &a.maildir_owner {
        s.owner = Some(Owner::resolve(spec).map_err(|e| e.to_string())?);
    }
    s.queue = a.queue.clone();
    if let Some(p) = &a.control_socket {
        s.control_socket = p.clone();
    }
    if let Some(to) = &a.relay_to {
        let (host, port) = to
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
            .ok_or_else(|| format!("--relay-to {to:?}: expected HOST:PORT"))?;
        s.next_hop = NextHop::Smarthost {
            host: host.to_string(),
            port,
        };
        s.relay_tls = RelayTls::Require;
    } else if let Some(port) = a.mx_port
        && let NextHop::Mx { port: p, .. } = &mut s.next_hop
    {
        *p = port;
    }
    if let Some(t) = a.relay_tls {
        s.relay_tls = match t {
            RelayTlsArg::Require => RelayTls::Require,
            RelayTlsArg::May => RelayTls::May,
            RelayTlsArg::None => RelayTls::None,
        };
    }
    s.ca_file = a.ca_file.clone();
    s.nameserver = a.dns_server;
    s.access = a.access.clone();
    s.virtusertable = a.virtusertable.clone();
    s.local_host_names = a.local_host_names.clone();
    s.recipients = a.recipients.clone();
    s.verify_recipients = a.verify_recipients;
    s.tls_cert = a.tls_cert.clone();
    s.tls_key = a.tls_key.clone();
    if a.vip_tls_cert.is_some() && a.tls_cert.is_none() {
        return Err("--vip-tls-cert needs --tls-cert and --tls-key for this host's own".into());
    }
    if a.vip_tls_cert.is_some() != a.vip_tls_key.is_some() {
        return Err("--vip-tls-cert and --vip-tls-key go together".into());
    }
    s.vip_tls_cert = a.vip_tls_cert.clone();
    s.vip_tls_key = a.vip_tls_key.clone();
    s.vip_address = a.vip_address;
    if !a.pop3_listen.is_empty() || !a.pop3s_listen.is_empty() {
        let users = a
            .pop3_users
            .clone()
            .ok_or("--pop3-listen needs --pop3-users FILE")?;
        if !a.pop3s_listen.is_empty() && a.tls_cert.is_none() {
            return Err("--pop3s-listen needs --tls-cert and --tls-key".into());
        }
        s.pop3 = Some(crate::mta::settings::Pop3 {
            listen: a.pop3_listen.clone(),
            listen_tls: a.pop3s_listen.clone(),
            users,
            max_per_ip: a
                .pop3_max_per_ip
                .map_or(20, |n| usize::try_from(n).unwrap_or(usize::MAX)),
        });
    }
    if let Some(n) = a.max_message_size {
        s.limits.max_message_size = n;
    }
    if let Some(n) = a.max_recipients {
        s.limits.max_recipients = n;
    }
    if let Some(n) = a.max_connections {
        s.max_connections = n;
    }
    if let Some(n) = a.max_per_ip {
        s.max_per_ip = n;
    }
    if let Some(t) = a.timeout {
        s.timeout = t;
    }
    if let Some(t) = a.retry_min {
        s.retry.min_backoff = t.max(std::time::Duration::from_secs(1));
    }
    if let Some(t) = a.retry_max {
        s.retry.max_backoff = t;
    }
    s.retry.max_backoff = s.retry.max_backoff.max(s.retry.min_backoff);
    if let Some(t) = a.lifetime {
        s.retry.lifetime = t;
    }
    if let Some(n) = a.min_free {
        s.min_free = n;
    }
    s.validate().map_err(|e| e.to_string())?;
    Ok(s)
}

/// Owns the queue for the life of the process: one mta per queue.
/// The certificates the settings name: this host's own, and mailserver1's for the VIP.
fn identities(s: &Settings) -> Option<Identities> {
    let (cert, key) = (s.tls_cert.clone()?, s.tls_key.clone()?);
    let vip = match (&s.vip_tls_cert, &s.vip_tls_key) {
        (Some(cert), Some(key)) => Some(VipIdentity {
            files: CertFiles {
                cert: cert.clone(),
                key: key.clone(),
            },
            address: s.vip_address,
        }),
        _ => None,
    };
    Some(Identities {
        own: CertFiles { cert, key },
        vip,
    })
}

fn lock_queue(dir: &Path) -> Result<std::fs::File, String> {
    let busy = format!(
        "another posta mta is running on the queue {}",
        dir.display()
    );
    super::exclusive_lock(&dir.join("lock"), &busy)
}

async fn run(settings: Settings) -> u8 {
    match start(settings).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("posta mta: {e}");
            EXIT_FAILURE
        }
    }
}

async fn start(settings: Settings) -> Result<u8, String> {
    // Before anything is made on disk: who runs this cannot become the owner or write as it.
    let drop_root = match &settings.owner {
        Some(owner) => {
            let (uid, gid) = (nix::unistd::Uid::effective(), nix::unistd::Gid::effective());
            owner.must_drop(uid, gid).map_err(|e| e.to_string())?
        }
        None => false,
    };
    let tables = load_tables(&settings).map_err(|e| e.to_string())?;
    let recipients = match &settings.recipients {
        Some(p) => Some(Recipients::load(p).map_err(|e| e.to_string())?),
        None => None,
    };
    for w in lint(&tables, &settings.domains.relay) {
        warn!("{w}");
    }
    if recipients.is_none() && !settings.domains.relay.is_empty() {
        warn!(
            "no --recipients list: mail for unknown users of the relay domains is accepted \
             and bounced later (backscatter)"
        );
    }
    let acceptor = match identities(&settings) {
        Some(ids) => Some(Arc::new(Tls::load(ids).map_err(|e| e.to_string())?)),
        None => None,
    };
    let (spool, _lock, control) = match &settings.queue {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create the queue {}: {e}", dir.display()))?;
            let lock = lock_queue(dir)?;
            let spool = Spool::open(dir).map_err(|e| format!("queue {}: {e}", dir.display()))?;
            // Before any session runs: the sweep would take the files it is writing.
            let sweep = spool.clone();
            match tokio::task::spawn_blocking(move || sweep.sweep_tmp()).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => info!(files = n, "removed unfinished queue files left by a crash"),
                Ok(Err(e)) => warn!(error = %e, "cannot sweep the queue's tmp directory"),
                Err(e) => warn!(error = %e, "cannot sweep the queue's tmp directory"),
            }
            let control = control::bind(&settings.control_socket).map_err(|e| e.to_string())?;
            (Some(spool), Some(lock), Some(control))
        }
        None => (None, None, None),
    };
    if let Some(root) = &settings.maildir {
        let root = maildir::base(root);
        match &settings.owner {
            Some(owner) => owner.claim_dir(&root).map_err(|e| e.to_string())?,
            None => std::fs::create_dir_all(&root)
                .map_err(|e| format!("cannot create {}: {e}", root.display()))?,
        }
    }
    let mut listeners = Vec::new();
    for addr in &settings.listen {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        listeners.push(l);
    }
    let pop3 = match &settings.pop3 {
        Some(p) => Some(bind_pop3(p).await?),
        None => None,
    };
    // Every port is bound and every root-only file read (TLS key, POP3 users): no session
    // ever runs as root.
    match &settings.owner {
        Some(owner) => become_owner(&settings, owner, drop_root, control.is_some())?,
        None if nix::unistd::Uid::effective().is_root() && settings.maildir.is_some() => warn!(
            "running as root without --maildir-owner: the Maildirs are root's, and a Dovecot \
             running mail as another user cannot use them"
        ),
        None => {}
    }
    let (flush_tx, flush_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let runner = match &spool {
        Some(spool) => Some(Arc::new(Runner::new(
            spool.clone(),
            RelayConfig {
                router: router(&settings)?,
                hostname: settings.limits.hostname.clone(),
                next_hop: settings.next_hop.clone(),
                tls: settings.relay_tls,
                ca_file: settings.ca_file.clone(),
                retry: settings.retry.clone(),
                connections: settings.relay_connections,
                timeout: std::time::Duration::from_secs(60),
            },
        ))),
        None => None,
    };
    let verifier = match (&runner, &settings.queue) {
        (Some(r), Some(q)) if settings.verify_recipients => Some(Verifier::open(q, Arc::clone(r))),
        _ => None,
    };
    let mta = Arc::new(
        Mta::new(
            settings.clone(),
            tables,
            recipients,
            spool.clone(),
            verifier,
            acceptor.clone(),
            flush_tx.clone(),
        )
        .map_err(|e| format!("cannot start the store: {e}"))?,
    );
    for l in listeners {
        tasks.spawn(serve(l, Arc::clone(&mta), stop_rx.clone()));
    }
    if let (Some(runner), Some(control)) = (runner, control) {
        let stop = stop_rx.clone();
        tasks.spawn(async move {
            runner.run(flush_rx, stop).await;
            Ok(())
        });
        let socket = settings.control_socket.clone();
        let stop = stop_rx.clone();
        tasks.spawn(async move { control::serve(control, &socket, flush_tx, stop).await });
    }
    let pop3 = match pop3 {
        Some(bound) => Some(start_pop3(
            &settings, bound, acceptor, &stop_rx, &mut tasks,
        )?),
        None => None,
    };
    info!(listen = ?settings.listen, hostname = %settings.limits.hostname, "posta mta started");
    let code = signals(&mta, pop3.as_deref(), &mut tasks).await;
    let _ = stop_tx.send(true);
    while let Some(r) = tasks.join_next().await {
        if let Ok(Err(e)) = r {
            error!(error = %e, "task failed");
        }
    }
    info!("posta mta stopped");
    Ok(code)
}

/// The resolver and who we are, so MX delivery never hands mail back to us or to an MX
/// host no better than us: our host names and every address on our interfaces.
fn router(settings: &Settings) -> Result<Router, String> {
    let (names, port) = match &settings.next_hop {
        NextHop::Mx { me, port } => (me.clone(), *port),
        NextHop::Smarthost { .. } => (vec![settings.limits.hostname.clone()], 25),
    };
    let names = names
        .iter()
        .filter_map(|n| hickory_resolver::proto::rr::Name::from_ascii(n).ok())
        .collect();
    let mut addrs: Vec<std::net::IpAddr> = nix::ifaddrs::getifaddrs()
        .map(|ifs| {
            ifs.filter_map(|i| {
                let a = i.address?;
                a.as_sockaddr_in()
                    .map(|v4| std::net::IpAddr::V4(v4.ip()))
                    .or_else(|| a.as_sockaddr_in6().map(|v6| std::net::IpAddr::V6(v6.ip())))
            })
            .collect()
        })
        .unwrap_or_default();
    addrs.extend(
        settings
            .listen
            .iter()
            .map(|l| l.ip())
            .filter(|ip| !ip.is_unspecified()),
    );
    if let NextHop::Smarthost { port: hop_port, .. } = &settings.next_hop {
        // A smarthost is "us" only on the port we listen on: a filter or the primary on
        // another port of this host (127.0.0.1:10025) is a legitimate next hop.
        if !settings.listen.iter().any(|l| l.port() == *hop_port) {
            addrs.clear();
        }
    }
    let opts = LookupOptions {
        port,
        nameserver: settings.nameserver,
        ..LookupOptions::default()
    };
    Router::new(SelfIdentity { names, addrs }, &opts).map_err(|e| e.to_string())
}

/// Once every port is bound: the queue (posta's own, perhaps left by a run as root) and the
/// control socket become the owner's, then the process does for good. Either way the owner
/// must be able to write where mail goes, or nothing starts.
fn become_owner(
    settings: &Settings,
    owner: &Owner,
    drop_root: bool,
    control: bool,
) -> Result<(), String> {
    let err = |e: crate::mta::owner::OwnerError| e.to_string();
    if drop_root {
        if let Some(queue) = &settings.queue {
            owner.claim_tree(queue).map_err(err)?;
        }
        if control {
            owner.claim_file(&settings.control_socket).map_err(err)?;
        }
        if let Some(root) = &settings.maildir
            && settings.queue.is_none()
        {
            let spill = maildir::spill_dir(root);
            if spill.exists() {
                owner.claim_tree(&spill).map_err(err)?;
            }
        }
        owner.become_owner().map_err(err)?;
        info!(user = %owner.user, uid = %owner.uid, gid = %owner.gid, "dropped root");
    }
    for dir in [
        settings.maildir.as_deref().map(maildir::base),
        settings.queue.clone(),
    ]
    .iter()
    .flatten()
    {
        owner.check_writable(dir).map_err(err)?;
    }
    Ok(())
}

/// The POP3 listeners (plain with STLS, and implicit TLS), bound, and the users file, read:
/// both before the drop from root.
struct Pop3Bound {
    users: Users,
    listeners: Vec<(tokio::net::TcpListener, bool)>,
}

async fn bind_pop3(p: &crate::mta::settings::Pop3) -> Result<Pop3Bound, String> {
    let users = Users::load(&p.users).map_err(|e| e.to_string())?;
    let addrs = p
        .listen
        .iter()
        .map(|a| (a, false))
        .chain(p.listen_tls.iter().map(|a| (a, true)));
    let mut listeners = Vec::new();
    for (addr, tls) in addrs {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr} for POP3: {e}"))?;
        listeners.push((l, tls));
    }
    Ok(Pop3Bound { users, listeners })
}

/// Serves POP3 over the Maildirs on the listeners [`bind_pop3`] bound.
fn start_pop3(
    settings: &Settings,
    bound: Pop3Bound,
    acceptor: Option<Arc<Tls>>,
    stop: &watch::Receiver<bool>,
    tasks: &mut tokio::task::JoinSet<std::io::Result<()>>,
) -> Result<Arc<Pop3Config>, String> {
    let p = settings.pop3.as_ref().ok_or("POP3 needs --pop3-listen")?;
    let users = bound.users;
    let root = settings.maildir.clone().ok_or("POP3 needs --maildir")?;
    let mut cfg = Pop3Config::new(root, users);
    cfg.tls = acceptor;
    cfg.write_timeout = settings.timeout;
    cfg.max_per_ip = p.max_per_ip;
    let cfg = Arc::new(cfg);
    let mut tls_cfg = (*cfg).clone();
    tls_cfg.implicit_tls = true;
    let tls_cfg = Arc::new(tls_cfg);
    for (l, implicit_tls) in bound.listeners {
        let c = if implicit_tls { &tls_cfg } else { &cfg };
        let (c, mut stop) = (Arc::clone(c), stop.clone());
        tasks.spawn(async move {
            let shutdown = async move { crate::shutdown::stopped(&mut stop).await };
            pop3::serve(l, c, shutdown)
                .await
                .map_err(std::io::Error::other)
        });
    }
    Ok(cfg)
}

/// SIGHUP reloads the tables (and the POP3 users); SIGTERM and SIGINT stop. A task that
/// dies is fatal.
async fn signals(
    mta: &Mta,
    pop3: Option<&Pop3Config>,
    tasks: &mut tokio::task::JoinSet<std::io::Result<()>>,
) -> u8 {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut hup), Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        error!("cannot install signal handlers");
        return EXIT_FAILURE;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => {
                match mta.reload() {
                    Ok(()) => info!("tables reloaded"),
                    Err(e) => error!("reload failed, keeping the old tables: {e}"),
                }
                if let Some(tls) = mta.tls() {
                    match tls.reload() {
                        Ok(()) => info!("certificates reloaded"),
                        Err(e) => error!("reload failed, keeping the old certificates: {e}"),
                    }
                }
                if let (Some(p), Some(path)) = (pop3, mta.settings.pop3.as_ref().map(|p| &p.users)) {
                    match Users::load(path) {
                        Ok(u) => { p.set_users(u); info!("POP3 users reloaded") }
                        Err(e) => error!("reload failed, keeping the old POP3 users: {e}"),
                    }
                }
            }
            _ = term.recv() => return 0,
            _ = int.recv() => return 0,
            done = tasks.join_next() => {
                if let Some(Ok(Err(e))) = done {
                    error!(error = %e, "a listener failed");
                    return EXIT_FAILURE;
                }
            }
        }
    }
}

/// `user:{SHA512-CRYPT}...` for the POP3 users file; the password comes from stdin.
fn passwd(user: &str) -> u8 {
    if maildir::user_dir(Path::new("/"), user).is_none() {
        eprintln!("posta mta passwd: {user:?} is not a usable user name");
        return EXIT_USAGE;
    }
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).is_err() {
        eprintln!("posta mta passwd: cannot read the password from stdin");
        return EXIT_FAILURE;
    }
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        eprintln!("posta mta passwd: empty password on stdin");
        return EXIT_USAGE;
    }
    print(&format!(
        "{user}:{}\n",
        crate::mta::users::hash_password(password)
    ));
    0
}

fn load<T: Default>(
    path: Option<&Path>,
    f: fn(&Path) -> Result<T, TableError>,
) -> Result<T, TableError> {
    path.map_or_else(|| Ok(T::default()), f)
}

fn explain(args: &ExplainArgs) -> u8 {
    let tables = (|| {
        Ok::<_, TableError>(Tables {
            access: load(args.access.as_deref(), Access::load)?,
            virtuser: load(args.virtusertable.as_deref(), VirtUser::load)?,
            hosts: load(args.local_host_names.as_deref(), LocalHostNames::load)?,
        })
    })();
    let tables = match tables {
        Ok(t) => t,
        Err(e) => {
            eprintln!("posta: {e}");
            return EXIT_USAGE;
        }
    };
    let d = decide(
        &tables,
        args.client,
        args.helo.as_deref(),
        &args.from,
        &args.rcpt,
        &Domains::default(),
    );
    let warnings = lint(&tables, &[]);
    if args.json {
        let value = json!({"verdict": d.verdict, "trail": d.trail, "warnings": warnings});
        print(&format!("{value}\n"));
    } else {
        let mut text = format!("{}\n", d.verdict);
        for step in &d.trail {
            text.push_str(&format!("  {step}\n"));
        }
        print(&text);
        for w in &warnings {
            eprintln!("warning: {w}");
        }
    }
    match d.verdict {
        Verdict::Reject(_) => EXIT_FAILURE,
        Verdict::Accept(_) | Verdict::Discard => 0,
    }
}
