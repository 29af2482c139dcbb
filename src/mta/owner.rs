//! Who owns the mail on disk, and dropping root to that user once the ports are bound.
//!
//! Dovecot runs a user's mail processes as the uid its userdb gives (`vmail` on most virtual
//! setups) and creates `dovecot-uidlist`, its index and their dotlocks in the Maildir itself,
//! so every Maildir directory must be that user's and writable by it. Postfix's virtual(8)
//! writes as `virtual_uid_maps`, files 0600. `posta mta` faces the internet, so rather than
//! chown each file as root it binds its ports as root and then becomes the owner for good
//! (Postfix's `set_ugid`: setgid, setgroups to that one group, setuid): every session runs
//! unprivileged, and every file it creates is the owner's without a chown.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::unistd::{AccessFlags, Gid, Group, Uid, User};

/// The user (and group) the mta's Maildirs belong to and the mta runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub user: String,
    pub uid: Uid,
    pub gid: Gid,
}

/// Why the owner cannot be used; each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum OwnerError {
    #[error("--maildir-owner {spec:?}: expected USER or USER:GROUP")]
    Spec { spec: String },
    #[error("--maildir-owner {spec:?}: no user {user:?} on this system")]
    NoUser { spec: String, user: String },
    #[error("--maildir-owner {spec:?}: no group {group:?} on this system")]
    NoGroup { spec: String, group: String },
    #[error("--maildir-owner {spec:?}: cannot look it up: {source}")]
    Lookup { spec: String, source: nix::Error },
    #[error(
        "--maildir-owner {user:?}: the Maildirs would belong to root; give an unprivileged user"
    )]
    Root { user: String },
    #[error(
        "posta mta runs as uid {uid} gid {gid}, not as the Maildir owner {user} ({owner_uid}:\
         {owner_gid}): start it as root (it becomes the owner once its ports are bound) or as \
         that user"
    )]
    NotOwner {
        uid: Uid,
        gid: Gid,
        user: String,
        owner_uid: Uid,
        owner_gid: Gid,
    },
    #[error("cannot {what} {}: {source}", path.display())]
    Prepare {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("cannot become {user}: {call} failed: {source}")]
    Drop {
        user: String,
        call: &'static str,
        source: nix::Error,
    },
    #[error("{} is not writable by {user}: chown it (and what is under it) to {user}", path.display())]
    NotWritable { path: PathBuf, user: String },
}

impl Owner {
    /// `USER` (the user's primary group) or `USER:GROUP`, looked up in the system's user
    /// database; root is refused, since that is the ownership being fixed.
    pub fn resolve(spec: &str) -> Result<Owner, OwnerError> {
        let (user, group) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        if user.is_empty() || group.is_some_and(str::is_empty) {
            return Err(OwnerError::Spec { spec: spec.into() });
        }
        let lookup = |source| OwnerError::Lookup {
            spec: spec.into(),
            source,
        };
        let pw = User::from_name(user)
            .map_err(lookup)?
            .ok_or_else(|| OwnerError::NoUser {
                spec: spec.into(),
                user: user.into(),
            })?;
        let gid = match group {
            None => pw.gid,
            Some(g) => {
                Group::from_name(g)
                    .map_err(lookup)?
                    .ok_or_else(|| OwnerError::NoGroup {
                        spec: spec.into(),
                        group: g.into(),
                    })?
                    .gid
            }
        };
        if pw.uid.is_root() {
            return Err(OwnerError::Root { user: user.into() });
        }
        Ok(Owner {
            user: user.into(),
            uid: pw.uid,
            gid,
        })
    }

    /// Whether a process running as `uid`/`gid` must drop to the owner (it is root), may go
    /// on as it is (it is the owner), or cannot write as the owner at all.
    pub fn must_drop(&self, uid: Uid, gid: Gid) -> Result<bool, OwnerError> {
        if uid.is_root() {
            return Ok(true);
        }
        if (uid, gid) == (self.uid, self.gid) {
            return Ok(false);
        }
        Err(OwnerError::NotOwner {
            uid,
            gid,
            user: self.user.clone(),
            owner_uid: self.uid,
            owner_gid: self.gid,
        })
    }

    /// Makes `dir` (a Maildir root, a spill directory) exist as the owner's, 0700, when
    /// missing; one that exists is left as it is (it may be `/var/mail`), and
    /// [`Owner::check_writable`] says so after the drop if the owner cannot use it.
    pub fn claim_dir(&self, dir: &Path) -> Result<(), OwnerError> {
        if dir.is_dir() {
            return Ok(());
        }
        let fail = |what| {
            move |source| OwnerError::Prepare {
                what,
                path: dir.to_path_buf(),
                source,
            }
        };
        // Parents as anyone would make them (searchable), the directory itself private.
        if let Some(parent) = dir.parent() {
            fs::create_dir_all(parent).map_err(fail("create"))?;
        }
        match fs::DirBuilder::new().mode(0o700).create(dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(fail("create")(e)),
            _ => {}
        }
        self.chown(dir).map_err(fail("chown"))
    }

    /// Gives the owner everything under `dir`, `dir` included: the queue, which is posta's
    /// own and may hold files an earlier run made as root.
    pub fn claim_tree(&self, dir: &Path) -> Result<(), OwnerError> {
        let mut todo = vec![dir.to_path_buf()];
        while let Some(p) = todo.pop() {
            let fail = |what| {
                let path = p.clone();
                move |source| OwnerError::Prepare { what, path, source }
            };
            let meta = fs::symlink_metadata(&p).map_err(fail("read"))?;
            if meta.is_dir() {
                for entry in fs::read_dir(&p).map_err(fail("read"))? {
                    todo.push(entry.map_err(fail("read"))?.path());
                }
            }
            if (meta.uid(), meta.gid()) != (self.uid.as_raw(), self.gid.as_raw()) {
                self.chown(&p).map_err(fail("chown"))?;
            }
        }
        Ok(())
    }

    /// Gives the owner one file (the control socket, so it can remove it at exit).
    pub fn claim_file(&self, path: &Path) -> Result<(), OwnerError> {
        self.chown(path).map_err(|source| OwnerError::Prepare {
            what: "chown",
            path: path.to_path_buf(),
            source,
        })
    }

    fn chown(&self, path: &Path) -> io::Result<()> {
        std::os::unix::fs::lchown(path, Some(self.uid.as_raw()), Some(self.gid.as_raw()))
    }

    /// Becomes the owner for good: the group list is the owner's group alone (root's groups
    /// would stay otherwise), then the gid, then the uid, which also clears every capability.
    /// glibc applies each call to every thread of the process.
    pub fn become_owner(&self) -> Result<(), OwnerError> {
        let fail = |call| {
            move |source| OwnerError::Drop {
                user: self.user.clone(),
                call,
                source,
            }
        };
        nix::unistd::setgroups(&[self.gid]).map_err(fail("setgroups"))?;
        nix::unistd::setgid(self.gid).map_err(fail("setgid"))?;
        nix::unistd::setuid(self.uid).map_err(fail("setuid"))?;
        // A setuid that left root a way back would be no drop at all.
        if nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
            return Err(OwnerError::Drop {
                user: self.user.clone(),
                call: "setuid (root could be regained)",
                source: nix::Error::EPERM,
            });
        }
        Ok(())
    }

    /// After the drop: refuses to start when the owner cannot create Maildirs or files in
    /// `dir`, rather than answering 451 to every message.
    pub fn check_writable(&self, dir: &Path) -> Result<(), OwnerError> {
        nix::unistd::access(dir, AccessFlags::W_OK | AccessFlags::X_OK).map_err(|_| {
            OwnerError::NotWritable {
                path: dir.to_path_buf(),
                user: self.user.clone(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_resolve_or_say_why() {
        for bad in ["", ":", "root:", ":root"] {
            assert!(
                matches!(Owner::resolve(bad), Err(OwnerError::Spec { .. })),
                "{bad:?}"
            );
        }
        assert!(matches!(
            Owner::resolve("posta-no-such-user-x"),
            Err(OwnerError::NoUser { .. })
        ));
        assert!(matches!(
            Owner::resolve("root"),
            Err(OwnerError::Root { .. })
        ));
        let nobody = Owner::resolve("nobody").unwrap();
        assert!(!nobody.uid.is_root());
        assert!(matches!(
            Owner::resolve("nobody:posta-no-such-group-x"),
            Err(OwnerError::NoGroup { .. })
        ));
    }

    #[test]
    fn root_drops_the_owner_stays_anyone_else_is_refused() {
        let o = Owner {
            user: "vmail".into(),
            uid: Uid::from_raw(995),
            gid: Gid::from_raw(995),
        };
        assert!(o.must_drop(Uid::from_raw(0), Gid::from_raw(0)).unwrap());
        assert!(!o.must_drop(o.uid, o.gid).unwrap());
        let e = o
            .must_drop(Uid::from_raw(1000), Gid::from_raw(1000))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("posta mta runs as uid 1000 gid 1000"), "{e}");
        assert!(o.must_drop(o.uid, Gid::from_raw(1000)).is_err());
    }
}
