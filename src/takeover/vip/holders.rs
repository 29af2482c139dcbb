//! Who answers for the virtual IP right now, seen from this host: the truth `posta status` and
//! the watch report, whatever the state file recorded.
//!
//! One request with the RFC 5227 probe's timing, listened to for its whole window, every
//! answering MAC counted (a first-answer probe would hide a duplicate), plus this host's own
//! netlink view: its own kernel never answers its own request. For IPv4 it is asked from this
//! host's own address, not 0.0.0.0, so that a takeover probing at the same moment on another
//! host does not see a rival probe (see [`super::answering`]). mailserver1 is recognised by
//! its MAC, learned with the same request sent to mailserver1's own address (the one that stays
//! with it when the VIP moves).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{Mac, ProbeSettings, Vip, VipError};

/// Who holds the address, in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Who {
    /// Nobody answers: clients reach no one.
    Nobody,
    /// Only this host holds it.
    ThisHost,
    /// Only mailserver1 (its MAC is the one its own address answers with).
    Mailserver1,
    /// Only one other host, not known to be mailserver1.
    AnotherHost,
    /// Two or more hosts answer: a duplicate address (RFC 5227 §2.4), clients split between
    /// them by whichever answer their cache took last.
    Both,
}

impl Who {
    /// Every value, in the order the metrics list them.
    pub const ALL: [Who; 5] = [
        Who::Nobody,
        Who::ThisHost,
        Who::Mailserver1,
        Who::AnotherHost,
        Who::Both,
    ];

    /// The name used in `--json`, the state file and the metrics' `who` label.
    pub fn name(self) -> &'static str {
        match self {
            Who::Nobody => "nobody",
            Who::ThisHost => "this_host",
            Who::Mailserver1 => "mailserver1",
            Who::AnotherHost => "another_host",
            Who::Both => "both",
        }
    }
}

/// What a holder probe found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holders {
    /// The virtual IP.
    pub address: IpAddr,
    pub who: Who,
    /// How many hosts answer for it, this one included when it holds it.
    pub count: usize,
    /// Whether this host has the address configured (and so answers for it).
    pub this_host: bool,
    /// This host's MAC on the VIP's interface.
    pub this_mac: String,
    /// The other hosts' MACs that answered, in the order heard.
    pub others: Vec<String>,
    /// mailserver1's MAC as its own address answered; `None` when it did not (or this is
    /// mailserver1, whose own probe it cannot hear).
    pub mailserver1_mac: Option<String>,
}

impl Holders {
    /// Classifies what was heard: none, one (this host, mailserver1 by its MAC, or another
    /// host) or two and more.
    pub fn new(
        address: IpAddr,
        this_mac: Mac,
        this_host: bool,
        others: &[Mac],
        mailserver1: Option<Mac>,
    ) -> Holders {
        let count = usize::from(this_host) + others.len();
        let who = match (count, this_host, others.first()) {
            (0, _, _) => Who::Nobody,
            (1, true, _) => Who::ThisHost,
            (1, false, Some(mac)) if Some(*mac) == mailserver1 => Who::Mailserver1,
            (1, _, _) => Who::AnotherHost,
            _ => Who::Both,
        };
        Holders {
            address,
            who,
            count,
            this_host,
            this_mac: this_mac.to_string(),
            others: others.iter().map(Mac::to_string).collect(),
            mailserver1_mac: mailserver1.map(|m| m.to_string()),
        }
    }

    /// mailserver1's MAC when it alone answers for the address: the one MAC that may be
    /// announced on its behalf ([`super::announce_for`]).
    pub fn mailserver1_alone(&self) -> Option<Mac> {
        match self.who {
            Who::Mailserver1 => self.others.first()?.parse().ok(),
            _ => None,
        }
    }

    /// Whether this host holds the address while another host answers for it too.
    pub fn duplicate_here(&self) -> bool {
        self.this_host && !self.others.is_empty()
    }

    /// One line for people: who answers, with MACs.
    pub fn describe(&self) -> String {
        let name = |mac: &String| {
            if self.mailserver1_mac.as_ref() == Some(mac) {
                format!("{mac} (mailserver1)")
            } else {
                format!("{mac} (another host)")
            }
        };
        let address = self.address;
        match self.who {
            Who::Nobody => format!("nobody answers for {address}: clients reach no one"),
            Who::ThisHost => format!("this host answers for {address} ({})", self.this_mac),
            Who::Mailserver1 => format!("mailserver1 answers for {address} ({})", self.others[0]),
            Who::AnotherHost => format!(
                "another host answers for {address}: {}, {}",
                self.others[0],
                match &self.mailserver1_mac {
                    Some(m) => format!("not mailserver1's MAC ({m})"),
                    None =>
                        "mailserver1's own address did not answer, so its MAC is unknown".into(),
                }
            ),
            Who::Both => {
                let mut all: Vec<String> = Vec::new();
                if self.this_host {
                    all.push(format!("{} (this host)", self.this_mac));
                }
                all.extend(self.others.iter().map(name));
                format!(
                    "BOTH: {} hosts answer for {address}, a duplicate address: {}",
                    self.count,
                    all.join(", ")
                )
            }
        }
    }
}

/// Probes who holds `vip` and, when `mailserver1` (its own address) is given, learns
/// mailserver1's MAC the same way, both at once. A failed look at mailserver1's address only
/// leaves its MAC unknown.
pub async fn holders(
    vip: &Vip,
    settings: &ProbeSettings,
    mailserver1: Option<IpAddr>,
) -> Result<Holders, VipError> {
    let this_mac = super::interface_mac(&vip.interface)?;
    let own = mailserver1
        .filter(|a| *a != vip.address && a.is_ipv4() == vip.address.is_ipv4())
        .map(|address| Vip {
            address,
            prefix: if address.is_ipv4() { 32 } else { 128 },
            interface: vip.interface.clone(),
            label: None,
        });
    let learn = async {
        match &own {
            Some(v) => super::answering(v, settings)
                .await
                .ok()
                .and_then(|macs| macs.first().copied()),
            None => None,
        }
    };
    let (here, others, ms1) =
        tokio::join!(super::present(vip), super::answering(vip, settings), learn);
    Ok(Holders::new(vip.address, this_mac, here?, &others?, ms1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HERE: Mac = Mac([2, 0, 0, 0, 0, 0x12]);
    const MS1: Mac = Mac([2, 0, 0, 0, 0, 0x11]);
    const ROGUE: Mac = Mac([2, 0, 0, 0, 0, 0x66]);

    fn who(here: bool, others: &[Mac], ms1: Option<Mac>) -> Holders {
        Holders::new("10.0.0.100".parse().unwrap(), HERE, here, others, ms1)
    }

    #[test]
    fn none_one_or_many() {
        assert_eq!(who(false, &[], Some(MS1)).who, Who::Nobody);
        assert_eq!(who(true, &[], Some(MS1)).who, Who::ThisHost);
        assert_eq!(who(false, &[MS1], Some(MS1)).who, Who::Mailserver1);
        assert_eq!(who(false, &[MS1], None).who, Who::AnotherHost);
        assert_eq!(who(false, &[ROGUE], Some(MS1)).who, Who::AnotherHost);
        let both = who(true, &[MS1], Some(MS1));
        assert_eq!((both.who, both.count), (Who::Both, 2));
        assert!(both.duplicate_here());
        let two_others = who(false, &[MS1, ROGUE], Some(MS1));
        assert_eq!((two_others.who, two_others.count), (Who::Both, 2));
        assert!(!two_others.duplicate_here());
    }

    #[test]
    fn descriptions_name_the_macs() {
        assert_eq!(
            who(true, &[MS1], Some(MS1)).describe(),
            "BOTH: 2 hosts answer for 10.0.0.100, a duplicate address: 02:00:00:00:00:12 \
             (this host), 02:00:00:00:00:11 (mailserver1)"
        );
        assert_eq!(
            who(false, &[], None).describe(),
            "nobody answers for 10.0.0.100: clients reach no one"
        );
        assert!(
            who(false, &[ROGUE], Some(MS1))
                .describe()
                .ends_with("not mailserver1's MAC (02:00:00:00:00:11)")
        );
        let json = serde_json::to_value(who(false, &[MS1], Some(MS1))).unwrap();
        assert_eq!(json["who"], "mailserver1");
        assert_eq!(who(false, &[MS1], Some(MS1)).mailserver1_alone(), Some(MS1));
        assert_eq!(who(false, &[ROGUE], Some(MS1)).mailserver1_alone(), None);
        assert_eq!(
            who(false, &[MS1, ROGUE], Some(MS1)).mailserver1_alone(),
            None
        );
        assert_eq!(json["count"], 1);
    }
}
