//! The POP3 users file: Dovecot passwd-file compatible, so one file can serve both Dovecot and
//! posta. A line is `user:{SCHEME}hash`, optionally followed by more `:`-separated fields
//! (uid, gid, home, ... in Dovecot's format), which posta ignores; `#` starts a comment line.
//!
//! Schemes: `{SHA512-CRYPT}` and `{SHA256-CRYPT}` (`$6$`/`$5$`), what `doveadm pw -s
//! SHA512-CRYPT` and `mkpasswd -m sha-512` make. `{PLAIN}` and anything else is refused with
//! its location: a backup server should not hold the users' passwords in clear.
//!
//! User names are lowercased (Maildirs are `DIR/<lowercased local part>`) and must be names
//! delivery accepts for a Maildir (`mta::maildir::user_dir`).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use sha_crypt::{PasswordHasher, PasswordVerifier, ShaCrypt};

use crate::secret::{self, Secret, SecretError};

/// What is wrong with a users file; parse errors name `file:line:column`.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error(transparent)]
    File(#[from] SecretError),
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

/// A stored password hash, in crypt(3) form (`$6$...`).
#[derive(Clone, PartialEq, Eq)]
struct Hash(String);

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hash(<redacted>)")
    }
}

/// The users allowed to log in to the POP3 server, with their password hashes.
#[derive(Debug, Clone, Default)]
pub struct Users {
    hashes: HashMap<String, Hash>,
}

/// Spent on a login for an unknown user, so that answers take as long as for a known one
/// (`openssl passwd -6 x`; any valid SHA512-CRYPT hash does).
const DUMMY_HASH: &str = "$6$cG9zdGFkdW1teXNh$AsDvB8SMpZXkjV0OXdTJLZ3LzH9nXmpIyMQSrFZMtYiwtEbQPqRR8BQ8IWNST9hqQnO7h2UpWoNtBzEUU6phd0";

impl Users {
    /// Reads and checks the users file; refuses one that group or others can read.
    pub fn load(path: &Path) -> Result<Users, UsersError> {
        let text = secret::read_text(path)?;
        Users::parse(path, &text)
    }

    /// Parses users file text; `path` only names the file in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Users, UsersError> {
        let mut hashes = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let err = |column: usize, message: String| UsersError::Parse {
                path: path.to_owned(),
                line: i + 1,
                column,
                message,
            };
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let Some((user, rest)) = line.split_once(':') else {
                return Err(err(1, "expected user:{SCHEME}hash".into()));
            };
            let user = user.to_ascii_lowercase();
            // The name is the Maildir's: refuse what delivery would refuse.
            if crate::mta::maildir::user_dir(Path::new("/"), &user).is_none() {
                return Err(err(
                    1,
                    "user name must be 1 to 64 characters from a-z 0-9 . _ - + = and not start \
                     with a dot (it names the Maildir)"
                        .into(),
                ));
            }
            let column = user.len() + 2;
            let field = rest.split(':').next().unwrap_or_default();
            let hash = parse_hash(field).map_err(|m| err(column, m.to_string()))?;
            if hashes.insert(user.clone(), hash).is_some() {
                return Err(err(1, format!("user {user} is listed twice")));
            }
        }
        Ok(Users { hashes })
    }

    /// Whether `user` exists and `password` is theirs. Costs one hash computation whether or
    /// not the user exists (a few milliseconds; run it off the async threads). The comparison
    /// is constant-time (sha-crypt's `ct_eq`).
    pub fn verify(&self, user: &str, password: &Secret) -> bool {
        let user = user.to_ascii_lowercase();
        let (hash, known) = match self.hashes.get(&user) {
            Some(Hash(h)) => (h.as_str(), true),
            None => (DUMMY_HASH, false),
        };
        let ok = ShaCrypt::default()
            .verify_password(password.expose().as_bytes(), hash)
            .is_ok();
        ok && known
    }

    /// The canonical (lowercased) name of a listed user, which names its Maildir.
    pub fn canonical(&self, user: &str) -> Option<String> {
        let user = user.to_ascii_lowercase();
        self.hashes.contains_key(&user).then_some(user)
    }

    /// Every listed user (lowercased), in no particular order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.hashes.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

/// Why a users file's password field was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum HashError {
    #[error("password must start with {{SCHEME}}, e.g. {{SHA512-CRYPT}}$6$...")]
    NoScheme,
    #[error(
        "scheme {{{0}}} stores the password in clear; use {{SHA512-CRYPT}} (doveadm pw -s \
         SHA512-CRYPT)"
    )]
    Clear(String),
    #[error("unsupported password scheme {{{0}}}; use {{SHA512-CRYPT}} or {{SHA256-CRYPT}}")]
    Unsupported(String),
    #[error("{{{scheme}}} hash must start with {prefix}")]
    Prefix {
        scheme: String,
        prefix: &'static str,
    },
    #[error("{{{0}}} hash is malformed")]
    Malformed(String),
}

fn parse_hash(field: &str) -> Result<Hash, HashError> {
    let Some((scheme, hash)) = field.strip_prefix('{').and_then(|f| f.split_once('}')) else {
        return Err(HashError::NoScheme);
    };
    let prefix = match scheme.to_ascii_uppercase().as_str() {
        "SHA512-CRYPT" => "$6$",
        "SHA256-CRYPT" => "$5$",
        "PLAIN" | "CLEAR" | "CLEARTEXT" | "PLAIN-TRUNC" => {
            return Err(HashError::Clear(scheme.to_string()));
        }
        other => return Err(HashError::Unsupported(other.to_string())),
    };
    if !hash.starts_with(prefix) {
        return Err(HashError::Prefix {
            scheme: scheme.to_string(),
            prefix,
        });
    }
    // A hash that can never verify would lock its user out silently: check its shape now.
    let malformed = || HashError::Malformed(scheme.to_string());
    sha_crypt::PasswordHashRef::new(hash).map_err(|_| malformed())?;
    if hash.split('$').count() < 4 {
        return Err(malformed());
    }
    Ok(Hash(hash.to_owned()))
}

/// A new `{SHA512-CRYPT}` entry for `password`, with a random salt, as `doveadm pw -s
/// SHA512-CRYPT` would write it.
pub fn hash_password(password: &str) -> String {
    use ring::rand::{SecureRandom, SystemRandom};
    // 12 bytes make 16 salt characters, the most crypt(3) uses: a longer salt would be cut by
    // glibc (and Dovecot) but not by the string we write, and their hash would not match.
    let mut salt = [0u8; 12];
    SystemRandom::new()
        .fill(&mut salt)
        .expect("the system random source failed");
    let hash = ShaCrypt::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .expect("SHA512-CRYPT of a 12-byte salt cannot fail");
    format!("{{SHA512-CRYPT}}{}", hash.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Users, UsersError> {
        Users::parse(Path::new("users"), text)
    }

    #[test]
    fn hash_then_verify() {
        let entry = hash_password("s3cret pw");
        assert!(entry.starts_with("{SHA512-CRYPT}$6$"), "{entry}");
        let users = parse(&format!(
            "# comment\n\nAlice:{entry}:1000:1000::/home/alice\n"
        ))
        .unwrap();
        assert!(users.verify("alice", &Secret::new("s3cret pw")));
        assert!(users.verify("ALICE", &Secret::new("s3cret pw")));
        assert!(!users.verify("alice", &Secret::new("s3cret")));
        assert!(!users.verify("bob", &Secret::new("s3cret pw")));
        assert_eq!(users.canonical("ALICE").as_deref(), Some("alice"));
        assert_eq!(users.len(), 1);
    }

    #[test]
    fn dummy_hash_is_valid() {
        assert!(parse(&format!("x:{{SHA512-CRYPT}}{DUMMY_HASH}")).is_ok());
        // Unknown users fail even with the dummy's password.
        assert!(!Users::default().verify("nobody", &Secret::new("x")));
    }

    #[test]
    fn known_crypt_vectors() {
        // From the SHA-crypt specification (Drepper), also what glibc's crypt(3) gives.
        let users = parse(
            "a:{SHA512-CRYPT}$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1\n\
             b:{SHA256-CRYPT}$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5\n",
        )
        .unwrap();
        assert!(users.verify("a", &Secret::new("Hello world!")));
        assert!(users.verify("b", &Secret::new("Hello world!")));
        assert!(!users.verify("b", &Secret::new("Hello world")));
    }

    #[test]
    fn refuses_bad_lines_with_location() {
        let cases = [
            ("alice:{PLAIN}pw\n", "users:1:7:", "in clear"),
            ("# x\nbob:{MD5}$1$x$y\n", "users:2:5:", "unsupported"),
            ("carol:$6$x$y\n", "users:1:7:", "{SCHEME}"),
            ("dave\n", "users:1:1:", "expected"),
            (
                "../x:{SHA512-CRYPT}$6$a$b\n",
                "users:1:1:",
                "names the Maildir",
            ),
            (
                "e/f:{SHA512-CRYPT}$6$a$b\n",
                "users:1:1:",
                "names the Maildir",
            ),
            (
                "g:{SHA512-CRYPT}$5$a$b\n",
                "users:1:3:",
                "must start with $6$",
            ),
            ("h:{SHA512-CRYPT}$6$\n", "users:1:3:", "malformed"),
        ];
        for (text, at, what) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.starts_with(at) && err.contains(what), "{text:?}: {err}");
        }
        let entry = hash_password("x");
        let twice = parse(&format!("a:{entry}\nA:{entry}\n")).unwrap_err();
        assert!(twice.to_string().contains("listed twice"), "{twice}");
    }

    #[test]
    fn refuses_readable_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        std::fs::write(&path, format!("a:{}\n", hash_password("x"))).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = Users::load(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Users::load(&path).unwrap().verify("a", &Secret::new("x")));
    }
}
