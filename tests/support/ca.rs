//! A private test CA made with the `openssl` CLI, once per test process.
//!
//! Why a CA and a separate leaf: rustls (webpki) rejects an end-entity certificate that says
//! CA:TRUE, which is what a bare `openssl req -x509` makes. The leaf is CA:FALSE, serverAuth,
//! for `localhost` and `127.0.0.1`. [`Ca::other`] is an unrelated CA with the same kind of leaf,
//! for "untrusted certificate" tests. Files live under cargo's per-target temp dir for the
//! whole process (statics are never dropped), so tests share them instead of each paying
//! for key generation; dirs older than a day are pruned.

use super::sys::{require_tool, run};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::LazyLock;

pub struct Ca {
    dir: PathBuf,
}

static TRUSTED: LazyLock<Ca> = LazyLock::new(|| Ca::generate("posta test CA"));
static OTHER: LazyLock<Ca> = LazyLock::new(|| Ca::generate("posta untrusted CA"));

impl Ca {
    /// The CA the tests trust; servers started with it present its leaf.
    pub fn get() -> &'static Ca {
        &TRUSTED
    }

    /// An independent CA: its leaf does not chain to [`Ca::get`]'s certificate.
    pub fn other() -> &'static Ca {
        &OTHER
    }

    /// The CA certificate, for clients' trust stores.
    pub fn ca_pem(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The server (leaf) certificate for `localhost` / `127.0.0.1`.
    pub fn cert_pem(&self) -> PathBuf {
        self.dir.join("leaf.pem")
    }

    /// The leaf's private key (unencrypted PEM, mode 0600).
    pub fn key_pem(&self) -> PathBuf {
        self.dir.join("leaf.key")
    }

    /// Issues a leaf (CA:FALSE, serverAuth) for the host name `dns` with this serial, written
    /// to `out/<stem>.pem` and `out/<stem>.key` (0600), replacing what was there.
    pub fn issue(&self, out: &Path, stem: &str, dns: &str, serial: u32) -> (PathBuf, PathBuf) {
        let openssl = require_tool("openssl");
        let (cert, key) = (
            out.join(format!("{stem}.pem")),
            out.join(format!("{stem}.key")),
        );
        let (csr, ext) = (
            out.join(format!("{stem}.csr")),
            out.join(format!("{stem}.ext")),
        );
        let subj = format!("/CN={dns}");
        run(Command::new(&openssl)
            .args(["req", "-new", "-subj", &subj, "-newkey", "ec"])
            .args([
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&csr));
        fs::write(
            &ext,
            format!(
                "basicConstraints=critical,CA:FALSE\n\
                 keyUsage=critical,digitalSignature,keyEncipherment\n\
                 extendedKeyUsage=serverAuth\n\
                 subjectAltName=DNS:{dns}\n"
            ),
        )
        .expect("failed to write the leaf's extensions");
        run(Command::new(&openssl)
            .args([
                "x509",
                "-req",
                "-days",
                "825",
                "-set_serial",
                &serial.to_string(),
            ])
            .arg("-in")
            .arg(&csr)
            .arg("-CA")
            .arg(self.ca_pem())
            .arg("-CAkey")
            .arg(self.dir.join("ca.key"))
            .arg("-extfile")
            .arg(&ext)
            .arg("-out")
            .arg(&cert));
        set_mode(&key, 0o600);
        (cert, key)
    }

    fn generate(cn: &str) -> Ca {
        let openssl = require_tool("openssl");
        prune_stale();
        let dir = tempfile::Builder::new()
            .prefix("posta-ca-")
            .tempdir_in(ca_parent())
            .expect("failed to create CA dir")
            .keep();
        let ssl = |args: &[&str]| {
            run(Command::new(&openssl).current_dir(&dir).args(args));
        };
        // P-256 keys: generated in milliseconds, accepted by rustls, Postfix and Dovecot.
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let subj = format!("/CN={cn}");
        ssl(&[
            &["req", "-x509", "-days", "3650", "-subj", &subj][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ]
        .concat());
        ssl(&[
            &["req", "-new", "-subj", "/CN=localhost"][..],
            &ec,
            &["-keyout", "leaf.key", "-out", "leaf.csr"],
        ]
        .concat());
        fs::write(
            dir.join("leaf.ext"),
            "basicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\n\
             subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .expect("failed to write leaf.ext");
        ssl(&[
            "x509",
            "-req",
            "-days",
            "825",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-extfile",
            "leaf.ext",
            "-out",
            "leaf.pem",
        ]);
        set_mode(&dir.join("leaf.key"), 0o600);
        set_mode(&dir.join("ca.key"), 0o600);
        Ca { dir }
    }
}

/// Cargo's per-build temp dir for integration tests; the system's for the demo example, which
/// reuses this support code outside `cargo test`.
fn ca_parent() -> PathBuf {
    option_env!("CARGO_TARGET_TMPDIR").map_or_else(std::env::temp_dir, PathBuf::from)
}

/// Removes CA dirs left by test processes that finished more than a day ago: a process keeps
/// its CA until exit, so nothing else would ever delete them.
fn prune_stale() {
    let day = std::time::Duration::from_secs(24 * 3600);
    let Ok(entries) = fs::read_dir(ca_parent()) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().unwrap_or_default() > day);
        if stale && entry.file_name().to_string_lossy().starts_with("posta-ca-") {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("failed to chmod {}: {e}", path.display()));
}
