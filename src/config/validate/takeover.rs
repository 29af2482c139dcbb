//! `[takeover]`, `[vip]` and `[dns]`: how the primary's address moves, and where.

use std::path::PathBuf;

use toml::Spanned;

use super::Validator;
use super::values::{parse_domain, parse_prefixed, parse_socket_addr_53};
use crate::config::raw::RawSite;
use crate::config::{DnsRecord, ProbeSettings, Server, TakeoverMode, Vip, duration};
use crate::dns::in_zone;

impl Validator<'_> {
    /// `[vip]`: the address with its prefix, the interface and the optional label.
    pub(super) fn vip(&mut self, raw: &RawSite) -> Option<Vip> {
        raw.vip.as_ref().and_then(|t| {
            let span = t.span();
            let t = t.get_ref();
            let address = self.required(&t.address, "address", "vip", &span);
            let address = self.parsed(&t.address, "address", address, parse_prefixed);
            let interface = self.required(&t.interface, "interface", "vip", &span);
            self.vip_interface = t.interface.as_ref().map(|f| f.span.clone());
            let label = self.get(&t.label, "label");
            if let Some(label) = &label {
                // The kernel limits labels to IFNAMSIZ-1 and wants them to start with the
                // interface name (`eth0:posta`), as `ip addr add ... label` does.
                if label.len() > 15 || !interface.as_ref().is_none_or(|i| label.starts_with(i)) {
                    let span = t.label.as_ref().map_or(0..0, |f| f.span.clone());
                    self.problem(
                        span,
                        "`label`: must start with the interface name and be at most 15 characters (e.g. \"eth0:posta\")",
                    );
                }
            }
            let (address, prefix) = address?;
            Some(Vip {
                address,
                prefix,
                interface: interface?,
                label,
            })
        })
    }

    /// `[dns]`: the record, its zone and server, the TSIG key and an optional zone file.
    pub(super) fn dns(&mut self, raw: &RawSite) -> Option<DnsRecord> {
        raw.dns.as_ref().and_then(|t| {
            let span = t.span();
            let t = t.get_ref();
            let server = self.required(&t.server, "server", "dns", &span);
            let server = self.parsed(&t.server, "server", server, parse_socket_addr_53);
            let zone = self.required(&t.zone, "zone", "dns", &span);
            let zone = self.parsed(&t.zone, "zone", zone, parse_domain);
            let name = self.required(&t.name, "name", "dns", &span);
            let name = self.parsed(&t.name, "name", name, parse_domain);
            if let (Some(zone), Some(name)) = (&zone, &name)
                && !in_zone(name, zone)
            {
                let span = t.name.as_ref().map_or(0..0, |f| f.span.clone());
                self.problem(span, format!("`name`: {name} is not inside zone {zone}"));
            }
            let ttl = self.get(&t.ttl, "ttl").unwrap_or(300);
            let key = match &t.tsig_key_file {
                None => {
                    self.problem(span.clone(), "missing key `tsig_key_file` in [dns]");
                    None
                }
                Some(_) => self.secret_file(&t.tsig_key_file, "tsig_key_file"),
            };
            let zone_file = self.get(&t.zone_file, "zone_file").map(|p| self.path(&p));
            let reload_command = self.get(&t.reload_command, "reload_command").unwrap_or_default();
            if zone_file.is_some() && reload_command.is_empty() {
                let span = t.zone_file.as_ref().map_or(0..0, |f| f.span.clone());
                self.problem(
                    span,
                    "`zone_file` needs `reload_command` (e.g. [\"rndc\", \"reload\", \"example.org\"]) so the server loads the edit",
                );
            }
            Some(DnsRecord {
                server: server?,
                zone: zone?,
                name: name?,
                ttl,
                tsig_key_file: key?,
                zone_file,
                reload_command,
            })
        })
    }

    /// `[takeover] mode` (without it, DNS when only [dns] is present, else vip), and the
    /// table that mode needs.
    pub(super) fn takeover(
        &mut self,
        raw: &RawSite,
        vip: &Option<Vip>,
        primary: &Option<Server>,
    ) -> Option<TakeoverMode> {
        let takeover = match &raw.takeover {
            Some(t) => {
                let f = &t.get_ref().mode;
                let mode = self.get(f, "mode");
                self.parsed(f, "mode", mode, |m| match m.as_str() {
                    "vip" => Ok(TakeoverMode::Vip),
                    "dns" => Ok(TakeoverMode::Dns),
                    other => Err(format!(
                        "unknown takeover mode {other:?}: use \"vip\" or \"dns\""
                    )),
                })
            }
            None if raw.dns.is_some() && raw.vip.is_none() => Some(TakeoverMode::Dns),
            None => Some(TakeoverMode::Vip),
        };
        if let (Some(TakeoverMode::Vip), Some(vip), Some(p), Some(raw_primary)) =
            (takeover, &vip, &primary, &raw.primary)
            && p.probe_target() == vip.address
        {
            let t = raw_primary.get_ref();
            let field = t.probe_address.as_ref().or(t.address.as_ref());
            self.problem(
                field.map_or(raw_primary.span(), |f| f.span.clone()),
                format!(
                    "[primary] is probed at {}, the [vip] address: after a takeover mailserver2 \
                     holds it and would probe itself, see the primary answer and fail back while \
                     mailserver1 is down; set `probe_address` to mailserver1's own address",
                    vip.address
                ),
            );
        }
        let mode_span = raw.takeover.as_ref().map_or(0..0, Spanned::span);
        match takeover {
            Some(TakeoverMode::Vip) if raw.vip.is_none() => self.problem(
                mode_span,
                "takeover mode \"vip\" needs a [vip] table (address/prefix and interface)",
            ),
            Some(TakeoverMode::Dns) if raw.dns.is_none() => self.problem(
                mode_span,
                "takeover mode \"dns\" needs a [dns] table (server, zone, name, tsig_key_file)",
            ),
            _ => {}
        }
        takeover
    }

    /// `[takeover] state_file`.
    pub(super) fn takeover_state_file(&mut self, raw: &RawSite) -> Option<PathBuf> {
        raw.takeover.as_ref().and_then(|t| {
            let text = self.get(&t.get_ref().state_file, "state_file")?;
            Some(self.path(&text))
        })
    }

    /// Resolvers cache the record for its TTL, so a TTL longer than the grace makes the
    /// takeover's wait pointless: senders would keep mailserver1's address for longer than the
    /// outage posta waited out before moving them.
    pub(super) fn ttl_within_grace(
        &mut self,
        raw: &RawSite,
        dns: Option<&DnsRecord>,
        probe: Option<&ProbeSettings>,
    ) {
        let (Some(d), Some(p), Some(t)) = (dns, probe, &raw.dns) else {
            return;
        };
        let (ttl, grace, field) = (d.ttl, p.takeover_grace, &t.get_ref().ttl);
        if u64::from(ttl) <= grace.as_secs() {
            return;
        }
        let span = field.as_ref().map_or(0..0, |f| f.span.clone());
        self.problem(
            span,
            format!(
                "`ttl`: {ttl}s is longer than [probe] `takeover_grace` {}: resolvers would keep \
                 the old address longer than the grace; lower it to at most {}",
                duration::format(grace),
                grace.as_secs()
            ),
        );
    }
}
