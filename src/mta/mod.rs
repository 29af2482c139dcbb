//! The mini-MTA for the backup-MX role (issue 5). For now only `tables`: sendmail's `access`,
//! `virtusertable` and `local-host-names` files, and `policy`, the relay decision made from
//! them, all sans-I/O so `posta mta explain` and the tests need no sockets.

pub mod policy;
pub mod tables;
