//! What the watch says about who answers for the VIP each round, and when it yields it.
//!
//! Said once per change, not every round: a duplicate address, and nobody answering while
//! someone should, are errors an operator must see at once (for ~13 s both hosts once held
//! the address and nothing said so); the rest is information.
//!
//! RFC 5227 §2.4 gives a host that finds its address in use three choices: stop using it,
//! defend it once and stop if the conflict goes on, or keep defending when it must keep the
//! address. The site file names mailserver1 the address's rightful owner: it keeps it, and
//! mailserver2, which only borrows it while mailserver1 is away, stops using it.

use crate::takeover::vip::{Holders, Who};

/// How loudly to say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// What to say about one round's holder probe. `key` changes exactly when the message's
/// meaning does, so the caller logs it once per change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub key: String,
    pub level: Level,
    pub message: String,
}

/// Judges what the probe found. `should_be_held`: mailserver1 was just seen up, or this host
/// has taken the address over; `rightful`: this host is mailserver1.
pub fn judge(h: &Holders, should_be_held: bool, rightful: bool) -> Verdict {
    let (level, message) = match h.who {
        Who::Both => (
            Level::Error,
            format!(
                "{}; {}",
                h.describe(),
                match (h.this_host, rightful) {
                    (true, false) =>
                        "this host is not its rightful owner and gives it up \
                                      (RFC 5227 §2.4)",
                    (true, true) =>
                        "this host, mailserver1, is its rightful owner and keeps \
                                     it; the other must give it up (RFC 5227 §2.4)",
                    (false, _) => "mailserver1 is its rightful owner: remove it from the other",
                }
            ),
        ),
        Who::Nobody if should_be_held => (
            Level::Error,
            format!("{} although someone should hold it", h.describe()),
        ),
        Who::Nobody => (
            Level::Warn,
            format!(
                "{}, as expected while mailserver1 is down and not taken over",
                h.describe()
            ),
        ),
        Who::AnotherHost => (Level::Warn, h.describe()),
        Who::ThisHost | Who::Mailserver1 => (Level::Info, h.describe()),
    };
    let key = format!(
        "{}{}",
        h.who.name(),
        if h.who == Who::Nobody && should_be_held {
            " (should be held)"
        } else {
            ""
        }
    );
    Verdict {
        key,
        level,
        message,
    }
}

/// Whether this host must give the address up now: it holds it, another host answers for it
/// too, and this host is not mailserver1.
pub fn must_yield(h: &Holders, rightful: bool) -> bool {
    h.duplicate_here() && !rightful
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::takeover::vip::Mac;

    const HERE: Mac = Mac([2, 0, 0, 0, 0, 0x12]);
    const MS1: Mac = Mac([2, 0, 0, 0, 0, 0x11]);

    fn seen(here: bool, others: &[Mac]) -> Holders {
        Holders::new("10.0.0.100".parse().unwrap(), HERE, here, others, Some(MS1))
    }

    #[test]
    fn a_duplicate_is_an_error_and_the_backup_yields() {
        let both = seen(true, &[MS1]);
        let v = judge(&both, true, false);
        assert_eq!((v.level, v.key.as_str()), (Level::Error, "both"));
        assert!(v.message.contains("gives it up"), "{}", v.message);
        assert!(must_yield(&both, false));
        // mailserver1 keeps it.
        assert!(!must_yield(&both, true));
        assert!(judge(&both, true, true).message.contains("keeps it"));
        // Not holding it, nothing to give up.
        assert!(!must_yield(&seen(false, &[MS1]), false));
    }

    #[test]
    fn nobody_is_an_error_only_when_someone_should_hold_it() {
        let nobody = seen(false, &[]);
        let loud = judge(&nobody, true, false);
        let quiet = judge(&nobody, false, false);
        assert_eq!(loud.level, Level::Error);
        assert_eq!(quiet.level, Level::Warn);
        // A change of expectation is a change to report.
        assert_ne!(loud.key, quiet.key);
        let ms1 = judge(&seen(false, &[MS1]), true, false);
        assert_eq!((ms1.level, ms1.key.as_str()), (Level::Info, "mailserver1"));
    }
}
