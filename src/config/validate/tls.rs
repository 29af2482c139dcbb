//! `[tls]`: the extra CA file and the certificate expiry thresholds.

use super::Validator;
use crate::config::TlsSettings;
use crate::config::raw::RawSite;

impl Validator<'_> {
    pub(super) fn tls(&mut self, raw: &RawSite) -> Option<TlsSettings> {
        let d = TlsSettings::default();
        let Some(t) = &raw.tls else {
            return Some(d);
        };
        let t = t.get_ref();
        let ca_file = self.get(&t.ca_file, "ca_file").map(|p| self.path(&p));
        if let (Some(path), Some(f)) = (&ca_file, &t.ca_file)
            && !path.is_file()
        {
            self.problem(
                f.span.clone(),
                format!("`ca_file`: {} is not a readable file", path.display()),
            );
        }
        Some(TlsSettings {
            ca_file,
            cert_warning_days: self
                .get(&t.cert_warning_days, "cert_warning_days")
                .unwrap_or(d.cert_warning_days),
            cert_critical_days: self
                .get(&t.cert_critical_days, "cert_critical_days")
                .unwrap_or(d.cert_critical_days),
        })
    }
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            ca_file: None,
            cert_warning_days: 14,
            cert_critical_days: 3,
        }
    }
}
