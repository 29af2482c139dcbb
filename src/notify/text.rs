//! What a notice says: the shipped templates (Spanish and English) and the words the
//! placeholders stand for, in each language.

use serde::Serialize;
use time::OffsetDateTime;

use crate::config::{Language, MessageTemplate, NotifyEvent, NotifySettings};

/// What users can see on the server that serves them after a takeover: nothing of their old
/// mail without a mirror (`[mirror]`), or a copy of their mailboxes as of the mirror's last
/// complete pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum View {
    /// Only the mail that arrives from now on; folders and older mail stayed on mailserver1.
    NoMirror,
    /// Every folder and the mail as of `as_of` (Unix seconds: the oldest account's last
    /// complete mirror pass), and the mail that arrives from now on.
    Mirror { as_of: u64 },
}

/// The notice a takeover sends each user: with a mirror `takeover`; without one
/// `mirror_missing` when they cannot see their folders and older mail and that notice is
/// enabled, else `takeover` when enabled, else none. One notice per user per takeover, never
/// both.
pub fn takeover_notice(settings: &NotifySettings, view: View) -> Option<NotifyEvent> {
    match view {
        View::NoMirror if settings.enabled(NotifyEvent::MirrorMissing) => {
            Some(NotifyEvent::MirrorMissing)
        }
        View::NoMirror | View::Mirror { .. } => settings
            .enabled(NotifyEvent::Takeover)
            .then_some(NotifyEvent::Takeover),
    }
}

/// The shipped template's text.
pub fn shipped(language: Language, event: NotifyEvent) -> &'static str {
    match (language, event) {
        (Language::Es, NotifyEvent::Takeover) => include_str!("templates/es/takeover.txt"),
        (Language::Es, NotifyEvent::Failback) => include_str!("templates/es/failback.txt"),
        (Language::Es, NotifyEvent::MirrorMissing) => {
            include_str!("templates/es/mirror_missing.txt")
        }
        (Language::En, NotifyEvent::Takeover) => include_str!("templates/en/takeover.txt"),
        (Language::En, NotifyEvent::Failback) => include_str!("templates/en/failback.txt"),
        (Language::En, NotifyEvent::MirrorMissing) => {
            include_str!("templates/en/mirror_missing.txt")
        }
    }
}

/// The operator's template for `event`, else the shipped one in the site's language.
pub fn template(settings: &NotifySettings, event: NotifyEvent) -> MessageTemplate {
    match settings.template(event) {
        Some(t) => t.clone(),
        // Every shipped template parses: `every_shipped_template_parses` checks them all.
        None => MessageTemplate::parse(shipped(settings.language, event))
            .expect("a shipped template parses"),
    }
}

/// `{event}`: what happened, as the rest of a sentence that starts "Since {since}, ".
pub fn event_text(language: Language, event: NotifyEvent) -> &'static str {
    match (language, event) {
        (Language::Es, NotifyEvent::Takeover | NotifyEvent::MirrorMissing) => {
            "el servidor de correo principal no responde y el servidor de respaldo atiende su \
             correo en su lugar"
        }
        (Language::Es, NotifyEvent::Failback) => {
            "el servidor de correo principal vuelve a atender su correo"
        }
        (Language::En, NotifyEvent::Takeover | NotifyEvent::MirrorMissing) => {
            "the main mail server is not answering and the backup server handles your mail in \
             its place"
        }
        (Language::En, NotifyEvent::Failback) => "the main mail server handles your mail again",
    }
}

/// `{what_you_can_see}`: what the user sees in their mail program now.
pub fn what_you_can_see(language: Language, event: NotifyEvent, view: View) -> String {
    let as_of = |t: u64| {
        let t = OffsetDateTime::from_unix_timestamp(i64::try_from(t).unwrap_or(i64::MAX))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        since_text(t)
    };
    match (language, event, view) {
        (Language::Es, NotifyEvent::Takeover | NotifyEvent::MirrorMissing, View::NoMirror) => {
            "Mientras dure la avería solo verá el correo que llegue desde ahora. Si usa IMAP y \
             creó carpetas en el servidor, esas carpetas y su correo anterior no se pueden ver: \
             se quedaron en el servidor principal, no se han perdido, y volverá a verlos cuando \
             vuelva."
                .into()
        }
        (
            Language::Es,
            NotifyEvent::Takeover | NotifyEvent::MirrorMissing,
            View::Mirror { as_of: t },
        ) => {
            format!(
                "Ve todas sus carpetas y su correo tal como estaban el {}, y el correo que \
                 llegue desde ahora. Todo lo que haga aquí (mensajes leídos o marcados, \
                 movidos o borrados, carpetas nuevas) y el correo nuevo volverán con usted al \
                 servidor principal.",
                as_of(t)
            )
        }
        (Language::Es, NotifyEvent::Failback, _) => {
            "Vuelve a ver todas sus carpetas y su correo anterior. El correo que recibió \
             durante la avería se traslada a su buzón de siempre; no tiene que hacer nada."
                .into()
        }
        (Language::En, NotifyEvent::Takeover | NotifyEvent::MirrorMissing, View::NoMirror) => {
            "While the outage lasts you will only see the mail that arrives from now on. If you \
             use IMAP and created folders on the server, those folders and your older mail \
             cannot be seen: they stayed on the main server, nothing is lost, and you will see \
             them again when it is back."
                .into()
        }
        (
            Language::En,
            NotifyEvent::Takeover | NotifyEvent::MirrorMissing,
            View::Mirror { as_of: t },
        ) => {
            format!(
                "You see all your folders and your mail as they were at {}, and the mail that \
                 arrives from now on. Everything you do here (messages read or flagged, moved \
                 or deleted, new folders) and the new mail go back with you to the main \
                 server.",
                as_of(t)
            )
        }
        (Language::En, NotifyEvent::Failback, _) => {
            "You see all your folders and older mail again. The mail you received during the \
             outage is being moved to your usual mailbox; you do not need to do anything."
                .into()
        }
    }
}

/// `{since}`: the time of the event, in UTC.
pub fn since_text(since: OffsetDateTime) -> String {
    let t = since.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Piece;

    #[test]
    fn every_shipped_template_parses_and_uses_every_placeholder() {
        for language in [Language::Es, Language::En] {
            for event in NotifyEvent::ALL {
                let t = MessageTemplate::parse(shipped(language, event))
                    .unwrap_or_else(|e| panic!("{language:?} {event:?}: {e}"));
                for p in crate::config::Placeholder::ALL {
                    assert!(
                        t.body.contains(&Piece::Field(p)),
                        "{language:?} {event:?} lacks {{{}}}",
                        p.name()
                    );
                }
            }
        }
    }

    #[test]
    fn a_takeover_without_a_mirror_sends_the_mirror_notice_unless_it_is_off() {
        let mut s = NotifySettings::default();
        assert_eq!(
            takeover_notice(&s, View::NoMirror),
            Some(NotifyEvent::MirrorMissing)
        );
        s.events = vec![NotifyEvent::Takeover, NotifyEvent::Failback];
        assert_eq!(
            takeover_notice(&s, View::NoMirror),
            Some(NotifyEvent::Takeover)
        );
        s.events = vec![NotifyEvent::Failback];
        assert_eq!(takeover_notice(&s, View::NoMirror), None);
    }

    #[test]
    fn a_takeover_with_a_mirror_says_as_of_when_and_never_that_folders_are_missing() {
        let s = NotifySettings::default();
        let view = View::Mirror {
            as_of: 1_796_276_682,
        };
        assert_eq!(takeover_notice(&s, view), Some(NotifyEvent::Takeover));
        for language in [Language::Es, Language::En] {
            let text = what_you_can_see(language, NotifyEvent::Takeover, view);
            assert!(text.contains("2026-12-03 05:44 UTC"), "{text}");
            let without = what_you_can_see(language, NotifyEvent::Takeover, View::NoMirror);
            assert_ne!(text, without);
        }
        let off = NotifySettings {
            events: vec![NotifyEvent::MirrorMissing, NotifyEvent::Failback],
            ..NotifySettings::default()
        };
        assert_eq!(takeover_notice(&off, view), None);
    }

    #[test]
    fn since_is_a_utc_minute() {
        let t = OffsetDateTime::from_unix_timestamp(1_796_276_682).unwrap();
        assert_eq!(since_text(t), "2026-12-03 05:44 UTC");
    }
}
