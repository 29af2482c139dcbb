//! The values a site file writes as text: domain names, prefixed and socket addresses, services.

use std::net::{IpAddr, SocketAddr};

use crate::config::Service;
use crate::service::{Scheme, StartTls};

/// Why a site-file value (a name, an address, a service) was refused; each message quotes
/// what was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("{0:?} is not a valid domain name")]
    Domain(String),
    #[error("{0:?} needs a prefix length, e.g. \"192.0.2.10/24\"")]
    NoPrefix(String),
    #[error("{0:?} is not an IP address")]
    Address(String),
    #[error("prefix length {prefix:?} must be 0..={max}")]
    Prefix { prefix: String, max: u8 },
    #[error("{0:?} is not an address like \"192.0.2.53\" or \"192.0.2.53:5353\"")]
    SocketAddr(String),
    #[error("unknown service {name:?} (known: {known})")]
    Service { name: String, known: String },
    #[error("{text:?}: port {port:?} is not a number from 1 to 65535")]
    Port { text: String, port: String },
    #[error("{text:?}: starttls must be auto, require or no, not {value:?}")]
    StartTls { text: String, value: String },
    #[error("{text:?}: unknown option {query:?} (only starttls=...)")]
    Option { text: String, query: String },
}

/// A DNS name: letters, digits, hyphens and dots; no empty labels. A trailing dot is dropped.
pub fn parse_domain(text: String) -> Result<String, ValueError> {
    let name = text.strip_suffix('.').unwrap_or(&text).to_ascii_lowercase();
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if ok {
        Ok(name)
    } else {
        Err(ValueError::Domain(text))
    }
}

/// `192.0.2.10/24` → address and prefix length.
pub(super) fn parse_prefixed(text: String) -> Result<(IpAddr, u8), ValueError> {
    let Some((addr, prefix)) = text.split_once('/') else {
        return Err(ValueError::NoPrefix(text));
    };
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| ValueError::Address(addr.to_string()))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    match prefix.parse::<u8>() {
        Ok(p) if p <= max => Ok((addr, p)),
        _ => Err(ValueError::Prefix {
            prefix: prefix.to_string(),
            max,
        }),
    }
}

/// `192.0.2.53`, `192.0.2.53:5353` or `[2001:db8::53]:53`; port 53 by default.
pub fn parse_socket_addr_53(text: String) -> Result<SocketAddr, ValueError> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    match text.parse::<IpAddr>() {
        Ok(ip) => Ok(SocketAddr::new(ip, 53)),
        Err(_) => Err(ValueError::SocketAddr(text)),
    }
}

/// A service entry: `smtp`, `imap:10143`, `pop3s:995`, optionally `?starttls=require|no|auto`.
pub fn parse_service(text: &str) -> Result<Service, ValueError> {
    let (head, query) = match text.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (text, None),
    };
    let (name, port) = match head.split_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (head, None),
    };
    let scheme = Scheme::from_name(name).ok_or_else(|| {
        let known: Vec<&str> = Scheme::ALL.iter().map(|s| s.name()).collect();
        ValueError::Service {
            name: name.to_string(),
            known: known.join(", "),
        }
    })?;
    let port = match port {
        None => scheme.default_port(),
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => {
                return Err(ValueError::Port {
                    text: text.to_string(),
                    port: p.to_string(),
                });
            }
        },
    };
    let mut starttls = StartTls::Auto;
    if let Some(query) = query {
        match query.split_once('=') {
            Some(("starttls", v)) => {
                starttls = StartTls::parse(v).ok_or_else(|| ValueError::StartTls {
                    text: text.to_string(),
                    value: v.to_string(),
                })?;
            }
            _ => {
                return Err(ValueError::Option {
                    text: text.to_string(),
                    query: query.to_string(),
                });
            }
        }
    }
    Ok(Service {
        scheme,
        port,
        starttls,
    })
}
