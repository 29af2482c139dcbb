//! `posta migrate`: build the accounts from the site file or the ad hoc URLs, run, print the
//! reconciliation, exit 0 only when everything selected arrived and no mailbox in the site's
//! `[mta] maildir` holds mail that no account covers.

use std::path::{Path, PathBuf};

use super::{EXIT_FAILURE, EXIT_USAGE, print};
use crate::cli::{AdminVia, InboxVia, MigrateArgs, UnknownVia};
use crate::client::smtp::Dialect;
use crate::client::{Admin, AdminForm, Endpoint, Login};
use crate::config::{self, Site};
use crate::health::url::{self, UrlDefaults};
use crate::health::{Scheme, Target, TlsPolicy};
use crate::migrate::discover;
use crate::migrate::plan::{
    Account, Delivery, DestImap, InboxRoute, Options, Source, SourceKind, UnknownPolicy,
};
use crate::migrate::progress::Progress;
use crate::migrate::uncovered::{self, Mailbox};
use crate::mirror::back::ReturnReport;
use crate::secret::{self, Secret};

/// Where journals and the quarantine live unless the site file or --state-dir says otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/posta/migrate";

pub async fn execute(config: Option<PathBuf>, args: MigrateArgs) -> u8 {
    let returned = if args.carry_back {
        match carry_back(config.clone(), &args).await {
            Ok(r) => Some(r),
            Err(code) => return code,
        }
    } else {
        None
    };
    // The site file, password files and (for accounts = "all") the Maildirs are read from
    // disk: off the async threads.
    let planned = tokio::task::spawn_blocking(move || {
        let planned = plan(config, &args);
        (args, planned)
    })
    .await;
    let (args, planned) = match planned {
        Ok(p) => p,
        Err(e) => {
            eprintln!("posta migrate: internal error while planning: {e}");
            return EXIT_FAILURE;
        }
    };
    let (accounts, opts, coverage, _mirror_lock) = match planned {
        Ok(p) => p,
        Err(e) => {
            eprintln!("posta migrate: {e}");
            return EXIT_USAGE;
        }
    };
    let progress = Progress::new(args.json);
    let report = crate::migrate::run(accounts, &opts, &progress).await;
    let report = match coverage {
        Some(c) => report.with_uncovered(c.uncovered().await),
        None => report,
    };
    if args.json {
        // With --return: both reports, under "return" and "migrate".
        let json = match &returned {
            Some(back) => serde_json::to_string_pretty(&serde_json::json!({
                "return": back,
                "migrate": report,
            })),
            None => serde_json::to_string_pretty(&report),
        };
        match json {
            Ok(json) => print(&format!("{json}\n")),
            Err(e) => eprintln!("posta migrate: cannot encode the report: {e}"),
        }
    } else {
        print(&report.table());
    }
    let dry_ok = opts.dry_run
        && report.uncovered.is_empty()
        && report.accounts.iter().all(|a| a.error.is_none());
    let back_ok = returned.as_ref().is_none_or(|r| r.ok);
    if (report.ok || dry_ok) && back_ok {
        0
    } else {
        EXIT_FAILURE
    }
}

/// `--return`: what users did on mailserver2 to the mirror's copies, carried back to
/// mailserver1 for every account (or those named), under the mirror's lock. The hold is lifted
/// once every account's return completed; the migration follows either way (new mail home
/// does not wait for it). Err: the exit code of a refusal.
async fn carry_back(config: Option<PathBuf>, args: &MigrateArgs) -> Result<ReturnReport, u8> {
    let names = args.accounts.clone();
    let (ca_file, insecure, timeout) = (args.ca_file.clone(), args.insecure, args.timeout);
    let planned = tokio::task::spawn_blocking(move || -> Result<_, String> {
        let path = config.unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH));
        let site = config::load(&path).map_err(|e| e.to_string())?;
        if !site.mirror.enabled {
            return Err(
                "--return carries back what users did to the mirror's copies, and \
                        the site file has no [mirror]: without one, the plain posta migrate \
                        is the whole return"
                    .into(),
            );
        }
        let tls = TlsPolicy {
            ca_file: ca_file.or(site.tls.ca_file.clone()),
            insecure,
            ..TlsPolicy::default()
        };
        let accounts = super::mirror::accounts(&site, &names, &tls, timeout)?;
        let dir = super::mirror::state_dir(&site);
        let lock = super::exclusive_lock(
            &dir.join("lock"),
            "a posta mirror pass is running; stop it (the hold after a takeover keeps the \
             watch from starting one) and run the return again",
        )?;
        Ok((accounts, dir, lock))
    })
    .await;
    let (accounts, state_dir, lock) = match planned {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            eprintln!("posta migrate: {e}");
            return Err(EXIT_USAGE);
        }
        Err(e) => {
            eprintln!("posta migrate: internal error while planning the return: {e}");
            return Err(EXIT_FAILURE);
        }
    };
    let opts = crate::mirror::Options {
        state_dir,
        parallel: usize::from(args.parallel),
        batch: 50,
        settle: timeout,
    };
    let report = crate::mirror::back::run(accounts, &opts).await;
    if report.ok {
        if let Err(e) = crate::mirror::hold::release(&opts.state_dir) {
            eprintln!(
                "posta migrate: the return completed, but the mirror's hold in {} could not \
                 be lifted: {e}",
                opts.state_dir.display()
            );
        }
    } else {
        eprintln!(
            "posta migrate: the return did not complete for every account; the mirror stays \
             on hold until posta migrate --return completes"
        );
    }
    if !args.json {
        print(&report.table());
    }
    drop(lock);
    Ok(report)
}

/// The site's Maildir root on mailserver2 and the users its accounts cover: after the run,
/// any other mailbox there with mail is named and fails the run.
struct Coverage {
    maildir: PathBuf,
    covered: Vec<String>,
}

impl Coverage {
    /// Lists the mailboxes with mail that no account covers. A root not on this host (posta
    /// migrate runs elsewhere than the mta) is not checked; one that cannot be read is said
    /// on stderr, since the run cannot then vouch for every mailbox.
    async fn uncovered(self) -> Vec<Mailbox> {
        let Coverage { maildir, covered } = self;
        let shown = maildir.display().to_string();
        let found =
            tokio::task::spawn_blocking(move || uncovered::uncovered(&maildir, &covered)).await;
        match found {
            Ok(Ok(list)) => list,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Ok(Err(e)) => {
                eprintln!(
                    "posta migrate: cannot look for mailboxes no account covers in {shown}: {e}"
                );
                Vec::new()
            }
            Err(e) => {
                eprintln!("posta migrate: cannot look for mailboxes no account covers: {e}");
                Vec::new()
            }
        }
    }
}

/// The accounts, the options, what to check for coverage afterwards, and with `[mirror]` the
/// mirror's lock, held for the whole run (see [`mirror_copies`]).
type Plan = (
    Vec<Account>,
    Options,
    Option<Coverage>,
    Option<std::fs::File>,
);

fn plan(config: Option<PathBuf>, args: &MigrateArgs) -> Result<Plan, String> {
    if args.unseen && args.from.as_deref().is_some_and(|f| f.starts_with("pop3")) {
        return Err("--unseen needs an IMAP source: POP3 has no unread flag".into());
    }
    let tls = TlsPolicy {
        ca_file: args.ca_file.clone(),
        insecure: args.insecure,
        ..TlsPolicy::default()
    };
    let helo = args.helo.clone().unwrap_or_else(config::default_helo);
    let inbox = match args.inbox {
        InboxVia::Deliver => InboxRoute::Deliver,
        InboxVia::Append => InboxRoute::Append,
    };
    let (accounts, site_state, coverage, mirror_lock) = match &args.from {
        Some(from) => {
            let admins = Admins::new(args, None)?;
            (
                vec![ad_hoc(from, args, &admins, &tls, &helo, inbox)?],
                None,
                None,
                None,
            )
        }
        None => {
            let path = config.unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH));
            let site = config::load(&path).map_err(|e| e.to_string())?;
            let admins = Admins::new(args, Some(&site))?;
            let listed = site_accounts(&site)?;
            let mut accounts = from_site(&site, &listed, args, &admins, &tls, &helo, inbox)?;
            let mirror_lock = mirror_copies(&site, &mut accounts)?;
            // Every account of the site file covers its mailbox, also those --account left
            // out of this run: they are the operator's choice, not forgotten mail. With
            // accounts = "all" every Maildir is covered when the run starts; one made during
            // the run holds mail this run did not take, and is named.
            let coverage = site
                .mta
                .as_ref()
                .and_then(|m| m.maildir.clone())
                .map(|maildir| Coverage {
                    maildir,
                    covered: listed.iter().map(|a| a.user.clone()).collect(),
                });
            (
                accounts,
                site.migrate_state_dir.clone(),
                coverage,
                mirror_lock,
            )
        }
    };
    let opts = Options {
        keep: args.keep,
        unseen: args.unseen,
        dry_run: args.dry_run,
        folders: args.folders.clone(),
        state_dir: args
            .state_dir
            .clone()
            .or(site_state)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
        connections: usize::from(args.connections),
        parallel_accounts: usize::from(args.parallel),
        primary_connections: usize::from(args.max_primary_connections),
        retry_for: args.retry_for,
        settle: args.settle,
        batch: 100,
        verify: !args.no_verify,
        unknown: match args.unknown {
            UnknownVia::Keep => UnknownPolicy::Keep,
            UnknownVia::Resend => UnknownPolicy::Resend,
        },
    };
    Ok((accounts, opts, coverage, mirror_lock))
}

/// With `[mirror]`: the mirror's copies on mailserver2, for each account read over IMAP, so
/// the run leaves them in place (mailserver1 holds the originals). The mirror's lock is taken
/// first and held for the whole run: copies a pass made meanwhile would not be in the map
/// read here, and would be sent back as duplicates.
fn mirror_copies(site: &Site, accounts: &mut [Account]) -> Result<Option<std::fs::File>, String> {
    if !site.mirror.enabled {
        return Ok(None);
    }
    let dir = super::mirror::state_dir(site);
    if let Ok(Some(since)) = crate::mirror::hold::held(&dir) {
        eprintln!(
            "posta migrate: mailserver2 has served users since {} (the mirror is on hold); \
             posta migrate --return also carries back what they did there to the mirror's \
             copies (flags, moves, deletions, folders)",
            crate::clock::rfc3339(since)
        );
    }
    let lock = super::exclusive_lock(
        &dir.join("lock"),
        "a posta mirror pass is running; mailserver2's mailboxes are read once it ends, so \
         that every mirror copy is known",
    )?;
    let names: Vec<&str> = accounts.iter().map(|a| a.name.as_str()).collect();
    crate::mirror::adopt_state_files(&dir, &names).map_err(|e| e.to_string())?;
    for a in accounts.iter_mut() {
        if a.source.kind == SourceKind::Maildir {
            // The site file refuses [mirror] with a Maildir source.
            continue;
        }
        let path = crate::mirror::state_path(&dir, &a.name);
        let state = crate::mirror::state::AccountState::load(&path).map_err(|e| e.to_string())?;
        let copies = crate::mirror::status::copies(&state);
        if a.source.kind == SourceKind::Pop3 {
            // POP3 cannot tell the copies apart. A backup read over POP3 lists no IMAP
            // service, so no mirror ran there, unless the state says otherwise.
            if copies.folders.values().any(|(_, uids)| !uids.is_empty()) {
                return Err(format!(
                    "account {:?} is read over POP3, which cannot tell the mirror's copies on \
                     mailserver2 apart ({} names some): list an imap or imaps service for the \
                     backup server",
                    a.name,
                    path.display()
                ));
            }
            continue;
        }
        a.mirror_copies = Some(copies);
    }
    Ok(Some(lock))
}

pub(super) fn read_secret(path: &Path) -> Result<Secret, String> {
    secret::read_password(path).map_err(|e| e.to_string())
}

/// An admin identity with its password, read once for every account.
pub(super) struct AdminLogin {
    admin: Admin,
    password: Secret,
}

impl AdminLogin {
    /// The flags' identity, else the site file's; `--admin-login` overrides how it logs in.
    pub(super) fn pick(
        flag: Option<(&String, &PathBuf)>,
        site: Option<&config::MigrateAdmin>,
        via: Option<AdminVia>,
    ) -> Result<Option<AdminLogin>, String> {
        let (user, file, site_form) = match (flag, site) {
            (Some((user, file)), _) => (user.clone(), file.clone(), AdminForm::Auto),
            (None, Some(a)) => (a.user.clone(), a.password_file.clone(), a.login),
            (None, None) => return Ok(None),
        };
        let form = match via {
            None => site_form,
            Some(AdminVia::Auto) => AdminForm::Auto,
            Some(AdminVia::Plain) => AdminForm::Plain,
            Some(AdminVia::Separator) => AdminForm::Separator,
        };
        Ok(Some(AdminLogin {
            admin: Admin { user, form },
            password: read_secret(&file)?,
        }))
    }

    /// Logs in as `user` with this identity.
    pub(super) fn login_as(&self, user: &str) -> Login {
        Login {
            user: user.to_owned(),
            password: self.password.clone(),
            admin: Some(self.admin.clone()),
        }
    }
}

/// The admin identities of mailserver2 (source) and mailserver1 (dest), if any.
struct Admins {
    source: Option<AdminLogin>,
    dest: Option<AdminLogin>,
}

impl Admins {
    fn new(args: &MigrateArgs, site: Option<&Site>) -> Result<Admins, String> {
        let source = args
            .source_admin
            .as_ref()
            .zip(args.source_admin_password_file.as_ref());
        let dest = args
            .dest_admin
            .as_ref()
            .zip(args.dest_admin_password_file.as_ref());
        Ok(Admins {
            source: AdminLogin::pick(
                source,
                site.and_then(|s| s.migrate_source_admin.as_ref()),
                args.admin_login,
            )?,
            dest: AdminLogin::pick(
                dest,
                site.and_then(|s| s.migrate_dest_admin.as_ref()),
                args.admin_login,
            )?,
        })
    }
}

fn endpoint(t: &Target, timeout: std::time::Duration) -> Endpoint {
    Endpoint {
        host: t.host.clone(),
        port: t.port,
        implicit_tls: t.scheme.implicit_tls(),
        starttls: t.starttls,
        tls: t.tls.clone(),
        timeout,
    }
}

fn login(t: &Target, what: &str) -> Result<Login, String> {
    let a = t
        .account
        .as_ref()
        .ok_or_else(|| format!("{what} {} names no user (user@host)", t.label))?;
    Ok(Login::own(a.user.clone(), a.password.clone()))
}

fn ad_hoc(
    from: &str,
    args: &MigrateArgs,
    admins: &Admins,
    tls: &TlsPolicy,
    helo: &str,
    inbox: InboxRoute,
) -> Result<Account, String> {
    // With an admin identity its password rides in the URL's place and the login becomes the
    // admin's below.
    let own = args.password_file.as_deref().map(read_secret).transpose()?;
    let defaults = |password: Option<Secret>| UrlDefaults {
        tls: tls.clone(),
        timeout: args.timeout,
        helo: helo.to_owned(),
        password,
    };
    let source = match from.strip_prefix("maildir:") {
        Some(path) => local_source(path, args, helo)?,
        None => server_source(from, args, admins, &own, &defaults)?,
    };
    let to = args
        .to
        .as_deref()
        .ok_or("--from needs --to smtp://mailserver1[:port] or lmtp://host:port")?;
    let delivery = delivery(to, &defaults(None), args.timeout, helo)?;
    let dest_imap = match &args.to_imap {
        None => None,
        Some(u) => {
            let (password, admin) = match (&args.to_password_file, &admins.dest, &own) {
                (Some(f), _, _) => (read_secret(f)?, None),
                (None, Some(a), _) => (a.password.clone(), Some(a)),
                (None, None, Some(p)) => (p.clone(), None),
                (None, None, None) => {
                    return Err(format!(
                        "--to-imap {u} needs --to-password-file or --dest-admin"
                    ));
                }
            };
            let t = url::parse(u, &defaults(Some(password))).map_err(|e| e.to_string())?;
            if !matches!(t.scheme, Scheme::Imap | Scheme::Imaps) {
                return Err(format!("--to-imap {u}: use imap:// or imaps://"));
            }
            let login = login(&t, "--to-imap")?;
            Some(DestImap {
                endpoint: endpoint(&t, args.timeout),
                login: match admin {
                    Some(a) => a.login_as(&login.user),
                    None => login,
                },
            })
        }
    };
    if inbox == InboxRoute::Append && dest_imap.is_none() {
        return Err("--inbox append needs --to-imap".into());
    }
    let dest_maildir = dest_maildir(args, &source.login.user)?;
    Ok(Account {
        name: source.login.user.clone(),
        source,
        rcpt: args.rcpt.clone(),
        delivery,
        dest_imap,
        dest_maildir,
        inbox,
        mirror_copies: None,
    })
}

/// `--from imap(s)://` or `pop3(s)://`: the user's own password, or the source admin's.
fn server_source(
    from: &str,
    args: &MigrateArgs,
    admins: &Admins,
    own: &Option<Secret>,
    defaults: &dyn Fn(Option<Secret>) -> UrlDefaults,
) -> Result<Source, String> {
    let password = match (own, &admins.source) {
        (Some(p), _) => p.clone(),
        (None, Some(a)) => a.password.clone(),
        (None, None) => {
            return Err(
                "--from needs --password-file with the source user's password, or \
                        --source-admin"
                    .into(),
            );
        }
    };
    let src = url::parse(from, &defaults(Some(password))).map_err(|e| e.to_string())?;
    let kind = match src.scheme {
        Scheme::Imap | Scheme::Imaps => SourceKind::Imap,
        Scheme::Pop3 | Scheme::Pop3s => SourceKind::Pop3,
        other => {
            return Err(format!(
                "--from {from}: {other} is not a mailbox; use imap(s)://, pop3(s):// or \
                 maildir:PATH"
            ));
        }
    };
    let source_login = login(&src, "--from")?;
    let source_login = match (own, &admins.source) {
        (None, Some(a)) => a.login_as(&source_login.user),
        _ => source_login,
    };
    Ok(Source {
        kind,
        endpoint: endpoint(&src, args.timeout),
        login: source_login,
        maildir: None,
    })
}

/// `--from maildir:PATH`: a Maildir on this host, `%u` standing for --user.
fn local_source(path: &str, args: &MigrateArgs, helo: &str) -> Result<Source, String> {
    if args.password_file.is_some() || args.source_admin.is_some() {
        return Err("--from maildir: reads files on this host and needs no password".into());
    }
    let template = Path::new(path);
    if !template.is_absolute() {
        return Err(format!("--from maildir:{path}: give an absolute path"));
    }
    let (user, dir) = match (&args.user, path.contains("%u")) {
        (Some(user), true) => {
            let dir = crate::mta::maildir::user_dir(template, user)
                .ok_or_else(|| format!("--user {user:?} is not a mailbox name"))?;
            (user.clone(), dir)
        }
        (None, true) => return Err(format!("--from maildir:{path} needs --user for %u")),
        (user, false) => {
            let named = template
                .components()
                .rev()
                .filter_map(|c| c.as_os_str().to_str())
                .find(|c| *c != "Maildir")
                .unwrap_or_default()
                .to_owned();
            (user.clone().unwrap_or(named), template.to_path_buf())
        }
    };
    Ok(maildir_source(user, dir, helo, args.timeout))
}

/// A Maildir source: this host is the trace header's `from`; no login, no password.
fn maildir_source(user: String, dir: PathBuf, helo: &str, timeout: std::time::Duration) -> Source {
    Source {
        kind: SourceKind::Maildir,
        endpoint: Endpoint {
            host: helo.to_owned(),
            port: 0,
            implicit_tls: false,
            starttls: crate::health::StartTls::No,
            tls: TlsPolicy::default(),
            timeout,
        },
        login: Login::own(user, Secret::new("")),
        maildir: Some(dir),
    }
}

/// `--to-maildir`: the user's Maildir on mailserver1 (`%u` replaced as posta mta does).
fn dest_maildir(args: &MigrateArgs, user: &str) -> Result<Option<PathBuf>, String> {
    let Some(template) = &args.to_maildir else {
        return Ok(None);
    };
    if !template.is_absolute() {
        return Err(format!(
            "--to-maildir {}: give an absolute path",
            template.display()
        ));
    }
    if !template.to_str().is_some_and(|t| t.contains("%u")) {
        return Ok(Some(template.clone()));
    }
    crate::mta::maildir::user_dir(template, user)
        .map(Some)
        .ok_or_else(|| format!("--to-maildir: {user:?} is not a mailbox name"))
}

/// `smtp://host[:port]` or `lmtp://host:port` (LMTP has no well-known TCP port; 24 is the
/// RFC 2033 suggestion).
fn delivery(
    to: &str,
    defaults: &UrlDefaults,
    timeout: std::time::Duration,
    helo: &str,
) -> Result<Delivery, String> {
    let (dialect, text) = match to.strip_prefix("lmtp://") {
        Some(rest) => (Dialect::Lmtp, format!("smtp://{rest}")),
        None => (Dialect::Smtp, to.to_owned()),
    };
    let t = url::parse(&text, defaults).map_err(|e| e.to_string().replace(&text, to))?;
    if !matches!(t.scheme, Scheme::Smtp | Scheme::Smtps | Scheme::Submission) {
        return Err(format!(
            "--to {to}: use smtp://host[:port] or lmtp://host:port"
        ));
    }
    if t.account.is_some() {
        return Err(format!(
            "--to {to}: delivery to mailserver1 needs no login; drop the user"
        ));
    }
    let mut endpoint = endpoint(&t, timeout);
    let port_given = to
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .is_some_and(|p| p.parse::<u16>().is_ok());
    if dialect == Dialect::Lmtp && !port_given {
        endpoint.port = 24;
    }
    Ok(Delivery {
        endpoint,
        dialect,
        helo: helo.to_owned(),
    })
}

/// The site file's accounts: its [[migrate.accounts]], or with accounts = "all" those found
/// on this host, each delivered to the site's address template.
pub(super) fn site_accounts(site: &Site) -> Result<Vec<config::MigrateAccount>, String> {
    let Some(template) = &site.migrate_all else {
        if site.migrate.is_empty() {
            return Err(
                "the site file has no [[migrate.accounts]] (nor accounts = \"all\"); add them \
                 or use --from"
                    .into(),
            );
        }
        return Ok(site.migrate.clone());
    };
    let (users, found) = discover::accounts(site.mta.as_ref()).map_err(|e| e.to_string())?;
    tracing::info!(
        accounts = users.len(),
        "accounts = \"all\": found in {found}"
    );
    Ok(users
        .into_iter()
        .map(|user| config::MigrateAccount {
            deliver_to: template.address(&user),
            user,
            password_file: None,
            dest_user: None,
            dest_password_file: None,
        })
        .collect())
}

/// A server of the site file at its own address. Just after failback the VIP may still
/// answer from mailserver2: mail "brought home" there would land where it came from, and a
/// mirror would copy mailserver2 onto itself.
pub(super) fn site_endpoint(
    server: &config::Server,
    svc: config::Service,
    tls: &TlsPolicy,
    timeout: std::time::Duration,
) -> Endpoint {
    Endpoint {
        host: server.probe_target().to_string(),
        port: svc.port,
        implicit_tls: svc.scheme.implicit_tls(),
        starttls: svc.starttls,
        tls: TlsPolicy {
            server_name: Some(server.name.clone()),
            ..tls.clone()
        },
        timeout,
    }
}

fn from_site(
    site: &Site,
    listed: &[config::MigrateAccount],
    args: &MigrateArgs,
    admins: &Admins,
    tls: &TlsPolicy,
    helo: &str,
    inbox: InboxRoute,
) -> Result<Vec<Account>, String> {
    for name in &args.accounts {
        if !listed.iter().any(|a| &a.user == name) {
            return Err(format!("no account {name:?} in the site file"));
        }
    }
    let tls = TlsPolicy {
        ca_file: tls.ca_file.clone().or(site.tls.ca_file.clone()),
        ..tls.clone()
    };
    let service = |server: &config::Server, schemes: &[Scheme]| {
        schemes
            .iter()
            .find_map(|s| server.services.iter().find(|x| x.scheme == *s))
            .copied()
    };
    let site_endpoint =
        |server: &config::Server, svc| site_endpoint(server, svc, &tls, args.timeout);
    // `[migrate] source = "maildir"`: the Maildirs posta mta writes, read on this host.
    let local_root = match site.migrate_source {
        config::MigrateSource::Maildir => site.mta.as_ref().and_then(|m| m.maildir.clone()),
        config::MigrateSource::Server => None,
    };
    let src_svc = match &local_root {
        Some(_) => None,
        None => Some(
            service(
                &site.backup,
                &[Scheme::Imaps, Scheme::Imap, Scheme::Pop3s, Scheme::Pop3],
            )
            .ok_or(
                "the backup server lists no imap, imaps, pop3 or pop3s service to migrate from",
            )?,
        ),
    };
    let smtp = service(&site.primary, &[Scheme::Smtp])
        .ok_or("the primary server lists no smtp service to deliver to")?;
    let dest_svc = service(&site.primary, &[Scheme::Imaps, Scheme::Imap]);
    let mut accounts = Vec::new();
    for a in listed {
        if !args.accounts.is_empty() && !args.accounts.contains(&a.user) {
            continue;
        }
        // An account's own password file comes first; the admin identity covers the rest.
        let needed_by = |key: &str| format!("`{key}` in [[migrate.accounts]] user {:?}", a.user);
        let own = a
            .password_file
            .as_deref()
            .map(read_secret)
            .transpose()
            .map_err(|e| format!("{e} ({})", needed_by("password_file")))?;
        let source = match (&local_root, src_svc) {
            (Some(root), _) => {
                let dir = crate::mta::maildir::user_dir(root, &a.user).ok_or_else(|| {
                    format!(
                        "account {:?} is not a Maildir name under [mta] maildir",
                        a.user
                    )
                })?;
                maildir_source(a.user.clone(), dir, helo, args.timeout)
            }
            (None, Some(svc)) => Source {
                kind: match svc.scheme {
                    Scheme::Pop3 | Scheme::Pop3s => SourceKind::Pop3,
                    _ => SourceKind::Imap,
                },
                endpoint: site_endpoint(&site.backup, svc),
                login: match (&own, &admins.source) {
                    (Some(p), _) => Login::own(a.user.clone(), p.clone()),
                    (None, Some(admin)) => admin.login_as(&a.user),
                    (None, None) => {
                        return Err(format!(
                            "account {:?} has no password_file and there is no source admin \
                             ([migrate] source_admin or --source-admin)",
                            a.user
                        ));
                    }
                },
                maildir: None,
            },
            (None, None) => return Err("no source to migrate from".into()),
        };
        // With a dest admin every account gets its IMAP session on mailserver1 (dest_user,
        // else the same user name), so folders and the read-back need no user's password.
        let dest_user = a
            .dest_user
            .clone()
            .or_else(|| admins.dest.as_ref().map(|_| a.user.clone()));
        let dest_maildir = dest_maildir(args, dest_user.as_deref().unwrap_or(&a.user))?;
        let dest_imap = match (dest_user, dest_svc) {
            (Some(user), Some(svc)) => {
                let own_file = a.dest_password_file.as_deref();
                let login = match (own_file, &admins.dest, &own) {
                    (Some(f), _, _) => Login::own(
                        user,
                        read_secret(f)
                            .map_err(|e| format!("{e} ({})", needed_by("dest_password_file")))?,
                    ),
                    (None, Some(admin), _) => admin.login_as(&user),
                    (None, None, Some(p)) => Login::own(user, p.clone()),
                    (None, None, None) => {
                        return Err(format!(
                            "account {:?}: dest_user needs dest_password_file or a dest admin \
                             ([migrate] dest_admin or --dest-admin)",
                            a.user
                        ));
                    }
                };
                Some(DestImap {
                    endpoint: site_endpoint(&site.primary, svc),
                    login,
                })
            }
            _ => None,
        };
        if inbox == InboxRoute::Append && dest_imap.is_none() {
            return Err(format!(
                "--inbox append needs dest_user for account {:?} and an imap(s) service on the primary",
                a.user
            ));
        }
        accounts.push(Account {
            name: a.user.clone(),
            source,
            rcpt: Some(a.deliver_to.clone()),
            delivery: Delivery {
                endpoint: site_endpoint(&site.primary, smtp),
                dialect: Dialect::Smtp,
                helo: helo.to_owned(),
            },
            dest_imap,
            dest_maildir,
            inbox,
            mirror_copies: None,
        });
    }
    Ok(accounts)
}
