//! The POP3 / POP3S probe: greeting, CAPA (RFC 2449), STLS (RFC 2595 §4), optional USER/PASS,
//! STAT (proves the maildrop opens), QUIT. Verdicts come from +OK/-ERR and CAPA only.

use super::probe::{self, Failure, Recorder};
use super::{ProbeReport, StartTls, Target};
use crate::client::{Conn, ConnError};
use crate::proto::pop3::{self, Capability, Command, MultiLine, StatusLine, has_capability};

/// Probes one POP3 server; never fails, every problem is a verdict in the report.
pub async fn probe(target: &Target) -> ProbeReport {
    probe::run!(target, target.scheme.name(), session)
}

async fn session(rec: &mut Recorder<'_>) -> Result<(), Failure> {
    let target = rec.target;
    let mut conn = probe::connect(rec).await?;

    rec.begin("greeting");
    let greeting = read_status(&mut conn).await.map_err(|e| rec.fail(e))?;
    if !greeting.ok {
        return Err(rec.critical(format!("server refused the session: greeting {greeting}")));
    }
    rec.ok(greeting.to_string());
    rec.highlight("+OK greeting");

    let mut caps = capa(rec, &mut conn).await?;
    if !conn.is_tls() {
        let offered = caps.as_ref().is_some_and(|c| has_capability(c, "STLS"));
        if probe::want_starttls(rec, offered, "STLS")? {
            rec.begin("stls");
            let reply = command(rec, &mut conn, Command::Stls).await?;
            if reply.ok {
                rec.ok(reply.to_string());
                probe::handshake(rec, &mut conn).await?;
                // RFC 2595 §4: the client must discard what CAPA said before TLS.
                caps = capa(rec, &mut conn).await?;
            } else if target.starttls == StartTls::Require {
                return Err(rec.critical(format!("STLS refused ({reply}), but TLS is required")));
            } else {
                rec.warn(format!(
                    "STLS refused ({reply}); the session stays in clear text"
                ));
            }
        }
    }
    rec.capabilities = caps.iter().flatten().map(ToString::to_string).collect();

    let mut logged_in = false;
    if let Some(account) = &target.account {
        rec.begin("user");
        // RFC 2449 §6.3: a server with CAPA lists USER when it accepts USER/PASS.
        if caps.as_ref().is_some_and(|c| !has_capability(c, "USER")) {
            return Err(rec.critical("server does not offer USER/PASS login (no USER in CAPA)"));
        }
        if probe::may_send_password(rec, &conn) {
            let reply = command(rec, &mut conn, Command::User(&account.user)).await?;
            if !reply.ok {
                return Err(rec.critical(format!("authentication failed (USER: {reply})")));
            }
            rec.ok(reply.to_string());
            rec.begin("pass");
            let reply = command(rec, &mut conn, Command::Pass(account.password.expose())).await?;
            if !reply.ok {
                return Err(rec.critical(format!("authentication failed ({reply})")));
            }
            rec.ok(reply.to_string());
            rec.highlight("USER/PASS ok");
            logged_in = true;
        }
    }

    if logged_in {
        rec.begin("stat");
        let reply = command(rec, &mut conn, Command::Stat).await?;
        let (messages, octets) =
            pop3::parse_stat(&reply).map_err(|e| rec.fail(ConnError::Malformed(e)))?;
        rec.ok(format!("{messages} messages, {octets} octets"));
        rec.highlight(format!("{messages} messages"));
    }

    rec.begin("quit");
    match command(rec, &mut conn, Command::Quit).await {
        Ok(reply) if reply.ok => rec.ok(reply.to_string()),
        Ok(reply) => rec.ok(format!("note: QUIT answered {reply}")),
        Err(Failure) => rec.demote_last(),
    }
    Ok(())
}

async fn read_status(conn: &mut Conn) -> Result<StatusLine, ConnError> {
    let line = conn.read_line().await?;
    pop3::parse_status(&line).map_err(ConnError::Malformed)
}

async fn command(
    rec: &mut Recorder<'_>,
    conn: &mut Conn,
    cmd: Command<'_>,
) -> Result<StatusLine, Failure> {
    let bytes = cmd.encode().map_err(|e| rec.unknown(e.to_string()))?;
    conn.send(&bytes, &cmd.redacted())
        .await
        .map_err(|e| rec.fail(e))?;
    read_status(conn).await.map_err(|e| rec.fail(e))
}

/// CAPA; `None` when the server answers -ERR, as RFC 1939-only servers do (not a fault).
async fn capa(rec: &mut Recorder<'_>, conn: &mut Conn) -> Result<Option<Vec<Capability>>, Failure> {
    rec.begin("capa");
    let reply = command(rec, conn, Command::Capa).await?;
    if !reply.ok {
        rec.ok(format!(
            "note: no CAPA support ({reply}); assuming a plain RFC 1939 server"
        ));
        return Ok(None);
    }
    let mut body = MultiLine::new();
    let lines = loop {
        let line = conn.read_line().await.map_err(|e| rec.fail(e))?;
        if let Some(lines) = body
            .feed(&line)
            .map_err(|e| rec.fail(ConnError::Malformed(e)))?
        {
            break lines;
        }
    };
    let caps = pop3::parse_capa(&lines);
    let names: Vec<_> = caps.iter().map(|c| c.name.as_str()).collect();
    rec.ok(format!("{} capabilities: {}", caps.len(), names.join(" ")));
    Ok(Some(caps))
}
