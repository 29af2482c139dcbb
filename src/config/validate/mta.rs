//! `[mta]`: the bundled mini-MTA's settings.

use std::net::SocketAddr;

use super::Validator;
use crate::config::raw::{Field, RawSite};
use crate::config::{MtaSection, duration};

impl Validator<'_> {
    /// `[mta]`: every key typed and checked here, so `posta config check` finds mistakes
    /// before the mta starts. Missing keys stay unset (the flags or the defaults decide).
    pub(super) fn mta(&mut self, raw: &RawSite) -> Option<Option<MtaSection>> {
        let Some(t) = &raw.mta else {
            return Some(None);
        };
        let t = t.get_ref();
        let ok_before = self.problems.len();
        let addrs = |v: &mut Self, f: &Option<Field<Vec<String>>>, key: &str| {
            let list = v.get(f, key).unwrap_or_default();
            v.parsed(f, key, Some(list), |l| {
                l.iter()
                    .map(|a| {
                        a.parse::<SocketAddr>().map_err(|_| {
                            format!("{a:?} is not an address with a port (0.0.0.0:25, [::]:25)")
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .unwrap_or_default()
        };
        let path =
            |v: &mut Self, f: &Option<Field<String>>, key: &str| v.get(f, key).map(|p| v.path(&p));
        let dur = |v: &mut Self, f: &Option<Field<String>>, key: &str| {
            let text = v.get(f, key);
            text.as_ref()?;
            v.parsed(f, key, text, |s| duration::parse(&s))
        };
        let relay_tls = self.get(&t.relay_tls, "relay_tls");
        let relay_tls = self.parsed(&t.relay_tls, "relay_tls", relay_tls, |m| match m.as_str() {
            "require" | "may" | "none" => Ok(m),
            _ => Err(format!("{m:?}: use \"require\", \"may\" or \"none\"")),
        });
        let section = MtaSection {
            listen: addrs(self, &t.listen, "listen"),
            hostname: self.get(&t.hostname, "hostname"),
            domains: self.get(&t.domains, "domains").unwrap_or_default(),
            relay_domains: self
                .get(&t.relay_domains, "relay_domains")
                .unwrap_or_default(),
            maildir: path(self, &t.maildir, "maildir"),
            maildir_owner: self.get(&t.maildir_owner, "maildir_owner"),
            queue: path(self, &t.queue, "queue"),
            control_socket: path(self, &t.control_socket, "control_socket"),
            relay_to: self.get(&t.relay_to, "relay_to"),
            relay_tls,
            access: path(self, &t.access, "access"),
            virtusertable: path(self, &t.virtusertable, "virtusertable"),
            local_host_names: path(self, &t.local_host_names, "local_host_names"),
            recipients: path(self, &t.recipients, "recipients"),
            verify_recipients: self
                .get(&t.verify_recipients, "verify_recipients")
                .unwrap_or(false),
            pop3_listen: addrs(self, &t.pop3_listen, "pop3_listen"),
            pop3s_listen: addrs(self, &t.pop3s_listen, "pop3s_listen"),
            pop3_users: self.secret_file(&t.pop3_users, "pop3_users"),
            tls_cert: path(self, &t.tls_cert, "tls_cert"),
            tls_key: self.secret_file(&t.tls_key, "tls_key"),
            vip_tls_cert: path(self, &t.vip_tls_cert, "vip_tls_cert"),
            vip_tls_key: self.secret_file(&t.vip_tls_key, "vip_tls_key"),
            max_message_size: self.get(&t.max_message_size, "max_message_size"),
            max_recipients: self.get(&t.max_recipients, "max_recipients"),
            max_connections: self.get(&t.max_connections, "max_connections"),
            max_per_ip: self.get(&t.max_per_ip, "max_per_ip"),
            timeout: dur(self, &t.timeout, "timeout"),
            retry_min: dur(self, &t.retry_min, "retry_min"),
            retry_max: dur(self, &t.retry_max, "retry_max"),
            lifetime: dur(self, &t.lifetime, "lifetime"),
            min_free: self.get(&t.min_free, "min_free"),
        };
        (self.problems.len() == ok_before).then_some(Some(section))
    }
}
