//! A private Postfix accepting mail for one test domain on loopback high ports.
//!
//! Root may run `postfix -c DIR start` with any config directory, so each instance has its own
//! main.cf/master.cf, queue and log (no syslog on these machines: the postlog service writes
//! `maillog_file`). Mail for the test domain goes through virtual(8) into Maildirs owned by
//! posta-vmail, or with [`Options::lmtp`] over LMTP into a Dovecot; every other transport is
//! `error:` so nothing can leave the machine. Either way the vmailbox table decides which
//! recipients exist (unknown ones get 550 5.1.1 at RCPT). `mynetworks` is empty: like an
//! internet-facing MX it accepts mail for its own domain from anyone and relays only for
//! SASL-authenticated clients (and then only into `error:`). A recipient access table served
//! from the test process lets tests inject per-recipient answers such as `452 4.2.2`, effective
//! at the next RCPT ([`Postfix::set_recipient_access`]).

use super::ca::Ca;
use super::ports::free_ports;
use super::socketmap::SocketMap;
use super::sys::{
    loopback, pid_alive, port_open, read_pid, require_root, require_tool, run_daemon, server_dir,
    tail, vmail_ids, wait_until,
};
use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const START_DEADLINE: Duration = Duration::from_secs(20);
const STOP_DEADLINE: Duration = Duration::from_secs(10);
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Postfix {
    dir: tempfile::TempDir,
    domain: String,
    ports: [u16; 2],
    running: bool,
    /// `check_recipient_access` asks this table on every RCPT.
    recipient_access: SocketMap,
}

/// How [`Postfix::start_with`] sets an instance up beyond its domain and users.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options<'a> {
    /// A Dovecot auth socket (see `Dovecot::auth_socket`): offer SMTP AUTH through Dovecot.
    pub sasl: Option<&'a Path>,
    /// A Dovecot LMTP port on 127.0.0.1 (see `Dovecot::lmtp_port`): deliver the domain's mail
    /// there instead of into this instance's own Maildirs.
    pub lmtp: Option<u16>,
    /// Lines appended to main.cf; a parameter set here overrides the one above it.
    pub main_cf: Option<&'a str>,
    /// Listen on these ports (SMTP, submission) instead of two free ones: for instances whose
    /// maps must name each other before they start.
    pub ports: Option<[u16; 2]>,
    /// Listen on every address (`inet_interfaces = all`), not only 127.0.0.1: for an instance
    /// started inside a network namespace (from a thread that joined it) as a LAN's mail
    /// server, reached at its own address and at a virtual IP that comes and goes.
    pub any_address: bool,
}

impl Postfix {
    /// Starts Postfix for `domain` with mailboxes for `users` (local parts). With `sasl` (a
    /// Dovecot auth socket, see `Dovecot::auth_socket`) it offers SMTP AUTH through Dovecot.
    /// Returns once both listeners accept connections.
    pub fn start(ca: &Ca, domain: &str, users: &[&str], sasl: Option<&Path>) -> Postfix {
        Postfix::start_with(
            ca,
            domain,
            users,
            Options {
                sasl,
                ..Options::default()
            },
        )
    }

    /// [`Postfix::start`] with every option, e.g. delivery over LMTP into a Dovecot.
    pub fn start_with(ca: &Ca, domain: &str, users: &[&str], options: Options) -> Postfix {
        require_root();
        let postfix = require_tool("postfix");
        let (uid, gid) = vmail_ids();
        let mut p = Postfix {
            dir: server_dir("posta-postfix-"),
            domain: domain.to_owned(),
            ports: options.ports.unwrap_or_else(free_ports::<2>),
            running: false,
            recipient_access: SocketMap::start(),
        };
        let mail = p.path().join("mail");
        fs::create_dir(&mail).expect("failed to create mail dir");
        chown(&mail, Some(uid), Some(gid)).expect("failed to chown mail dir");
        let mailboxes: String = users
            .iter()
            .map(|u| format!("{u}@{domain} {u}/Maildir/\n"))
            .collect();
        fs::write(p.path().join("vmailbox"), mailboxes).expect("failed to write vmailbox");
        // Config apart from the queue, as in /etc/postfix vs /var/spool/postfix: postfix check
        // warns about every non-root file under the config directory. The queue directory
        // must exist before any postfix command (it chdirs there first); check fills it in.
        fs::create_dir(p.conf()).expect("failed to create config dir");
        fs::create_dir(p.path().join("spool")).expect("failed to create queue dir");
        fs::write(p.conf().join("main.cf"), p.main_cf(ca, uid, gid, options))
            .expect("failed to write main.cf");
        fs::write(
            p.conf().join("master.cf"),
            p.master_cf(options.sasl.is_some(), options.any_address),
        )
        .expect("failed to write master.cf");

        // `check` also creates the queue tree with the right owners (post-install
        // create-missing); its output is the best explanation of a bad config.
        let check = Command::new(&postfix)
            .arg("-c")
            .arg(p.conf())
            .arg("check")
            .output()
            .expect("failed to run postfix check");
        assert!(
            check.status.success(),
            "postfix check failed for {}:\n{}{}{}",
            p.conf().display(),
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr),
            tail(&p.log(), 30)
        );
        // Postfix reports start failures in its maillog_file, so its own output goes there too.
        run_daemon(
            Command::new(&postfix).arg("-c").arg(p.conf()).arg("start"),
            &p.log(),
        );
        p.running = true;
        if wait_until(START_DEADLINE, || {
            p.ports.iter().all(|port| port_open(*port))
        })
        .is_err()
        {
            panic!(
                "postfix did not listen on {:?} within {START_DEADLINE:?}; log tail:\n{}",
                p.ports,
                tail(&p.log(), 30)
            );
        }
        p
    }

    /// The plain SMTP listener (port-25 role; STARTTLS offered, not required).
    pub fn smtp_port(&self) -> u16 {
        self.ports[0]
    }

    /// The submission-style listener: STARTTLS required, SMTP AUTH when started with `sasl`.
    pub fn submission_port(&self) -> u16 {
        self.ports[1]
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Where virtual(8) delivers `user@domain` (unused with [`Options::lmtp`]: then the mail is
    /// in the Dovecot's Maildir).
    pub fn maildir(&self, user: &str) -> PathBuf {
        self.path().join("mail").join(user).join("Maildir")
    }

    /// Replaces the recipient access table (`check_recipient_access`; texthash syntax: one
    /// `address-or-domain ACTION` per line, e.g. `alice@example.org 452 4.2.2 mailbox busy`;
    /// `""` clears it). Takes effect at the next RCPT command, in open sessions too.
    pub fn set_recipient_access(&self, map: &str) {
        self.recipient_access.set(map);
    }

    /// The reply (all lines, CRLF stripped) to `RCPT TO:<rcpt>` after `MAIL FROM:<>` in a fresh
    /// session on the SMTP port, e.g. `250 2.1.5 Ok` or `550 5.1.1 <x@y>: Recipient address
    /// rejected: ...`.
    pub fn rcpt_reply(&self, rcpt: &str) -> String {
        rcpt_reply(self.smtp_port(), rcpt)
            .unwrap_or_else(|e| panic!("SMTP session with postfix failed: {e}"))
    }

    /// Postfix's `maillog_file`.
    pub fn log(&self) -> PathBuf {
        self.path().join("postfix.log")
    }

    /// The config directory (`postfix -c` / `postconf -c` argument).
    pub fn conf(&self) -> PathBuf {
        self.path().join("etc")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Starts a stopped instance again with the same config, queue and ports (a primary
    /// coming back), returning once both listeners accept.
    pub fn start_again(&mut self) {
        assert!(!self.running, "postfix is already running");
        run_daemon(
            Command::new(require_tool("postfix"))
                .arg("-c")
                .arg(self.conf())
                .arg("start"),
            &self.log(),
        );
        self.running = true;
        if wait_until(START_DEADLINE, || self.ports.iter().all(|p| port_open(*p))).is_err() {
            panic!(
                "postfix did not listen again on {:?}; log tail:\n{}",
                self.ports,
                tail(&self.log(), 30)
            );
        }
    }

    /// Stops Postfix and waits until its master process is gone; panics if it is not.
    /// Idempotent (`Drop` then does nothing).
    pub fn stop(&mut self) {
        if let Err(e) = self.shutdown() {
            panic!("{e}");
        }
    }

    fn shutdown(&mut self) -> Result<(), String> {
        if !self.running {
            return Ok(());
        }
        self.running = false;
        let pid = read_pid(&self.path().join("spool/pid/master.pid"));
        let _ = Command::new(require_tool("postfix"))
            .arg("-c")
            .arg(self.conf())
            .arg("stop")
            .output();
        let gone =
            || pid.is_none_or(|pid| !pid_alive(pid)) && self.ports.iter().all(|p| !port_open(*p));
        if wait_until(STOP_DEADLINE, gone).is_ok() {
            return Ok(());
        }
        if let Some(pid) = pid {
            // Last resort so a wedged master never outlives the test run.
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .output();
        }
        Err(format!(
            "postfix master {pid:?} still running after postfix stop; log tail:\n{}",
            tail(&self.log(), 20)
        ))
    }

    fn main_cf(&self, ca: &Ca, uid: u32, gid: u32, options: Options) -> String {
        let dir = self.path().display();
        let domain = &self.domain;
        let mut cf = format!(
            "# Private test instance written by tests/support/postfix.rs
compatibility_level = 3.6
queue_directory = {dir}/spool
data_directory = {dir}/data
meta_directory = /etc/postfix
maillog_file = {dir}/postfix.log
maillog_file_prefixes = {dir}
inet_interfaces = {interfaces}
inet_protocols = ipv4
myhostname = mx.{domain}
mydomain = {domain}
mydestination =
mynetworks =
alias_maps =
alias_database =
biff = no
append_dot_mydomain = no
readme_directory = no
in_flow_delay = 0s
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
smtpd_recipient_restrictions = check_recipient_access {access}
virtual_mailbox_domains = {domain}
virtual_mailbox_base = {dir}/mail/
virtual_mailbox_maps = texthash:{dir}/vmailbox
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = {uid}
default_transport = error:posta test instance delivers nowhere else
relay_transport = error:posta test instance relays nowhere
local_transport = error:posta test instance has no local delivery
smtpd_tls_security_level = may
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_loglevel = 1
smtp_tls_security_level = none
",
            cert = ca.cert_pem().display(),
            key = ca.key_pem().display(),
            access = self.recipient_access.postfix_name("recipient_access"),
            interfaces = if options.any_address {
                "all"
            } else {
                "127.0.0.1"
            },
        );
        if let Some(port) = options.lmtp {
            // Dovecot's LMTP takes over from virtual(8); the vmailbox table still validates
            // recipients at RCPT. At most 10 parallel deliveries (Postfix's default is 20) on
            // these 2-core machines; the LMTP client reuses connections when mail queues up.
            cf.push_str(&format!(
                "virtual_transport = lmtp:inet:127.0.0.1:{port}
lmtp_destination_concurrency_limit = 10
lmtp_tls_security_level = none
"
            ));
        }
        if let Some(socket) = options.sasl {
            cf.push_str(&format!(
                "smtpd_sasl_type = dovecot\nsmtpd_sasl_path = {}\nsmtpd_sasl_auth_enable = yes\n",
                socket.display()
            ));
        }
        if let Some(extra) = options.main_cf {
            // An override replaces the line it overrides instead of following it. A repeated
            // parameter makes every Postfix program log "overriding earlier entry" at start;
            // with enough of them the postlog socket fills before postlogd runs, postlogd
            // then blocks logging its own warning into it, and every smtpd waits forever.
            let key = |line: &str| line.split('=').next().map(|k| k.trim().to_string());
            let overridden: Vec<String> = extra
                .lines()
                .filter(|l| l.contains('=') && !l.starts_with([' ', '\t', '#']))
                .filter_map(key)
                .collect();
            let mut kept = String::new();
            let mut dropping = false;
            for l in cf.lines() {
                // A continuation line belongs to the parameter above it.
                if !l.starts_with([' ', '\t']) {
                    dropping = !l.starts_with('#')
                        && l.contains('=')
                        && key(l).is_some_and(|k| overridden.contains(&k));
                }
                if !dropping {
                    kept.push_str(l);
                    kept.push('\n');
                }
            }
            kept.push_str(extra);
            cf = kept;
        }
        cf
    }

    fn master_cf(&self, sasl: bool, any_address: bool) -> String {
        let [smtp, submission] = self.ports;
        // A bare port listens on every inet_interfaces address.
        let at = if any_address { "" } else { "127.0.0.1:" };
        let auth = if sasl {
            "  -o smtpd_sasl_auth_enable=yes\n  -o smtpd_tls_auth_only=yes\n"
        } else {
            ""
        };
        // Column 5 (chroot) is n everywhere: a chroot would need copies of the CA files,
        // the Dovecot socket and /etc files inside the private queue directory.
        format!(
            "# Private test instance written by tests/support/postfix.rs
{at}{smtp} inet n - n - - smtpd
{at}{submission} inet n - n - - smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
{auth}pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"
        )
    }
}

/// See [`Postfix::rcpt_reply`].
fn rcpt_reply(port: u16, rcpt: &str) -> io::Result<String> {
    let stream = TcpStream::connect(loopback(port))?;
    stream.set_read_timeout(Some(SMTP_TIMEOUT))?;
    let mut conn = BufReader::new(stream);
    smtp_reply(&mut conn)?;
    let mut reply = String::new();
    for command in [
        "EHLO probe.posta.test".to_owned(),
        "MAIL FROM:<>".to_owned(),
        format!("RCPT TO:<{rcpt}>"),
        "QUIT".to_owned(),
    ] {
        conn.get_mut()
            .write_all(format!("{command}\r\n").as_bytes())?;
        let answer = smtp_reply(&mut conn)?;
        if command.starts_with("RCPT") {
            reply = answer;
        }
    }
    Ok(reply)
}

/// One SMTP reply, all its lines, CRLF stripped.
fn smtp_reply(conn: &mut BufReader<TcpStream>) -> io::Result<String> {
    let mut reply = String::new();
    loop {
        let mut line = String::new();
        if conn.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("postfix closed the connection after {reply:?}"),
            ));
        }
        let line = line.trim_end();
        if !reply.is_empty() {
            reply.push('\n');
        }
        reply.push_str(line);
        // The last line of a reply has a space (or nothing) after the code, not a dash.
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(reply);
        }
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        // Never panic in drop: report and let the test's own result stand.
        if let Err(e) = self.shutdown() {
            eprintln!("warning: {e}");
        }
    }
}
