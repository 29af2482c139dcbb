//! The SMTP / submission / SMTPS probe: greeting, EHLO, STARTTLS (RFC 3207), optional AUTH
//! (RFC 4954 with PLAIN, RFC 4616, or LOGIN), QUIT. Verdicts come from reply codes and EHLO
//! keywords only. Replies are read, commands exchanged and AUTH spoken by `client::smtp`, the
//! dialogue the relay and migrate use; this file decides what each step's reply means.

use super::probe::{self, Failure, Recorder};
use super::{Account, ProbeReport, StartTls, Target};
use crate::client::smtp::{self, AuthMech};
use crate::client::{Conn, ConnError};
use crate::health::target::AuthMechanism;
use crate::proto::smtp::{Command, Ehlo, Reply};

/// Probes one SMTP server; never fails, every problem is a verdict in the report.
pub async fn probe(target: &Target) -> ProbeReport {
    probe::run!(target, target.scheme.name(), session)
}

async fn session(rec: &mut Recorder<'_>) -> Result<(), Failure> {
    let target = rec.target;
    let mut conn = probe::connect(rec).await?;

    rec.begin("greeting");
    let greeting = smtp::read_reply(&mut conn).await.map_err(|e| rec.fail(e))?;
    // RFC 5321 §4.3.1: 220 opens the session; 554 (and 421) mean "no service here".
    if greeting.code != 220 {
        return Err(rec.critical(format!("server refused the session: greeting {greeting}")));
    }
    // RFC 5321 §4.3.1/§4.2: the greeting's first word is the server's own domain. One that
    // names another host of the site is that host answering (mailserver2 holding the
    // address, or a probe that reached itself): counting it as the server up would make the
    // watch fail back to a server that is still down.
    if let Some(name) = greeting_domain(&greeting)
        && let Some(ours) = target
            .foreign_names
            .iter()
            .find(|n| n.eq_ignore_ascii_case(name))
    {
        return Err(rec.critical(format!(
            "the greeting names {ours}, not this server: another host of the site answered \
             ({greeting})"
        )));
    }
    rec.ok(greeting.to_string());
    rec.highlight("220 greeting");

    let mut ehlo = hello(rec, &mut conn, true).await?;
    if !conn.is_tls() {
        let offered = ehlo.as_ref().is_some_and(|e| e.has("STARTTLS"));
        if probe::want_starttls(rec, offered, "STARTTLS")? {
            let reply = command(rec, &mut conn, Command::StartTls).await?;
            if reply.code == 220 {
                rec.ok(reply.to_string());
                probe::handshake(rec, &mut conn).await?;
                // RFC 3207 §4.2: forget what was learned in clear; ask again.
                ehlo = hello(rec, &mut conn, false).await?;
            } else if target.starttls == StartTls::Require {
                return Err(
                    rec.critical(format!("STARTTLS refused ({reply}), but TLS is required"))
                );
            } else {
                rec.warn(format!(
                    "STARTTLS refused ({reply}); the session stays in clear text"
                ));
            }
        }
    }

    if let Some(account) = &target.account {
        auth(rec, &mut conn, ehlo.as_ref(), account).await?;
    }

    rec.begin("quit");
    quit(rec, &mut conn).await;
    Ok(())
}

/// The domain a 220 greeting announces (its first word).
fn greeting_domain(greeting: &Reply) -> Option<&str> {
    greeting.lines.first()?.split_whitespace().next()
}

/// Sends one command and reads its reply, recording transport and syntax failures.
async fn command(
    rec: &mut Recorder<'_>,
    conn: &mut Conn,
    cmd: Command<'_>,
) -> Result<Reply, Failure> {
    let bytes = cmd.encode().map_err(|e| rec.unknown(e.to_string()))?;
    smtp::exchange(conn, &bytes, &cmd.redacted())
        .await
        .map_err(|e| rec.fail(e))
}

/// EHLO, falling back to HELO when EHLO is refused permanently (RFC 5321 §4.1.4). `None` means
/// the server only speaks plain SMTP, so it announces no extensions.
async fn hello(
    rec: &mut Recorder<'_>,
    conn: &mut Conn,
    first: bool,
) -> Result<Option<Ehlo>, Failure> {
    let name = rec.target.helo.as_str();
    rec.begin("ehlo");
    let reply = command(rec, conn, Command::Ehlo(name)).await?;
    if reply.code == 250 {
        let ehlo = Ehlo::from_reply(&reply).map_err(|e| rec.critical(e.to_string()))?;
        rec.capabilities = ehlo.keywords.iter().map(ToString::to_string).collect();
        rec.ok(format!(
            "250, {} keywords: {}",
            ehlo.keywords.len(),
            rec.capabilities.join(", ")
        ));
        if first {
            rec.highlight(format!("ESMTP {} keywords", ehlo.keywords.len()));
        }
        return Ok(Some(ehlo));
    }
    if reply.class() != 5 {
        return Err(rec.critical(format!("EHLO refused ({reply})")));
    }
    rec.begin("helo");
    let helo = command(rec, conn, Command::Helo(name)).await?;
    if helo.code != 250 {
        return Err(rec.critical(format!("EHLO refused ({reply}) and HELO refused ({helo})")));
    }
    rec.warn(format!(
        "server does not speak ESMTP (EHLO answered {reply}); HELO accepted"
    ));
    rec.capabilities.clear();
    Ok(None)
}

async fn auth(
    rec: &mut Recorder<'_>,
    conn: &mut Conn,
    ehlo: Option<&Ehlo>,
    account: &Account,
) -> Result<(), Failure> {
    rec.begin("auth");
    if !probe::may_send_password(rec, conn) {
        return Ok(());
    }
    let offered = ehlo.map(Ehlo::auth_mechanisms).unwrap_or_default();
    if offered.is_empty() {
        return Err(rec.critical("AUTH not advertised, but a probe account is configured"));
    }
    let has = |m: AuthMech| offered.iter().any(|o| o == m.name());
    let mech = match account.mechanism {
        AuthMechanism::Auto if has(AuthMech::Plain) => AuthMech::Plain,
        AuthMechanism::Auto if has(AuthMech::Login) => AuthMech::Login,
        AuthMechanism::Plain if has(AuthMech::Plain) => AuthMech::Plain,
        AuthMechanism::Login if has(AuthMech::Login) => AuthMech::Login,
        wanted => {
            let wanted = match wanted {
                AuthMechanism::Auto => "PLAIN or LOGIN",
                AuthMechanism::Plain => "PLAIN",
                AuthMechanism::Login => "LOGIN",
            };
            return Err(rec.critical(format!(
                "server does not offer AUTH {wanted} (it offers {})",
                offered.join(" ")
            )));
        }
    };
    let (start, answers) = mech.commands(&account.user, account.password.expose());
    let mut reply = command(rec, conn, start).await?;
    for answer in answers {
        if reply.code != 334 {
            break;
        }
        reply = command(rec, conn, answer).await?;
    }
    let mech = mech.name();
    match reply.code {
        235 => {
            rec.ok(format!("AUTH {mech}: {reply}"));
            rec.highlight(format!("AUTH {mech} ok"));
            Ok(())
        }
        535 => Err(rec.critical(format!("authentication failed ({reply})"))),
        _ => Err(rec.critical(format!("AUTH {mech} failed ({reply})"))),
    }
}

/// QUIT politely; a server that closes without 221 is only worth a note (RFC 5321 §4.1.1.10).
async fn quit(rec: &mut Recorder<'_>, conn: &mut Conn) {
    let cmd = Command::Quit;
    let result = match cmd.encode() {
        Ok(bytes) => smtp::exchange(conn, &bytes, &cmd.redacted()).await,
        Err(e) => Err(ConnError::Malformed(e)),
    };
    match result {
        Ok(reply) if reply.code == 221 => rec.ok(reply.to_string()),
        Ok(reply) => rec.ok(format!("note: QUIT answered {reply}, not 221")),
        Err(e) => rec.ok(format!("note: no reply to QUIT ({e})")),
    }
}
