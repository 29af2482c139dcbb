//! The planned zone against the live one, as record sets per (name, type) (RFC 2181 §5: a
//! name's records of one type are one set and are compared as one).
//!
//! - `missing`: the plan has the set, the server has nothing of that name and type.
//! - `extra`: the server has a set the plan lacks.
//! - `changed`: both have it with different data. The SOA serial is not compared (it changes
//!   with every edit); its names and timers are.
//! - `ttl`: same data, different TTL. Counted as drift: the TTL is how long resolvers keep an
//!   old answer, which bounds how fast a failover takes effect.

use serde::Serialize;

use super::{Data, Rr};

/// What kind of difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftKind {
    Missing,
    Extra,
    Changed,
    Ttl,
}

/// One record set that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    pub kind: DriftKind,
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: String,
    /// The planned data (absolute names), empty when the plan has none.
    pub plan: Vec<String>,
    /// The live data, empty when the server has none.
    pub live: Vec<String>,
    pub plan_ttl: Option<u32>,
    pub live_ttl: Option<u32>,
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (name, t) = (&self.name, &self.rtype);
        let (plan, live) = (self.plan.join(", "), self.live.join(", "));
        let ttl = |t: Option<u32>| t.map_or_else(|| "-".to_string(), |t| t.to_string());
        match self.kind {
            DriftKind::Missing => write!(f, "missing: {name} {t} {plan}"),
            DriftKind::Extra => write!(f, "extra: {name} {t} {live}"),
            DriftKind::Changed => write!(f, "changed: {name} {t}: plan {plan}, live {live}"),
            DriftKind::Ttl => write!(
                f,
                "ttl: {name} {t}: plan {}, live {}",
                ttl(self.plan_ttl),
                ttl(self.live_ttl)
            ),
        }
    }
}

/// One (name, type) set: its records' data and TTLs.
struct Set<'a> {
    name: &'a str,
    rtype: &'a str,
    records: Vec<&'a Rr>,
}

impl Set<'_> {
    /// The data as compared: serial-free, sorted, without duplicates.
    fn comparable(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .records
            .iter()
            .map(|r| Data::comparable(&r.data).to_string())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    fn shown(&self) -> Vec<String> {
        let mut v: Vec<String> = self.records.iter().map(|r| r.data.to_string()).collect();
        v.sort();
        v.dedup();
        v
    }

    /// The set's TTL: the largest, when a server (wrongly, RFC 2181 §5.2) mixes them.
    fn ttl(&self) -> Option<u32> {
        self.records.iter().map(|r| r.ttl).max()
    }
}

/// Groups records into sets, in the order their first record appears.
fn sets(records: &[Rr]) -> Vec<Set<'_>> {
    let mut out: Vec<Set<'_>> = Vec::new();
    for r in records {
        match out
            .iter_mut()
            .find(|s| s.name == r.name && s.rtype == r.data.rtype())
        {
            Some(s) => s.records.push(r),
            None => out.push(Set {
                name: &r.name,
                rtype: r.data.rtype(),
                records: vec![r],
            }),
        }
    }
    out
}

/// Every difference between `plan` and `live`: planned sets in plan order, then the extra
/// ones sorted by name and type.
pub fn diff(plan: &[Rr], live: &[Rr]) -> Vec<Drift> {
    let (planned, found) = (sets(plan), sets(live));
    let mut out = Vec::new();
    for p in &planned {
        let l = found
            .iter()
            .find(|l| l.name == p.name && l.rtype == p.rtype);
        let drift = |kind, live: Option<&Set<'_>>| Drift {
            kind,
            name: p.name.to_string(),
            rtype: p.rtype.to_string(),
            plan: p.shown(),
            live: live.map(Set::shown).unwrap_or_default(),
            plan_ttl: p.ttl(),
            live_ttl: live.and_then(Set::ttl),
        };
        match l {
            None => out.push(drift(DriftKind::Missing, None)),
            Some(l) if l.comparable() != p.comparable() => {
                out.push(drift(DriftKind::Changed, Some(l)));
            }
            Some(l) if l.ttl() != p.ttl() => out.push(drift(DriftKind::Ttl, Some(l))),
            Some(_) => {}
        }
    }
    let mut extra: Vec<Drift> = found
        .iter()
        .filter(|l| {
            !planned
                .iter()
                .any(|p| p.name == l.name && p.rtype == l.rtype)
        })
        .map(|l| Drift {
            kind: DriftKind::Extra,
            name: l.name.to_string(),
            rtype: l.rtype.to_string(),
            plan: Vec::new(),
            live: l.shown(),
            plan_ttl: None,
            live_ttl: l.ttl(),
        })
        .collect();
    extra.sort_by(|a, b| (&a.name, &a.rtype).cmp(&(&b.name, &b.rtype)));
    out.extend(extra);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::Soa;

    fn rr(name: &str, ttl: u32, data: Data) -> Rr {
        Rr {
            name: name.to_string(),
            ttl,
            data,
        }
    }

    fn soa(serial: u32) -> Data {
        Data::Soa(Soa {
            mname: "switch.inkacoca.org.".into(),
            rname: "hostmaster.inkacoca.org.".into(),
            serial,
            refresh: 3600,
            retry: 900,
            expire: 1_209_600,
            minimum: 300,
        })
    }

    fn zone() -> Vec<Rr> {
        vec![
            rr("inkacoca.org.", 3600, soa(1)),
            rr(
                "inkacoca.org.",
                3600,
                Data::Mx(10, "switch.inkacoca.org.".into()),
            ),
            rr(
                "inkacoca.org.",
                3600,
                Data::Mx(20, "mailserver2.inkacoca.org.".into()),
            ),
            rr(
                "lima-mail.inkacoca.org.",
                3600,
                Data::A("18.1.3.40".parse().unwrap()),
            ),
        ]
    }

    #[test]
    fn the_same_zone_with_another_serial_and_order_is_clean() {
        let mut live = zone();
        live.reverse();
        live[3] = rr("inkacoca.org.", 3600, soa(2026112802));
        assert_eq!(diff(&zone(), &live), []);
    }

    #[test]
    fn every_kind_of_drift_is_one_line() {
        let mut live = zone();
        live[3].data = Data::A("18.1.3.99".parse().unwrap());
        live.remove(2);
        live[0].ttl = 60;
        live.push(rr(
            "www.inkacoca.org.",
            60,
            Data::Other("TXT".into(), "\"hi\"".into()),
        ));
        let lines: Vec<String> = diff(&zone(), &live)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            lines,
            [
                "ttl: inkacoca.org. SOA: plan 3600, live 60",
                "changed: inkacoca.org. MX: plan 10 switch.inkacoca.org., 20 \
                 mailserver2.inkacoca.org., live 10 switch.inkacoca.org.",
                "changed: lima-mail.inkacoca.org. A: plan 18.1.3.40, live 18.1.3.99",
                "extra: www.inkacoca.org. TXT \"hi\"",
            ]
        );
        let missing = diff(&zone(), &zone()[..3]);
        assert_eq!(
            missing[0].to_string(),
            "missing: lima-mail.inkacoca.org. A 18.1.3.40"
        );
        let json = serde_json::to_value(&missing[0]).unwrap();
        assert_eq!(json["kind"], "missing");
        assert_eq!(json["type"], "A");
    }

    #[test]
    fn a_changed_soa_timer_is_drift() {
        let mut live = zone();
        if let Data::Soa(s) = &mut live[0].data {
            s.minimum = 86400;
        }
        let d = diff(&zone(), &live);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].kind, DriftKind::Changed);
    }
}
