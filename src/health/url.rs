//! Ad hoc targets from URLs: `smtp://127.0.0.1:10025`, `imap://alice@host:10143?starttls=require`,
//! `pop3s://host`, `submission://[::1]:587?auth=login&tls_name=mail.example.org`.
//!
//! A password in a URL is refused: it would sit in shell history and in `ps` for every local
//! user to read. The probe account's password comes from `--password-file`.

use std::time::Duration;

use url::Url;

use super::target::{Account, AuthMechanism, Scheme, StartTls, Target, TlsPolicy};
use crate::secret::Secret;

/// What the command line adds to every URL target.
#[derive(Debug, Clone)]
pub struct UrlDefaults {
    pub tls: TlsPolicy,
    pub timeout: Duration,
    pub helo: String,
    /// From `--password-file`, for URLs that name a user.
    pub password: Option<Secret>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("{url}: not a URL ({reason})")]
    Syntax { url: String, reason: String },
    #[error("{url}: unknown scheme {scheme:?} (known: {known})")]
    Scheme {
        url: String,
        scheme: String,
        known: String,
    },
    #[error("{url}: no host")]
    NoHost { url: String },
    #[error(
        "{url}: a password in the URL would be visible to every local user; put it in a file and pass --password-file"
    )]
    Password { url: String },
    #[error("{url}: names probe user {user:?} but no --password-file was given")]
    NoPassword { url: String, user: String },
    #[error("{url}: {reason}")]
    Option { url: String, reason: String },
    #[error("{url}: a path is not meaningful for a {scheme} probe")]
    Path { url: String, scheme: String },
}

/// Parses one URL into a target.
pub fn parse(text: &str, defaults: &UrlDefaults) -> Result<Target, UrlError> {
    let err_url = || text.to_string();
    let url = Url::parse(text).map_err(|e| UrlError::Syntax {
        url: err_url(),
        reason: e.to_string(),
    })?;
    let scheme = Scheme::from_name(url.scheme()).ok_or_else(|| UrlError::Scheme {
        url: err_url(),
        scheme: url.scheme().to_string(),
        known: Scheme::ALL.map(Scheme::name).join(", "),
    })?;
    let host = match url.host() {
        Some(url::Host::Domain(d)) if !d.is_empty() => d.to_string(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        _ => return Err(UrlError::NoHost { url: err_url() }),
    };
    if url.password().is_some() {
        let mut redacted = url.clone();
        // Never echo the password back into a terminal or a log.
        let _ = redacted.set_password(Some("REDACTED"));
        return Err(UrlError::Password {
            url: redacted.to_string(),
        });
    }
    if !matches!(url.path(), "" | "/") {
        return Err(UrlError::Path {
            url: err_url(),
            scheme: scheme.name().into(),
        });
    }
    let mut starttls = StartTls::Auto;
    let mut mechanism = AuthMechanism::Auto;
    let mut tls = defaults.tls.clone();
    for (key, value) in url.query_pairs() {
        let bad = |reason: String| UrlError::Option {
            url: err_url(),
            reason,
        };
        match &*key {
            "starttls" => {
                if scheme.implicit_tls() {
                    return Err(bad(format!(
                        "starttls does not apply to {scheme}, which starts with TLS"
                    )));
                }
                starttls = StartTls::parse(&value).ok_or_else(|| {
                    bad(format!(
                        "starttls must be auto, require or no, not {value:?}"
                    ))
                })?;
            }
            "auth" => {
                mechanism = match &*value {
                    "plain" | "PLAIN" => AuthMechanism::Plain,
                    "login" | "LOGIN" => AuthMechanism::Login,
                    other => {
                        return Err(bad(format!("auth must be plain or login, not {other:?}")));
                    }
                }
            }
            "tls_name" => tls.server_name = Some(value.into_owned()),
            other => {
                return Err(bad(format!(
                    "unknown option {other:?} (known: starttls, auth, tls_name)"
                )));
            }
        }
    }
    let account = match url.username() {
        "" => None,
        user => {
            let user = percent_decode(user);
            let password = defaults
                .password
                .clone()
                .ok_or_else(|| UrlError::NoPassword {
                    url: err_url(),
                    user: user.clone(),
                })?;
            Some(Account {
                user,
                password,
                mechanism,
            })
        }
    };
    Ok(Target {
        label: text.to_string(),
        scheme,
        port: url.port().unwrap_or(scheme.default_port()),
        host,
        starttls,
        tls,
        account,
        timeout: defaults.timeout,
        helo: defaults.helo.clone(),
        foreign_names: Vec::new(),
    })
}

/// `alice%40example.org` → `alice@example.org` (user names that are addresses).
fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("u={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> UrlDefaults {
        UrlDefaults {
            tls: TlsPolicy::default(),
            timeout: Duration::from_secs(3),
            helo: "probe.test".into(),
            password: Some(Secret::new("pw")),
        }
    }

    #[test]
    fn parses_scheme_host_port_and_user() {
        let t = parse("imap://alice@127.0.0.1:10143?starttls=require", &defaults()).unwrap();
        assert_eq!(t.scheme, Scheme::Imap);
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 10143));
        assert_eq!(t.starttls, StartTls::Require);
        assert_eq!(t.account.unwrap().user, "alice");
    }

    #[test]
    fn default_ports_and_ipv6() {
        assert_eq!(
            parse("pop3s://mail.example.org", &defaults()).unwrap().port,
            995
        );
        assert_eq!(
            parse("submission://[::1]", &defaults()).unwrap().host,
            "::1"
        );
    }

    #[test]
    fn address_user_names_are_decoded() {
        let t = parse("smtp://probe%40example.org@h:25?auth=login", &defaults()).unwrap();
        let account = t.account.unwrap();
        assert_eq!(account.user, "probe@example.org");
        assert_eq!(account.mechanism, AuthMechanism::Login);
    }

    #[test]
    fn refuses_passwords_in_urls() {
        let e = parse("imap://alice:secret@h", &defaults()).unwrap_err();
        assert!(matches!(e, UrlError::Password { .. }));
        assert!(!e.to_string().contains("secret@"), "{e}");
    }

    #[test]
    fn user_without_password_file_is_an_error() {
        let mut d = defaults();
        d.password = None;
        let e = parse("pop3://bob@h", &d).unwrap_err();
        assert!(e.to_string().contains("--password-file"), "{e}");
    }

    #[test]
    fn rejects_bad_input_clearly() {
        let d = defaults();
        assert!(matches!(
            parse("gopher://h", &d),
            Err(UrlError::Scheme { .. })
        ));
        assert!(matches!(
            parse("not a url", &d),
            Err(UrlError::Syntax { .. })
        ));
        assert!(matches!(
            parse("smtp://h:99999", &d),
            Err(UrlError::Syntax { .. })
        ));
        assert!(matches!(
            parse("imaps://h?starttls=no", &d),
            Err(UrlError::Option { .. })
        ));
        assert!(matches!(
            parse("smtp://h?starttls=maybe", &d),
            Err(UrlError::Option { .. })
        ));
        assert!(matches!(
            parse("smtp://h?x=1", &d),
            Err(UrlError::Option { .. })
        ));
        assert!(matches!(
            parse("imap://h/INBOX", &d),
            Err(UrlError::Path { .. })
        ));
        assert!(matches!(parse("smtp://", &d), Err(UrlError::NoHost { .. })));
    }
}
