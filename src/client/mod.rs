//! Async drivers that own sockets. Protocol meaning lives in `proto`; this layer moves bytes:
//! [`conn::Conn`] reads bounded lines and writes whole commands over TCP, upgraded in place to
//! TLS; [`tls`] builds the rustls (ring) configuration and explains handshake failures.
//! [`imap`] is the IMAP client session `posta migrate` reads from and appends to; [`pop3`] the
//! migrate source's POP3 client; [`smtp`] the SMTP/LMTP delivery client.

pub mod conn;
pub mod endpoint;
pub mod imap;
pub mod pop3;
pub mod smtp;
pub mod tls;

pub use crate::service::AdminForm;
pub use conn::{Conn, ConnError};
pub use endpoint::{Admin, Endpoint, Login};
pub use imap::{ImapClient, ImapError};
pub use tls::{TlsSetup, TlsSetupError};
