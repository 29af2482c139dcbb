//! The SMTP listener: accepts connections within the limits, drives a [`Session`] per
//! connection, answers its questions (policy, storage) and owns the socket, TLS included.
//!
//! Limits for the public internet: total connections and connections per client address
//! (421 beyond them), a deadline per command line and per connection however slowly bytes
//! trickle in (slowloris), the same deadlines on every write (a client that never reads),
//! line lengths, a free-space watermark answered with 452.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, timeout_at};
use tracing::{Instrument, debug, info, info_span, warn};

use super::maildir;
use super::policy::{Accept, Verdict, decide, is_postmaster, postmaster};
use super::recipients::Recipients;
use super::session::{Session, Step, StoreError, Transaction, trace_len};
use super::settings::Settings;
use super::spool::{self, Envelope, QueuedRcpt, Spool};
use super::store::{Body, Spill, Store, Target, classify, sweep_spills};
use super::tables::{Access, LocalHostNames, Reply, TableError, Tables, VirtUser};
use super::tls::Tls;
use super::wake::Wake;
use crate::proto::dotstuff::MAX_DATA_LINE;
use crate::proto::smtp_server::MAX_COMMAND_LINE;
use crate::proto::{LineBuffer, ProtoError};
use crate::shutdown::stopped;

/// What every session shares.
pub struct Mta {
    pub settings: Settings,
    tables: RwLock<Arc<Tables>>,
    recipients: RwLock<Option<Arc<Recipients>>>,
    store: Store,
    spool: Option<Spool>,
    verifier: Option<super::verify::Verifier>,
    flush: mpsc::UnboundedSender<Wake>,
    tls: Option<Arc<Tls>>,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    total: Mutex<usize>,
    /// The last free-space check: when, and whether it was below the watermark.
    disk: Mutex<Option<(std::time::Instant, bool)>>,
    /// Where big messages are spooled while they arrive: the queue's tmp/ (swept at start),
    /// or `.posta-spill` in the Maildir root (no user is named with a leading dot).
    spill_dir: Option<PathBuf>,
}

/// A message body beyond this is spooled to disk while it arrives, not held in memory.
const SPILL_AT: usize = 1 << 20;
/// Once spooling, the buffer is written out whenever it holds this much.
const SPILL_CHUNK: usize = 256 << 10;

/// Loads the tables the settings name; a missing setting is an empty table.
pub fn load_tables(s: &Settings) -> Result<Tables, TableError> {
    Ok(Tables {
        access: s
            .access
            .as_deref()
            .map_or(Ok(Access::default()), Access::load)?,
        virtuser: s
            .virtusertable
            .as_deref()
            .map_or(Ok(VirtUser::default()), VirtUser::load)?,
        hosts: s
            .local_host_names
            .as_deref()
            .map_or(Ok(LocalHostNames::default()), LocalHostNames::load)?,
    })
}

fn reject(code: u16, dsn: &str, text: &str) -> Verdict {
    Verdict::Reject(Reply {
        code,
        dsn: Some(dsn.into()),
        text: text.into(),
    })
}

impl Mta {
    /// Builds the shared state; `flush` receives ETRN requests for the queue runner.
    pub fn new(
        settings: Settings,
        tables: Tables,
        recipients: Option<Recipients>,
        spool: Option<Spool>,
        verifier: Option<super::verify::Verifier>,
        tls: Option<Arc<Tls>>,
        flush: mpsc::UnboundedSender<Wake>,
    ) -> std::io::Result<Mta> {
        let spill_dir = match (&spool, &settings.maildir) {
            (Some(spool), _) => Some(spool.tmp_dir()),
            (None, Some(root)) => Some(maildir::spill_dir(root)),
            (None, None) => None,
        };
        if let Some(dir) = &spill_dir {
            let swept = sweep_spills(dir)?;
            if swept > 0 {
                info!(swept, dir = %dir.display(), "removed spill files left by a crash");
            }
        }
        Ok(Mta {
            spill_dir,
            settings,
            tables: RwLock::new(Arc::new(tables)),
            recipients: RwLock::new(recipients.map(Arc::new)),
            store: Store::start()?,
            spool,
            verifier,
            flush,
            tls,
            per_ip: Mutex::new(HashMap::new()),
            total: Mutex::new(0),
            disk: Mutex::new(None),
        })
    }

    pub fn tables(&self) -> Arc<Tables> {
        self.tables
            .read()
            .map(|t| Arc::clone(&t))
            .unwrap_or_default()
    }

    /// The certificates, shared with POP3 and reloaded by SIGHUP.
    pub fn tls(&self) -> Option<&Arc<Tls>> {
        self.tls.as_ref()
    }

    /// SIGHUP: reads every table again; a broken file keeps the old tables and says why.
    pub fn reload(&self) -> Result<(), TableError> {
        let tables = load_tables(&self.settings)?;
        let recipients = match &self.settings.recipients {
            Some(p) => Some(Arc::new(Recipients::load(p)?)),
            None => None,
        };
        if let Ok(mut t) = self.tables.write() {
            *t = Arc::new(tables);
        }
        if let Ok(mut r) = self.recipients.write() {
            *r = recipients;
        }
        Ok(())
    }

    /// The verdict for one recipient: the tables, what this server can do, and for a relayed
    /// recipient no list covers, the primary's answer (or its cached one).
    pub async fn check_rcpt(&self, ip: IpAddr, helo: &str, from: &str, rcpt: &str) -> Verdict {
        let verdict = self.decide_rcpt(ip, helo, from, rcpt);
        let list = self.recipients.read().ok().and_then(|r| r.clone());
        let tables = self.tables();
        let listed = list.and_then(|l| l.judge(rcpt, &self.settings.domains, &tables.hosts));
        if verdict != Verdict::Accept(Accept::Relay) || listed.is_some() {
            return verdict;
        }
        match &self.verifier {
            Some(v) => v.check(rcpt).await.unwrap_or(verdict),
            None => verdict,
        }
    }

    fn decide_rcpt(&self, ip: IpAddr, helo: &str, from: &str, rcpt: &str) -> Verdict {
        if self.low_on_disk() {
            return reject(452, "4.3.1", "insufficient system storage");
        }
        let tables = self.tables();
        let d = decide(&tables, ip, Some(helo), from, rcpt, &self.settings.domains);
        for step in &d.trail {
            debug!(%step, "policy");
        }
        let verdict = d.verdict;
        let list = self.recipients.read().ok().and_then(|r| r.clone());
        let listed = list.and_then(|l| l.judge(rcpt, &self.settings.domains, &tables.hosts));
        match &verdict {
            Verdict::Accept(Accept::Local(_)) if is_postmaster(rcpt) => postmaster(
                &self.settings.domains,
                self.settings.maildir.is_some(),
                self.spool.is_some(),
            )
            .unwrap_or(verdict),
            Verdict::Accept(Accept::Local(user)) => {
                // No Maildirs: nobody is a local user here. Postfix with a domain in
                // mydestination and nobody in local_recipient_maps answers 550 5.1.1; a 451
                // would have senders retry for days.
                let Some(root) = self.settings.maildir.as_deref() else {
                    return reject(550, "5.1.1", "user unknown in local recipient table");
                };
                if listed == Some(false) {
                    return reject(550, "5.1.1", "user unknown in local recipient table");
                }
                if maildir::user_dir(root, user).is_none() {
                    return reject(550, "5.1.3", "mailbox name not allowed");
                }
                verdict
            }
            Verdict::Accept(Accept::Relay | Accept::Forward(_)) if self.spool.is_none() => {
                // A Maildir-only server cannot relay: refused as Postfix's
                // reject_unauth_destination does, not deferred.
                reject(554, "5.7.1", "relay access denied: no queue here")
            }
            Verdict::Accept(Accept::Relay) if listed == Some(false) => {
                reject(550, "5.1.1", "user unknown in relay recipient table")
            }
            _ => verdict,
        }
    }

    /// Whether free space is below the watermark; statvfs at most once a second, not per
    /// RCPT and message.
    fn low_on_disk(&self) -> bool {
        if let Ok(mut last) = self.disk.lock() {
            if let Some((at, low)) = *last
                && at.elapsed() < Duration::from_secs(1)
            {
                return low;
            }
            let low = self.measure_disk();
            *last = Some((std::time::Instant::now(), low));
            return low;
        }
        self.measure_disk()
    }

    fn measure_disk(&self) -> bool {
        let maildir = self.settings.maildir.as_deref().map(maildir::base);
        let dirs = [self.settings.queue.clone(), maildir];
        dirs.iter().flatten().any(|d| {
            nix::sys::statvfs::statvfs(d.as_path()).is_ok_and(|s| {
                let free = s.blocks_available().saturating_mul(s.fragment_size());
                free < self.settings.min_free
            })
        })
    }

    /// Makes a transaction durable: one Maildir copy per local user, one queue file for
    /// everything relayed. Ok only when all of it is on disk. `message` is the transaction's
    /// message, moved out of it so it is never copied, or mostly in a spill file.
    pub async fn store(&self, t: &Transaction, message: Body) -> Result<(), StoreError> {
        if self.low_on_disk() {
            return Err(StoreError::DiskFull);
        }
        let mut targets = Vec::new();
        // Per local user: the first address that reached them, for Delivered-To.
        let mut users: Vec<(String, String)> = Vec::new();
        let mut relayed = Vec::new();
        for r in &t.recipients {
            match &r.accept {
                Accept::Local(u) => {
                    let u = u.to_ascii_lowercase();
                    if !users.iter().any(|(x, _)| *x == u) {
                        users.push((u, r.address.clone()));
                    }
                }
                Accept::Relay => relayed.push(QueuedRcpt {
                    to: r.address.clone(),
                    original: r.address.clone(),
                }),
                Accept::Forward(to) => relayed.push(QueuedRcpt {
                    to: to.clone(),
                    original: r.address.clone(),
                }),
            }
        }
        if let Some(root) = &self.settings.maildir {
            for (u, address) in &users {
                let dir = maildir::user_dir(root, u).ok_or(StoreError::Failed)?;
                // What Postfix's virtual(8) and Dovecot's LMTP put on top of a delivered copy:
                // the envelope, which `posta migrate` later reads to send it home.
                let prefix = format!("Return-Path: <{}>\r\nDelivered-To: {address}\r\n", t.from)
                    .into_bytes();
                let size = prefix.len() as u64 + message.len();
                let crlf_size = message.crlf_len(&prefix);
                let host = &self.settings.limits.hostname;
                targets.push(Target {
                    tmp_dir: dir.join("tmp"),
                    dir: dir.join("new"),
                    name: maildir::delivery_name(host, size, crlf_size),
                    prefix,
                    maildir: Some(dir),
                });
            }
        }
        let relayed_none = relayed.is_empty();
        if !relayed.is_empty() {
            let spool = self.spool.as_ref().ok_or(StoreError::Failed)?;
            let env = Envelope {
                id: t.id.clone(),
                from: t.from.clone(),
                rcpts: relayed,
                arrival: crate::clock::unix_now(),
                client: t.client.to_string(),
                helo: t.helo.clone(),
                size: message.len(),
            };
            let mut prefix = Spool::encode(&env, b"");
            prefix.shrink_to_fit();
            targets.push(Target {
                tmp_dir: spool.tmp_dir(),
                dir: spool.active_dir(),
                name: t.id.clone(),
                prefix,
                maildir: None,
            });
        }
        if targets.is_empty() {
            return Ok(()); // every recipient discarded
        }
        self.store.store(message, targets).await?;
        if self.spool.is_some() && !relayed_none {
            let _ = self.flush.send(Wake::Queued(t.id.clone()));
        }
        Ok(())
    }

    fn admit(&self, ip: IpAddr) -> Result<Admission<'_>, &'static str> {
        let mut total = self.total.lock().map_err(|_| "internal error")?;
        let mut per_ip = self.per_ip.lock().map_err(|_| "internal error")?;
        if *total >= self.settings.max_connections {
            return Err("too many connections, try again later");
        }
        let n = per_ip.entry(ip).or_insert(0);
        if *n >= self.settings.max_per_ip {
            return Err("too many connections from your address");
        }
        *n += 1;
        *total += 1;
        Ok(Admission { mta: self, ip })
    }
}

/// A connection slot, given back on drop.
struct Admission<'a> {
    mta: &'a Mta,
    ip: IpAddr,
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        if let Ok(mut t) = self.mta.total.lock() {
            *t = t.saturating_sub(1);
        }
        if let Ok(mut m) = self.mta.per_ip.lock()
            && let Some(n) = m.get_mut(&self.ip)
        {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// Accepts connections until `shutdown` turns true, then waits (bounded) for sessions.
pub async fn serve(
    listener: TcpListener,
    mta: Arc<Mta>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped(&mut shutdown) => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let mta = Arc::clone(&mta);
                let span = info_span!("smtp", client = %peer);
                tasks.spawn(async move { connection(stream, peer, mta).await }.instrument(span));
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    drop(listener);
    // Sessions that got no 250 lose nothing when cut: their clients retry.
    let grace = tokio::time::sleep(Duration::from_secs(10));
    tokio::pin!(grace);
    loop {
        tokio::select! {
            _ = &mut grace => { tasks.abort_all(); break; }
            next = tasks.join_next() => if next.is_none() { break },
        }
    }
    Ok(())
}

async fn connection(mut stream: TcpStream, peer: SocketAddr, mta: Arc<Mta>) {
    let ip = peer.ip();
    let _slot = match mta.admit(ip) {
        Ok(slot) => slot,
        Err(why) => {
            let refusal = format!("421 4.7.0 {why}\r\n");
            let until = Instant::now() + mta.settings.timeout;
            let _ = send(&mut stream, refusal.as_bytes(), until, mta.settings.timeout).await;
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let deadline = Instant::now() + mta.settings.max_session;
    let starttls = mta.tls.is_some();
    let mut session = Session::new(mta.settings.limits.clone(), ip, starttls, spool::new_id);
    if send(
        &mut stream,
        &session.greeting(),
        deadline,
        mta.settings.timeout,
    )
    .await
    .is_err()
    {
        return;
    }
    debug!("connected");
    match drive(&mut stream, &mut session, &mta, deadline).await {
        Ok(Ending::StartTls) => {}
        Ok(Ending::Closed) => return,
        Err(e) => {
            debug!(error = %e, "session ended");
            return;
        }
    }
    let Some(tls) = &mta.tls else {
        return;
    };
    // The address the client connected to picks the certificate (the VIP gets
    // mailserver1's); unknown, it is the default one.
    let local = stream.local_addr().map_or(ip, |a| a.ip());
    let acceptor = tls.acceptor(local);
    let mut tls = match timeout_at(
        deadline.min(Instant::now() + mta.settings.timeout),
        acceptor.accept(stream),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            info!(error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => return,
    };
    session.tls_started();
    if let Err(e) = drive(&mut tls, &mut session, &mta, deadline).await {
        debug!(error = %e, "session ended");
    }
    // close_notify is a write too: bounded like the others.
    let _ = tokio::time::timeout(mta.settings.timeout, tls.shutdown()).await;
}

enum Ending {
    Closed,
    StartTls,
}

/// Writes `bytes` within `timeout` and before the session `deadline`. Postfix's
/// smtpd_timeout bounds sending a reply as well as reading a command: a client that pipelines
/// without ever reading fills the socket buffers and would otherwise hold its slot for good.
async fn send<S: AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
    deadline: Instant,
    timeout: Duration,
) -> std::io::Result<()> {
    let write = async {
        stream.write_all(bytes).await?;
        stream.flush().await
    };
    match timeout_at(deadline.min(Instant::now() + timeout), write).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "client did not read its replies in time",
        )),
    }
}

/// Runs the session over one stream until it closes or asks for TLS. Replies to pipelined
/// commands are collected and written when the client has nothing more pending (RFC 2920).
async fn drive<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    session: &mut Session,
    mta: &Mta,
    deadline: Instant,
) -> std::io::Result<Ending> {
    let mut input = LineBuffer::new();
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let mut line_deadline = deadline.min(Instant::now() + mta.settings.timeout);
    // A big message's body so far, on disk; and the body octets buffered since.
    let mut spill: Option<Result<Spill, StoreError>> = None;
    let mut pending = 0;
    loop {
        let limit = if session.in_data() {
            MAX_DATA_LINE
        } else {
            MAX_COMMAND_LINE
        };
        let line = match input.next_line_limited(limit) {
            Ok(Some(line)) => line,
            Ok(None) => {
                if !out.is_empty() {
                    send(stream, &out, deadline, mta.settings.timeout).await?;
                    out.clear();
                }
                let n = match timeout_at(line_deadline, stream.read(&mut chunk)).await {
                    Ok(r) => r?,
                    Err(_) => {
                        let bye = b"421 4.4.2 timeout exceeded, closing connection\r\n";
                        let _ = send(stream, bye, deadline, mta.settings.timeout).await;
                        return Ok(Ending::Closed);
                    }
                };
                if n == 0 {
                    return Ok(Ending::Closed);
                }
                input.extend(&chunk[..n]);
                continue;
            }
            Err(ProtoError::LineTooLong { .. }) | Err(_) => {
                // The rest of an overlong line cannot be told from the next command: close.
                let step = session.line_too_long();
                let (Step::Reply(b) | Step::Close(b)) = step else {
                    return Ok(Ending::Closed);
                };
                out.extend(b);
                out.extend_from_slice(b"421 4.7.0 closing connection\r\n");
                send(stream, &out, deadline, mta.settings.timeout).await?;
                return Ok(Ending::Closed);
            }
        };
        line_deadline = deadline.min(Instant::now() + mta.settings.timeout);
        match session.line(&line) {
            Step::Reply(b) => out.extend(b),
            Step::Close(b) => {
                out.extend(b);
                send(stream, &out, deadline, mta.settings.timeout).await?;
                return Ok(Ending::Closed);
            }
            Step::StartTls(b) => {
                out.extend(b);
                send(stream, &out, deadline, mta.settings.timeout).await?;
                if input.pending() > 0 {
                    // Commands sent before the handshake would be trusted afterwards
                    // (CVE-2011-0411): refuse the connection instead.
                    warn!("client pipelined commands after STARTTLS; closing");
                    return Ok(Ending::Closed);
                }
                return Ok(Ending::StartTls);
            }
            Step::CheckRcpt { from, rcpt } => {
                let v = mta
                    .check_rcpt(session.client(), session.helo(), &from, &rcpt)
                    .await;
                match &v {
                    Verdict::Reject(r) => info!(%from, %rcpt, reply = %r, "recipient refused"),
                    _ => debug!(%from, %rcpt, verdict = %v, "recipient accepted"),
                }
                out.extend(session.rcpt_checked(v));
            }
            Step::Store(t) => {
                let mut t = t;
                let message = std::mem::take(&mut t.message);
                let spilled = spill.take();
                let result = match &spilled {
                    None => Ok(Body::Memory(Arc::new(message))),
                    Some(Err(e)) => Err(e.clone()),
                    Some(Ok(file)) => spilled_body(file, message, pending),
                };
                let size = result.as_ref().map_or(0, Body::len);
                let result = match result {
                    Ok(body) => mta.store(&t, body).await,
                    Err(e) => Err(e),
                };
                drop(spilled);
                match &result {
                    Ok(()) => info!(
                        id = %t.id,
                        from = %t.from,
                        rcpts = t.recipients.len(),
                        size,
                        "accepted"
                    ),
                    Err(e) => warn!(id = %t.id, error = ?e, "message not stored"),
                }
                out.extend(session.stored(result, &t.id));
            }
            Step::Etrn { domain, reply } => {
                info!(%domain, "ETRN");
                out.extend(etrn(mta, session, domain, reply));
            }
        }
        if session.in_data() {
            let buffered = session.buffered_body();
            let threshold = if spill.is_some() {
                SPILL_CHUNK
            } else {
                SPILL_AT
            };
            if buffered >= threshold
                && let Some(dir) = &mta.spill_dir
            {
                spill = Some(spill_more(spill.take(), dir, session).await);
            }
            pending = session.buffered_body();
        } else {
            // A transaction that ended without Store (too big, a loop) leaves no file.
            spill = None;
            pending = 0;
        }
    }
}

/// Moves the session's buffered body to its spill file (made on first use). After a failure
/// the body is still taken, and dropped: the client hears 451 or 452 at the end of DATA.
async fn spill_more(
    spill: Option<Result<Spill, StoreError>>,
    dir: &Path,
    session: &mut Session,
) -> Result<Spill, StoreError> {
    let body = session.take_body();
    let mut file = match spill {
        Some(Ok(file)) => file,
        Some(Err(e)) => return Err(e),
        None => Spill::create(dir.to_path_buf(), &spool::new_id())
            .await
            .map_err(|e| spill_failed(&e))?,
    };
    file.append(body).await.map_err(|e| spill_failed(&e))?;
    Ok(file)
}

fn spill_failed(e: &std::io::Error) -> StoreError {
    warn!(error = %e, "cannot spool a big message to disk");
    classify(e)
}

/// The store's view of a spilled message: the session's `message` is our Received header
/// followed by the `pending` body octets buffered after the last spill. The split is checked
/// against the header's shape; a mismatch fails the message (451, the client retries) rather
/// than store it out of order.
fn spilled_body(file: &Spill, message: Vec<u8>, pending: usize) -> Result<Body, StoreError> {
    let head = message.len().checked_sub(pending);
    match head {
        Some(head) if head > 0 && trace_len(&message[..head]) == head => {
            Ok(file.body(message, head))
        }
        _ => {
            warn!(
                pending,
                len = message.len(),
                "spilled message does not split after its Received header"
            );
            Err(StoreError::Failed)
        }
    }
}

/// ETRN (RFC 1985) with Postfix's replies: `250 Queuing started` for a domain we relay for
/// (the runner coalesces repeated flushes of one next hop), `459 <domain>: service
/// unavailable` for any other (Postfix's `fast_flush_domains`, by default the relay domains),
/// `458 Unable to queue messages` without a queue.
fn etrn(mta: &Mta, session: &Session, domain: String, reply: Vec<u8>) -> Vec<u8> {
    if mta.spool.is_none() {
        return b"458 Unable to queue messages\r\n".to_vec();
    }
    let tables = mta.tables();
    let probe = format!("postmaster@{domain}");
    let d = decide(
        &tables,
        session.client(),
        Some(session.helo()),
        "",
        &probe,
        &mta.settings.domains,
    );
    if d.verdict != Verdict::Accept(Accept::Relay) {
        info!(%domain, "ETRN for a domain not relayed here");
        return format!(
            "459 <{}>: service unavailable\r\n",
            crate::proto::escape(domain.as_bytes())
        )
        .into_bytes();
    }
    let _ = mta.flush.send(Wake::Flush(Some(domain)));
    reply
}
