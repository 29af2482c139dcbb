//! `posta notify --test` / `--send-test`, and the notices `posta takeover` / `posta failback` send once the
//! change is in effect: who is told (the site's accounts or list), through which server (the
//! one serving users now), about what.

use std::path::{Path, PathBuf};
use std::time::Duration;

use time::OffsetDateTime;

use super::{EXIT_FAILURE, EXIT_USAGE, print};
use crate::cli::{EventArg, NotifyArgs};
use crate::client::endpoint::Endpoint;
use crate::config::{NotifyEvent, NotifyRecipients, NotifySettings, Server, Site};
use crate::migrate::discover;
use crate::notify::{self, Job, Notice, SmtpTransport, Summary, Transport, View, ledger};
use crate::service::{Scheme, TlsPolicy};
use crate::takeover::action::MirrorView;
use crate::takeover::state::{Action, State};

pub async fn execute(config: Option<PathBuf>, args: NotifyArgs) -> u8 {
    let site = match super::takeover::site(config) {
        Ok(Some(s)) => s,
        Ok(None) => return usage("no site file: --config FILE names one"),
        Err(e) => return usage(&e),
    };
    let settings = site.notify.clone().unwrap_or_default();
    let event = match args.event {
        Some(EventArg::Takeover) => NotifyEvent::Takeover,
        Some(EventArg::Failback) => NotifyEvent::Failback,
        Some(EventArg::MirrorMissing) => NotifyEvent::MirrorMissing,
        None => {
            notify::takeover_notice(&settings, view_now(&site)).unwrap_or(NotifyEvent::Takeover)
        }
    };
    let (user, send) = match (&args.test, &args.send_test) {
        (Some(u), _) => (u, false),
        (None, Some(u)) => (u, true),
        (None, None) => return usage("--test USER or --send-test USER"),
    };
    let to = match address_of(&site, user) {
        Ok(a) => a,
        Err(e) => return usage(&e),
    };
    let now = OffsetDateTime::now_utc();
    let job = job(
        &site,
        &settings,
        event,
        view_now(&site),
        now,
        vec![to.clone()],
        PathBuf::new(),
    );
    let message = notify::message_for(&job, &to, now);
    if !send {
        print(&String::from_utf8_lossy(&message));
        return 0;
    }
    let state_file = super::takeover::state_file(None, Some(&site));
    let backup_serves = State::load(&state_file)
        .map(|s| s.holdings.iter().any(|h| h.holder == "backup"))
        .unwrap_or(false);
    let server = if backup_serves {
        &site.backup
    } else {
        &site.primary
    };
    let endpoint = endpoint(&site, server, Duration::from_secs(30));
    let via = endpoint.display();
    let mut transport = SmtpTransport::new(endpoint, crate::config::default_helo());
    let sent = transport.deliver(&job.from, &to, &message).await;
    transport.close().await;
    match sent {
        Ok(()) => {
            print(&format!(
                "sent the {} notice to {to} via {via} (not recorded)\n",
                event.name()
            ));
            0
        }
        Err(e) => {
            eprintln!("posta: the {} notice to {to} via {via}: {e}", event.name());
            EXIT_FAILURE
        }
    }
}

/// `USER` as `--test` names it: an address, or a `[[migrate.accounts]]` user (with
/// `accounts = "all"`, any user, by the `deliver_to` template).
fn address_of(site: &Site, user: &str) -> Result<String, String> {
    if user.contains('@') {
        return Ok(user.to_string());
    }
    if let Some(a) = site.migrate.iter().find(|a| a.user == user) {
        return Ok(a.deliver_to.clone());
    }
    match &site.migrate_all {
        Some(t) => Ok(t.address(user)),
        None => Err(format!(
            "{user:?} is no [[migrate.accounts]] user; give an address (user@{})",
            site.domain
        )),
    }
}

/// What users would see on mailserver2 after a takeover now, by the mirror's state.
fn view_now(site: &Site) -> View {
    view_of(Some(&super::takeover::mirror_view(site)))
}

/// The notice's view of what a takeover's report says of the mirror.
pub fn view_of(mirror: Option<&MirrorView>) -> View {
    match mirror {
        Some(MirrorView::Fresh { last_pass, .. })
        | Some(MirrorView::Stale {
            last_pass: Some(last_pass),
            ..
        }) => View::Mirror { as_of: *last_pass },
        Some(
            MirrorView::None
            | MirrorView::Stale {
                last_pass: None, ..
            },
        )
        | None => View::NoMirror,
    }
}

fn job<'a>(
    site: &Site,
    settings: &'a NotifySettings,
    event: NotifyEvent,
    view: View,
    since: OffsetDateTime,
    recipients: Vec<String>,
    ledger: PathBuf,
) -> Job<'a> {
    Job {
        settings,
        notice: Notice {
            event,
            language: settings.language,
            view,
            since,
        },
        from: settings
            .from
            .clone()
            .unwrap_or_else(|| format!("postmaster@{}", site.domain)),
        recipients,
        ledger,
    }
}

/// The notices after `action`, which succeeded, with `view` what users see on mailserver2:
/// `None` when the site tells no one of it. Failures are in the summary, never an error: the
/// takeover is done whatever they are.
pub async fn after(
    site: &Site,
    state_file: &Path,
    action: Action,
    timeout: Duration,
    view: View,
) -> Option<Summary> {
    let settings = site.notify.as_ref()?;
    let (event, server) = match action {
        Action::Takeover => (notify::takeover_notice(settings, view)?, &site.backup),
        Action::Failback => (
            settings
                .enabled(NotifyEvent::Failback)
                .then_some(NotifyEvent::Failback)?,
            &site.primary,
        ),
        // mailserver1 taking its address back: mailserver2's failback told the users.
        Action::Reclaim => return None,
    };
    let since = since(state_file, action);
    let endpoint = endpoint(site, server, timeout);
    let via = endpoint.display();
    let ledger = crate::durable::parent(state_file).join(ledger::FILE_NAME);
    let recipients = match recipients(site, settings).await {
        Ok(r) => r,
        Err(e) => {
            return Some(Summary {
                event,
                via,
                notified: 0,
                rate_limited: 0,
                failed: vec![notify::send::Failure {
                    recipient: "every user".into(),
                    error: e,
                }],
            });
        }
    };
    let job = job(site, settings, event, view, since, recipients, ledger);
    let mut transport = SmtpTransport::new(endpoint, crate::config::default_helo());
    let summary = notify::send(&job, &mut transport, via).await;
    transport.close().await;
    Some(summary)
}

/// When the action happened, as the state file recorded it (a rerun after a crash sends the
/// same notice, with the same Message-ID); now if it is not recorded.
fn since(state_file: &Path, action: Action) -> OffsetDateTime {
    let rfc3339 = &time::format_description::well_known::Rfc3339;
    State::load(state_file)
        .ok()
        .and_then(|s| {
            let e = s.history.iter().rev().find(|e| e.action == action)?;
            OffsetDateTime::parse(&e.time, rfc3339).ok()
        })
        .unwrap_or_else(OffsetDateTime::now_utc)
}

/// The server's SMTP service as the site file lists it (port 25 when it lists none), at the
/// server's own address.
fn endpoint(site: &Site, server: &Server, timeout: Duration) -> Endpoint {
    let smtp = server.services.iter().find(|s| s.scheme == Scheme::Smtp);
    Endpoint {
        host: server.probe_target().to_string(),
        port: smtp.map_or(25, |s| s.port),
        implicit_tls: false,
        starttls: smtp.map(|s| s.starttls).unwrap_or_default(),
        tls: TlsPolicy {
            ca_file: site.tls.ca_file.clone(),
            server_name: Some(server.name.clone()),
            ..TlsPolicy::default()
        },
        timeout,
    }
}

/// Who is told: the list, or every account `posta migrate` brings home.
async fn recipients(site: &Site, settings: &NotifySettings) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = match (&settings.recipients, &site.migrate_all) {
        (NotifyRecipients::List(list), _) => list.clone(),
        (NotifyRecipients::Accounts, Some(template)) => {
            let mta = site.mta.clone();
            let (users, _) = tokio::task::spawn_blocking(move || discover::accounts(mta.as_ref()))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            users.iter().map(|u| template.address(u)).collect()
        }
        (NotifyRecipients::Accounts, None) => {
            site.migrate.iter().map(|a| a.deliver_to.clone()).collect()
        }
    };
    let mut seen = std::collections::HashSet::new();
    out.retain(|a| seen.insert(a.to_ascii_lowercase()));
    Ok(out)
}

fn usage(message: &str) -> u8 {
    eprintln!("posta: {message}");
    EXIT_USAGE
}
