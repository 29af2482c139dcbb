//! posta keeps an organization's mail flowing when its primary mail server fails, and brings
//! everything home when it recovers.
//!
//! Architecture map (one module per responsibility; `cmd` orchestrates, the rest does the work):
//!
//! - `cli`      the clap definitions: `--help`, man pages and completions come from them.
//! - `cmd`      one file per subcommand, orchestration only; maps results to exit codes.
//! - `config`   the site file: raw serde types, validated once into typed config with located errors.
//! - `secret`   secrets read from owner-only files; never printed.
//! - `service`  what a mail service is (scheme, STARTTLS, TLS policy, admin login form): plain
//!   types shared by `config`, `client` and `health`.
//! - `durable`  the one atomic, fsync'd file replacement every writer uses.
//! - `clock`    now as stored: seconds since the Unix epoch.
//! - `shutdown` the stop signal every long-running task selects on.
//! - `dns`      DNS names and the wire exchange with one server (queries, UPDATE, AXFR) that the
//!   takeover, the zone check and the site file's validation share.
//! - `retry`    the one retry policy: exponential backoff with jitter.
//! - `notify`   telling users of a takeover or failback: templates, RFC 5322 notices sent over
//!   SMTP, a durable record that the per-event rate limit reads.
//! - `health`   probes (SMTP, IMAP, POP3, DNS) and their Nagios-style verdicts; reports.
//! - `takeover` mailserver2 takes mailserver1's place: `dns` moves its A/AAAA record (RFC 2136
//!   UPDATE signed with TSIG, or a static zone file) and verifies every authoritative server.
//! - `migrate`  mailserver2 → mailserver1: journal, readers, delivery workers, reconciliation.
//! - `mirror`   mailserver1 → mailserver2: a warm, incremental IMAP copy of every mailbox
//!   (CONDSTORE/QRESYNC), with a durable map of which mailserver2 message copies which.
//! - `proto`    sans-I/O wire formats: reply parsing with no sockets, tested with bytes.
//! - `client`   the async drivers that own sockets: line I/O, TLS (rustls with ring only), the
//!   IMAP, POP3 and SMTP/LMTP sessions migrate uses.
//! - `mta`      the backup-MX mini-MTA: sendmail's tables and the relay policy, the SMTP session
//!   (sans-I/O) and server, group-committed Maildir and queue storage, the queue runner with
//!   MX routing and DSNs, the POP3 server.
//! - `takeover` moving mailserver1's service to mailserver2 and back: `vip` probes, adds, removes
//!   and announces a virtual IP (netlink, ARP, neighbour discovery).
//! - `watch`    the daemon that decides: a pure fall/grace/rise policy, witnesses, metrics,
//!   systemd notify, and posta under keepalived.
//! - `drill`    the whole scenario rehearsed in network namespaces from posta's own parts.
//! - `routes`   one domain over regional servers: tables generated from the offices' lists and
//!   proven by hop-by-hop evaluation.
//! - `zone`     the routes layout's DNS zone: planned from the layout and rendered as a zone
//!   file, compared with what the authoritative server holds (AXFR, else queries).

pub mod cli;
pub mod client;
pub mod clock;
pub mod cmd;
pub mod config;
pub mod dns;
pub mod docs;
pub mod drill;
pub mod durable;
pub mod health;
pub mod migrate;
pub mod mirror;
pub mod mta;
pub mod notify;
pub mod proto;
pub mod retry;
pub mod routes;
pub mod secret;
pub mod service;
pub mod shutdown;
pub mod takeover;
pub mod watch;
pub mod zone;
