//! The mini-MTA for the backup-MX role (issue 5). `tables` parses sendmail's `access`,
//! `virtusertable` and `local-host-names` files and `policy` makes the relay decision from
//! them, all sans-I/O so `posta mta explain` and the tests need no sockets. For the
//! store-and-forward role, `route` says where a queued message for a domain goes next (a fixed
//! smarthost, or the domain's MX hosts more preferred than us: never back to ourselves) and
//! `dsn` writes the RFC 3464 bounce or delay notice for mail the relay cannot deliver.

pub mod dsn;
pub mod policy;
pub mod route;
pub mod tables;
