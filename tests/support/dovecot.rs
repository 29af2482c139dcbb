//! A private Dovecot (IMAP, IMAPS, POP3, POP3S, LMTP) on loopback high ports.
//!
//! Self-contained dovecot.conf (no conf.d includes, nothing under /etc touched), its own
//! `instance_name`, base_dir, state_dir and log under a temp dir. Users come from a passwd-file
//! with `{PLAIN}` passwords; mail is Maildir owned by posta-vmail because Dovecot refuses uid 0
//! for mail. The auth socket lets a private Postfix do SMTP AUTH through Dovecot, and the LMTP
//! listener lets it deliver into these Maildirs (see `Postfix::start_with`). Tests seed and
//! inspect mailboxes on disk through [`super::maildir`].
//!
//! Login processes run in Dovecot's default high-security mode (a new `imap-login` per
//! connection). `POSTA_DOVECOT_LOGIN=performance` (read by the benches only) starts them in
//! Dovecot's documented high-performance mode instead (`service_count = 0`, one waiting
//! process per CPU), as a busy site runs them.

use super::ca::Ca;
use super::maildir::{self, StoredMessage};
use super::ports::free_ports;
use super::sys::{
    self, pid_alive, port_open, read_pid, require_root, require_tool, run_daemon, server_dir_in,
    tail, vmail_ids, wait_until,
};
use std::fs;
use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

const START_DEADLINE: Duration = Duration::from_secs(15);
const STOP_DEADLINE: Duration = Duration::from_secs(10);

pub struct Dovecot {
    dir: tempfile::TempDir,
    ports: [u16; 5],
    running: bool,
    /// `mail_location`'s root: user U's Maildir is `ROOT/U` (see [`Dovecot::start_on`]);
    /// None for the default `DIR/mail/U/Maildir`.
    mail_root: Option<PathBuf>,
    /// The listeners' addresses (Dovecot syntax).
    listen: &'static str,
}

/// IMAP, IMAPS, POP3, POP3S and LMTP on their standard ports, for [`Dovecot::start_in_namespace`].
const STANDARD_PORTS: [u16; 5] = [143, 993, 110, 995, 24];

/// Where a Dovecot outside a namespace listens: 127.0.0.1 and 127.0.0.2, the addresses the
/// tests give mailserver1 and mailserver2.
const LOOPBACKS: &str = "127.0.0.1, 127.0.0.2";

impl Dovecot {
    /// Starts Dovecot serving `users` (name, password) with `ca`'s leaf certificate; returns
    /// once all five listeners accept connections.
    pub fn start(ca: &Ca, users: &[(&str, &str)]) -> Dovecot {
        Dovecot::start_with(ca, users, None, None)
    }

    /// Starts Dovecot serving the Maildirs someone else writes: user U's is `mail_root/U`
    /// (`mail_location = maildir:ROOT/%u`, `posta mta --maildir ROOT`'s layout). Nothing is
    /// created there: whoever delivers makes the Maildirs, and their owner and modes are what
    /// the test checks.
    pub fn start_on(ca: &Ca, users: &[(&str, &str)], mail_root: &Path) -> Dovecot {
        Dovecot::start_with(ca, users, Some(mail_root.to_path_buf()), None)
    }

    /// Like [`Dovecot::start`], with `master` (name, password) as a master user who may log in
    /// as any of `users`: by SASL PLAIN with the user as authorization identity, or as
    /// `user*master` (`auth_master_user_separator = *`). A master passdb placed before the
    /// users' one, with `pass = yes` so Dovecot still checks that the target user exists
    /// (Dovecot 2.3's spelling).
    pub fn start_with_master(ca: &Ca, users: &[(&str, &str)], master: (&str, &str)) -> Dovecot {
        Dovecot::start_with(ca, users, None, Some(master))
    }

    /// Like [`Dovecot::start`], listening on every address at the standard ports (143, 993,
    /// 110, 995, LMTP 24): for a LAN's mail server in a network namespace, started from a
    /// thread that joined it, reached at its own address and at a virtual IP.
    pub fn start_in_namespace(ca: &Ca, users: &[(&str, &str)]) -> Dovecot {
        Dovecot::start_full(ca, users, None, None, Some(STANDARD_PORTS), "*", None)
    }

    /// Like [`Dovecot::start`] (with `master` as in [`Dovecot::start_with_master`]), its
    /// directory (configuration, mail, indexes) made under `parent` instead of the temp dir: a
    /// benchmark gives each emulated host its own file system.
    pub fn start_under(
        parent: &Path,
        ca: &Ca,
        users: &[(&str, &str)],
        master: Option<(&str, &str)>,
    ) -> Dovecot {
        Dovecot::start_full(ca, users, None, master, None, LOOPBACKS, Some(parent))
    }

    fn start_with(
        ca: &Ca,
        users: &[(&str, &str)],
        mail_root: Option<PathBuf>,
        master: Option<(&str, &str)>,
    ) -> Dovecot {
        Dovecot::start_full(ca, users, mail_root, master, None, LOOPBACKS, None)
    }

    fn start_full(
        ca: &Ca,
        users: &[(&str, &str)],
        mail_root: Option<PathBuf>,
        master: Option<(&str, &str)>,
        ports: Option<[u16; 5]>,
        listen: &'static str,
        parent: Option<&Path>,
    ) -> Dovecot {
        require_root();
        require_tool("dovecot");
        require_tool("doveadm");
        let (uid, gid) = vmail_ids();
        let dir = server_dir_in("posta-dovecot-", parent);
        let ports = ports.unwrap_or_else(free_ports::<5>);
        let d = Dovecot {
            dir,
            ports,
            running: false,
            mail_root,
            listen,
        };

        let mail = d.path().join("mail");
        fs::create_dir(&mail).expect("failed to create mail dir");
        chown(&mail, Some(uid), Some(gid)).expect("failed to chown mail dir");
        let mut passwd = String::new();
        for (user, password) in users {
            passwd.push_str(&format!("{user}:{{PLAIN}}{password}\n"));
            if d.mail_root.is_some() {
                continue;
            }
            // Pre-create the Maildir so tests can seed messages before the first login.
            let maildir = d.maildir(user);
            for sub in ["cur", "new", "tmp"] {
                fs::create_dir_all(maildir.join(sub)).expect("failed to create Maildir");
            }
            for p in [mail.join(user), maildir.clone()] {
                chown(&p, Some(uid), Some(gid)).expect("failed to chown Maildir");
            }
            for sub in ["cur", "new", "tmp"] {
                chown(maildir.join(sub), Some(uid), Some(gid)).expect("failed to chown Maildir");
            }
        }
        fs::write(d.path().join("users"), passwd).expect("failed to write users");
        let masters = master.map(|(name, password)| {
            let path = d.path().join("masters");
            fs::write(&path, format!("{name}:{{PLAIN}}{password}\n"))
                .expect("failed to write masters");
            format!(
                "auth_master_user_separator = *\n\
                 passdb {{\n  driver = passwd-file\n  master = yes\n  \
                 args = scheme=PLAIN username_format=%u {}\n  pass = yes\n}}\n",
                path.display()
            )
        });
        let config = d.config(ca, uid, gid, masters.as_deref().unwrap_or(""));
        fs::write(d.conf(), config).expect("failed to write dovecot.conf");

        let mut d = d;
        d.run();
        d
    }

    /// Starts a stopped instance again with the same configuration, ports and mail (a
    /// primary coming back), returning once all five listeners accept.
    pub fn start_again(&mut self) {
        assert!(!self.running, "dovecot is already running");
        self.run();
    }

    fn run(&mut self) {
        run_daemon(
            Command::new(require_tool("dovecot"))
                .arg("-c")
                .arg(self.conf()),
            &self.log(),
        );
        self.running = true;
        if wait_until(START_DEADLINE, || self.ports.iter().all(|p| port_open(*p))).is_err() {
            panic!(
                "dovecot did not listen on {:?} within {START_DEADLINE:?}; log tail:\n{}",
                self.ports,
                tail(&self.log(), 30)
            );
        }
    }

    pub fn imap_port(&self) -> u16 {
        self.ports[0]
    }
    pub fn imaps_port(&self) -> u16 {
        self.ports[1]
    }
    pub fn pop3_port(&self) -> u16 {
        self.ports[2]
    }
    pub fn pop3s_port(&self) -> u16 {
        self.ports[3]
    }
    /// LMTP (RFC 2033) in cleartext. `RCPT TO:<alice@any.domain>` delivers to user `alice`.
    pub fn lmtp_port(&self) -> u16 {
        self.ports[4]
    }

    /// Dovecot's auth socket (mode 0666) for Postfix's `smtpd_sasl_path`.
    pub fn auth_socket(&self) -> PathBuf {
        self.path().join("auth-postfix")
    }

    /// `user`'s Maildir (Maildir++: IMAP folder `Projects` is the subdir `.Projects`).
    pub fn maildir(&self, user: &str) -> PathBuf {
        match &self.mail_root {
            Some(root) => root.join(user),
            None => self.path().join("mail").join(user).join("Maildir"),
        }
    }

    /// Puts a raw message into `user`'s INBOX (`new/`) as posta-vmail, as a delivery would.
    pub fn deliver(&self, user: &str, message: &[u8]) -> PathBuf {
        let (uid, gid) = vmail_ids();
        let name = sys::unique_name("posta");
        let tmp = self.maildir(user).join("tmp").join(&name);
        let new = self.maildir(user).join("new").join(&name);
        fs::write(&tmp, message).expect("failed to write message");
        chown(&tmp, Some(uid), Some(gid)).expect("failed to chown message");
        fs::rename(&tmp, &new).expect("failed to move message into new/");
        new
    }

    /// Writes `message` straight into `user`'s `folder` (None: INBOX) as Dovecot would have
    /// stored it: maildir `flags` letters (e.g. `"S"`, `"FS"`, `""` = unread in `new/`),
    /// IMAP `keywords`, and `mtime`, which Dovecot reports as INTERNALDATE. A new folder is
    /// created and subscribed. `folder` is an IMAP name with `.` as hierarchy separator (the
    /// Maildir++ default here). No process per message: 10,000 take a second or two.
    pub fn seed(
        &self,
        user: &str,
        folder: Option<&str>,
        message: &[u8],
        flags: &str,
        keywords: &[&str],
        mtime: SystemTime,
    ) -> PathBuf {
        maildir::seed(
            &self.maildir(user),
            folder,
            message,
            flags,
            keywords,
            mtime,
            vmail_ids(),
        )
    }

    /// The messages in `user`'s `folder` (None: INBOX) on disk, `cur/` and `new/`, in
    /// Maildir file-name order (delivery order).
    pub fn messages(&self, user: &str, folder: Option<&str>) -> Vec<StoredMessage> {
        maildir::messages(&self.maildir(user), folder)
    }

    /// Deletes every message in `user`'s `folder` (None: INBOX) on disk; Dovecot sees them
    /// as expunged at its next sync. Folder, keywords and subscriptions stay.
    pub fn clear(&self, user: &str, folder: Option<&str>) {
        maildir::clear(&self.maildir(user), folder);
    }

    /// Dovecot's log (errors and info), for assertions and debugging.
    pub fn log(&self) -> PathBuf {
        self.path().join("dovecot.log")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Stops Dovecot and waits until its ports are closed; panics if they stay open.
    /// Idempotent (a stopped instance stays stopped; `Drop` then does nothing).
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
        // SIGTERM to the master is what `doveadm stop` does, but doveadm also holds a
        // stats-writer connection that keeps Dovecot's shutdown waiting: 2.5-3 s instead of
        // 1 s per instance. doveadm remains the fallback when the pid file is missing.
        let pid = read_pid(&self.path().join("run/master.pid"));
        match pid {
            Some(pid) => {
                let _ = Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .output();
            }
            None => {
                let _ = Command::new(require_tool("doveadm"))
                    .arg("-c")
                    .arg(self.conf())
                    .arg("stop")
                    .output();
            }
        }
        let gone =
            || pid.is_none_or(|pid| !pid_alive(pid)) && self.ports.iter().all(|p| !port_open(*p));
        wait_until(STOP_DEADLINE, gone).map_err(|()| {
            format!(
                "dovecot (master {pid:?}) still runs or listens on {:?} after SIGTERM; \
                 log tail:\n{}",
                self.ports,
                tail(&self.log(), 20)
            )
        })
    }

    fn conf(&self) -> PathBuf {
        self.path().join("dovecot.conf")
    }

    /// The configuration; `masters` (the master passdb, or nothing) goes before the users'
    /// passdb, since Dovecot asks passdbs in order.
    fn config(&self, ca: &Ca, uid: u32, gid: u32, masters: &str) -> String {
        let dir = self.path().display();
        let [imap, imaps, pop3, pop3s, lmtp] = self.ports;
        let mail_location = match &self.mail_root {
            Some(root) => format!("maildir:{}/%u", root.display()),
            None => format!("maildir:{dir}/mail/%u/Maildir"),
        };
        format!(
            r#"# Private test instance written by tests/support/dovecot.rs
instance_name = {instance}
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
info_log_path = {dir}/dovecot.log
protocols = imap pop3 lmtp
listen = {listen}
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
ssl_dh = </usr/share/dovecot/dh.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
first_valid_uid = {uid}
first_valid_gid = {gid}
mail_location = {mail_location}
{masters}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={dir}/mail/%u
}}
service imap-login {{
{login_mode}  inet_listener imap {{
    address = {listen}
    port = {imap}
  }}
  inet_listener imaps {{
    address = {listen}
    port = {imaps}
    ssl = yes
  }}
}}
service pop3-login {{
{login_mode}  inet_listener pop3 {{
    address = {listen}
    port = {pop3}
  }}
  inet_listener pop3s {{
    address = {listen}
    port = {pop3s}
    ssl = yes
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = {listen}
    port = {lmtp}
  }}
}}
service auth {{
  unix_listener {dir}/auth-postfix {{
    mode = 0666
  }}
}}
protocol imap {{
  mail_plugins = $mail_plugins mail_log notify
}}
protocol pop3 {{
  mail_plugins = $mail_plugins mail_log notify
}}
# LMTP recipients are full addresses; the passwd-file knows local parts.
protocol lmtp {{
  auth_username_format = %Ln
}}
plugin {{
  mail_log_events = delete undelete expunge copy mailbox_delete mailbox_rename
  mail_log_fields = uid box msgid size
}}
"#,
            instance = sys::unique_name("posta-dovecot"),
            login_mode = login_mode(),
            listen = self.listen,
            cert = ca.cert_pem().display(),
            key = ca.key_pem().display(),
        )
    }
}

/// The login service's mode lines (see the module's doc): none for the default.
fn login_mode() -> String {
    match std::env::var("POSTA_DOVECOT_LOGIN").as_deref() {
        Ok("performance") => {
            let cpus = std::thread::available_parallelism().map_or(1, usize::from);
            format!("  service_count = 0\n  process_min_avail = {cpus}\n")
        }
        Ok("") | Err(_) => String::new(),
        Ok(other) => {
            panic!("POSTA_DOVECOT_LOGIN is {other:?}; the one mode it names is performance")
        }
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // Never panic in drop: report and let the test's own result stand.
        if let Err(e) = self.shutdown() {
            eprintln!("warning: {e}");
        }
    }
}
