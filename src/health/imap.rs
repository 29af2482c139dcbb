//! The IMAP / IMAPS probe: greeting, CAPABILITY, STARTTLS (RFC 3501 §6.2.1), optional LOGIN,
//! SELECT INBOX (proves the mail store answers), LOGOUT. Verdicts come from response conditions
//! and capabilities only.

use super::probe::{self, Failure, Recorder};
use super::{ProbeReport, StartTls, Target};
use crate::client::{Conn, ConnError};
use crate::proto::imap::{self, Cond, Response, StatusResp, Tags, has_capability};
use crate::proto::imap_frame::{Frame, Need};
use crate::proto::{ProtoError, escape};

/// Largest literal skipped in a server response. The probe's commands never ask for message
/// data, so a literal at all is unusual; a huge one is hostile.
const MAX_LITERAL: usize = 1 << 20;

/// Probes one IMAP server; never fails, every problem is a verdict in the report.
pub async fn probe(target: &Target) -> ProbeReport {
    probe::run!(target, target.scheme.name(), session)
}

async fn session(rec: &mut Recorder<'_>) -> Result<(), Failure> {
    let target = rec.target;
    let mut conn = probe::connect(rec).await?;
    let mut tags = Tags::default();

    rec.begin("greeting");
    let line = conn.read_line().await.map_err(|e| rec.fail(e))?;
    let greeting = imap::parse_greeting(&line).map_err(|e| rec.fail(ConnError::Malformed(e)))?;
    if greeting.cond == Cond::Bye {
        return Err(rec.critical(format!("server refused the session: * {greeting}")));
    }
    let preauth = greeting.cond == Cond::PreAuth;
    rec.ok(format!("* {greeting}"));
    rec.highlight(format!("{} greeting", greeting.cond.name()));

    let mut caps = match greeting.capabilities() {
        Some(caps) => caps,
        None => capability(rec, &mut conn, &mut tags).await?,
    };
    if !conn.is_tls() {
        // STARTTLS is only valid before authentication (RFC 3501 §6.2.1), so not after PREAUTH.
        let offered = !preauth && has_capability(&caps, "STARTTLS");
        if probe::want_starttls(rec, offered, "STARTTLS")? {
            let done = simple(rec, &mut conn, &mut tags, "STARTTLS").await?;
            if done.cond == Cond::Ok {
                rec.ok(done.to_string());
                probe::handshake(rec, &mut conn).await?;
                // RFC 3501 §6.2.1: capabilities learned before TLS must be discarded.
                caps = capability(rec, &mut conn, &mut tags).await?;
            } else if target.starttls == StartTls::Require {
                return Err(rec.critical(format!("STARTTLS refused ({done}), but TLS is required")));
            } else {
                rec.warn(format!(
                    "STARTTLS refused ({done}); the session stays in clear text"
                ));
            }
        }
    }
    rec.begin("capability");
    if !has_capability(&caps, "IMAP4rev1") && !has_capability(&caps, "IMAP4rev2") {
        return Err(rec.critical(format!(
            "server does not announce IMAP4rev1 or IMAP4rev2 (capabilities: {})",
            caps.join(" ")
        )));
    }
    rec.ok(format!("{} capabilities: {}", caps.len(), caps.join(" ")));
    rec.highlight(format!("{} capabilities", caps.len()));
    rec.capabilities = caps.clone();

    let mut authenticated = preauth;
    if let (Some(account), false) = (&target.account, preauth) {
        rec.begin("login");
        if has_capability(&caps, "LOGINDISABLED") {
            return Err(rec.critical("server refuses LOGIN on this connection (LOGINDISABLED)"));
        }
        if probe::may_send_password(rec, &conn) {
            let non_sync = has_capability(&caps, "LITERAL+");
            let tag = tags.next_tag();
            let cmd = imap::login(&tag, &account.user, account.password.expose(), non_sync)
                .map_err(|e| rec.unknown(e.to_string()))?;
            let shown = format!("{tag} LOGIN {} <redacted>", escape(account.user.as_bytes()));
            let done = send_chunks(rec, &mut conn, &tag, &cmd.chunks, &shown).await?;
            match done.cond {
                Cond::Ok => {
                    rec.ok(done.to_string());
                    rec.highlight("LOGIN ok");
                    authenticated = true;
                }
                Cond::No => return Err(rec.critical(format!("authentication failed ({done})"))),
                _ => return Err(rec.critical(format!("LOGIN rejected ({done})"))),
            }
        }
    }

    if authenticated {
        rec.begin("select");
        let tag = tags.next_tag();
        let cmd = imap::command(&tag, "SELECT INBOX");
        conn.send(&cmd, &escape(&cmd))
            .await
            .map_err(|e| rec.fail(e))?;
        let mut exists = None;
        let done = until_tagged(rec, &mut conn, &tag, |r| {
            if let Response::Exists(n) = r {
                exists = Some(*n);
            }
        })
        .await?;
        if done.cond != Cond::Ok {
            return Err(rec.critical(format!("SELECT INBOX failed ({done})")));
        }
        let n = exists.map_or_else(|| "unknown".to_owned(), |n| n.to_string());
        rec.ok(format!("INBOX: {n} messages"));
        rec.highlight(format!("INBOX {n} messages"));
    }

    rec.begin("logout");
    match simple(rec, &mut conn, &mut tags, "LOGOUT").await {
        Ok(done) if done.cond == Cond::Ok => rec.ok(done.to_string()),
        Ok(done) => rec.ok(format!("note: LOGOUT answered {done}")),
        // `simple` already recorded why; a failed goodbye is not the server's health.
        Err(Failure) => rec.demote_last(),
    }
    Ok(())
}

/// CAPABILITY (RFC 3501 §6.1.1): the untagged list, then a tagged OK.
async fn capability(
    rec: &mut Recorder<'_>,
    conn: &mut Conn,
    tags: &mut Tags,
) -> Result<Vec<String>, Failure> {
    rec.begin("capability");
    let tag = tags.next_tag();
    let cmd = imap::command(&tag, "CAPABILITY");
    conn.send(&cmd, &escape(&cmd))
        .await
        .map_err(|e| rec.fail(e))?;
    let mut caps = Vec::new();
    let done = until_tagged(rec, conn, &tag, |r| {
        if let Response::Capability(c) = r {
            caps.extend(c.iter().cloned());
        }
    })
    .await?;
    if done.cond != Cond::Ok {
        return Err(rec.critical(format!("CAPABILITY failed ({done})")));
    }
    Ok(caps)
}

/// Sends an argument-less command and waits for its completion.
async fn simple(
    rec: &mut Recorder<'_>,
    conn: &mut Conn,
    tags: &mut Tags,
    cmd: &str,
) -> Result<StatusResp, Failure> {
    let tag = tags.next_tag();
    let bytes = imap::command(&tag, cmd);
    conn.send(&bytes, &escape(&bytes))
        .await
        .map_err(|e| rec.fail(e))?;
    until_tagged(rec, conn, &tag, |_| {}).await
}

/// Sends a command split at synchronizing literals, waiting for `+` before each further chunk
/// (RFC 3501 §7.5), and returns its completion.
async fn send_chunks(
    rec: &mut Recorder<'_>,
    conn: &mut Conn,
    tag: &str,
    chunks: &[Vec<u8>],
    shown: &str,
) -> Result<StatusResp, Failure> {
    for (i, chunk) in chunks.iter().enumerate() {
        if i > 0 {
            match read_response(conn).await.map_err(|e| rec.fail(e))? {
                Response::Continuation(_) => {}
                // The server may refuse before taking the literal.
                Response::Tagged { tag: t, resp } if t == tag => return Ok(resp),
                other => {
                    let e =
                        ProtoError::Malformed(format!("expected '+' continuation, got {other:?}"));
                    return Err(rec.fail(ConnError::Malformed(e)));
                }
            }
        }
        let what = if i == 0 {
            shown.to_owned()
        } else {
            "<redacted literal>".to_owned()
        };
        conn.send(chunk, &what).await.map_err(|e| rec.fail(e))?;
    }
    until_tagged(rec, conn, tag, |_| {}).await
}

/// Reads responses until the one tagged `tag`, handing untagged ones to `seen`.
async fn until_tagged(
    rec: &mut Recorder<'_>,
    conn: &mut Conn,
    tag: &str,
    mut seen: impl FnMut(&Response),
) -> Result<StatusResp, Failure> {
    loop {
        let resp = read_response(conn).await.map_err(|e| rec.fail(e))?;
        match resp {
            Response::Tagged { tag: t, resp } if t == tag => return Ok(resp),
            Response::Tagged { tag: t, .. } => {
                let e = ProtoError::Malformed(format!("reply tagged {t:?}, expected {tag:?}"));
                return Err(rec.fail(ConnError::Malformed(e)));
            }
            // An untagged BYE outside LOGOUT means the server is dropping us (RFC 3501 §7.1.5).
            Response::Status(s) if s.cond == Cond::Bye && !tag_is_logout(rec) => {
                return Err(rec.critical(format!("server said * {s}")));
            }
            Response::Continuation(text) => {
                let e = ProtoError::Malformed(format!("unexpected continuation: + {text}"));
                return Err(rec.fail(ConnError::Malformed(e)));
            }
            other => seen(&other),
        }
    }
}

fn tag_is_logout(rec: &Recorder<'_>) -> bool {
    rec.step() == "logout"
}

/// Reads one response, framed by `proto::imap_frame` (which bounds the literals); literal data
/// is never taken for lines, and stands as NIL in the line parsed, since no probe command asks
/// for any.
async fn read_response(conn: &mut Conn) -> Result<Response, ConnError> {
    let first = conn.read_line().await?;
    let mut line = first.clone();
    let mut frame = Frame::new(first, MAX_LITERAL).map_err(ConnError::Malformed)?;
    loop {
        match frame.need() {
            Need::Done => break,
            Need::Literal(n) => {
                let data = conn.read_exact(n).await?;
                frame.push_literal(&data).map_err(ConnError::Malformed)?;
            }
            Need::Line => {
                let open = line.iter().rposition(|&b| b == b'{').unwrap_or(line.len());
                line.truncate(open);
                line.extend_from_slice(b"NIL");
                let next = conn.read_line().await?;
                frame.push_line(&next).map_err(ConnError::Malformed)?;
                line.extend(next);
            }
        }
    }
    imap::parse_response(&line).map_err(ConnError::Malformed)
}
