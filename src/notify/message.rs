//! A notice as an RFC 5322 message: the template filled in, headers with a Date and a
//! Message-ID, MIME UTF-8 text in quoted-printable (7-bit clean, whatever the server
//! announces), and the Subject as RFC 2047 encoded words when it is not ASCII.

use base64::Engine;
use time::OffsetDateTime;

use super::text::{View, event_text, since_text, what_you_can_see};
use crate::config::{Language, MessageTemplate, NotifyEvent, Piece, Placeholder};

/// What one notice is about.
#[derive(Debug, Clone, Copy)]
pub struct Notice {
    pub event: NotifyEvent,
    pub language: Language,
    pub view: View,
    /// When the takeover or failback happened.
    pub since: OffsetDateTime,
}

impl Notice {
    fn value(&self, p: Placeholder) -> String {
        match p {
            Placeholder::Event => event_text(self.language, self.event).to_string(),
            Placeholder::Since => since_text(self.since),
            Placeholder::WhatYouCanSee => what_you_can_see(self.language, self.event, self.view),
        }
    }

    /// The template filled in: Subject and body.
    pub fn render(&self, template: &MessageTemplate) -> (String, String) {
        let fill = |pieces: &[Piece]| {
            let mut out = String::new();
            for piece in pieces {
                match piece {
                    Piece::Text(t) => out.push_str(t),
                    Piece::Field(p) => out.push_str(&self.value(*p)),
                }
            }
            out
        };
        (fill(&template.subject), fill(&template.body))
    }
}

/// The whole message, CRLF line ends. `message_id` is written as given, with its brackets.
pub fn compose(
    from: &str,
    to: &str,
    subject: &str,
    body: &str,
    date: OffsetDateTime,
    message_id: &str,
) -> Vec<u8> {
    let date = date
        .to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_else(|_| "Thu, 01 Jan 1970 00:00:00 +0000".into());
    let mut out = String::new();
    for (name, value) in [
        ("Date", date),
        ("From", from.to_string()),
        ("To", to.to_string()),
        ("Subject", encode_subject(subject)),
        ("Message-ID", message_id.to_string()),
        // RFC 3834: automatic, so vacation responders and the like stay quiet.
        ("Auto-Submitted", "auto-generated".into()),
        ("MIME-Version", "1.0".into()),
        ("Content-Type", "text/plain; charset=utf-8".into()),
        ("Content-Transfer-Encoding", "quoted-printable".into()),
    ] {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&quoted_printable(body));
    out.into_bytes()
}

/// The same Message-ID for the same notice to the same user (event, time of the event,
/// recipient): should a crash between the server's acceptance and the record of it send a
/// notice twice, mail programs see one message.
pub fn message_id(event: NotifyEvent, since: OffsetDateTime, to: &str, from: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, to.to_ascii_lowercase().as_bytes());
    let hex: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let domain = from.rsplit_once('@').map_or("posta.invalid", |(_, d)| d);
    format!(
        "<posta.{}.{}.{hex}@{domain}>",
        event.name(),
        since.unix_timestamp()
    )
}

/// RFC 2047: ASCII stays as it is; otherwise `=?UTF-8?B?...?=` words of at most 75
/// characters, split between characters, folded onto continuation lines.
pub fn encode_subject(subject: &str) -> String {
    if subject.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return subject.to_string();
    }
    // 75 - len("=?UTF-8?B?") - len("?=") = 63 base64 characters: 45 bytes of text.
    const CHUNK: usize = 45;
    let mut words = Vec::new();
    let mut start = 0;
    while start < subject.len() {
        let mut end = (start + CHUNK).min(subject.len());
        while !subject.is_char_boundary(end) {
            end -= 1;
        }
        let b64 = base64::engine::general_purpose::STANDARD.encode(&subject[start..end]);
        words.push(format!("=?UTF-8?B?{b64}?="));
        start = end;
    }
    words.join("\r\n ")
}

/// RFC 2045 §6.7 quoted-printable of UTF-8 text: lines end in CRLF, at most 76 characters
/// each (soft breaks `=`), trailing blanks encoded.
pub fn quoted_printable(text: &str) -> String {
    let mut out = String::new();
    let text = text.replace("\r\n", "\n");
    for line in text.split('\n') {
        let mut width = 0;
        let bytes = line.as_bytes();
        for (i, &b) in bytes.iter().enumerate() {
            let last = i + 1 == bytes.len();
            let literal =
                (b == b' ' || b == b'\t') && !last || (33..=126).contains(&b) && b != b'=';
            let piece = if literal {
                (b as char).to_string()
            } else {
                format!("={b:02X}")
            };
            if width + piece.len() > 75 {
                out.push_str("=\r\n");
                width = 0;
            }
            width += piece.len();
            out.push_str(&piece);
        }
        out.push_str("\r\n");
    }
    // `split` yields an empty last line for text ending in a newline: one CRLF, not two.
    if text.ends_with('\n') {
        out.truncate(out.len() - 2);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_qp(text: &str) -> String {
        let joined = text.replace("=\r\n", "");
        let mut bytes = Vec::new();
        let mut it = joined.bytes();
        while let Some(b) = it.next() {
            if b == b'=' {
                let hi = it.next().unwrap();
                let lo = it.next().unwrap();
                let hex = [hi, lo];
                bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).unwrap(), 16).unwrap());
            } else {
                bytes.push(b);
            }
        }
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn quoted_printable_round_trips_and_keeps_lines_short() {
        let text = "Hola: está en el servidor = respaldo. \nUna línea muy larga ".repeat(8) + "\n";
        let qp = quoted_printable(&text);
        assert!(qp.is_ascii());
        assert!(qp.lines().all(|l| l.len() <= 76), "{qp}");
        assert!(!qp.lines().any(|l| l.ends_with(' ')), "{qp}");
        assert_eq!(decode_qp(&qp), text.replace('\n', "\r\n"));
    }

    #[test]
    fn a_non_ascii_subject_is_encoded_words_split_between_characters() {
        assert_eq!(encode_subject("Plain subject"), "Plain subject");
        let subject = "Aviso: durante la avería no verá sus carpetas ni su correo anterior";
        let encoded = encode_subject(subject);
        assert!(encoded.is_ascii());
        let mut back = Vec::new();
        for word in encoded.split("\r\n ") {
            assert!(word.len() <= 75, "{word}");
            let b64 = word
                .strip_prefix("=?UTF-8?B?")
                .and_then(|w| w.strip_suffix("?="))
                .unwrap();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap();
            // Each word is whole characters on its own (RFC 2047 §5).
            assert!(std::str::from_utf8(&bytes).is_ok());
            back.extend(bytes);
        }
        assert_eq!(String::from_utf8(back).unwrap(), subject);
    }

    #[test]
    fn a_notice_is_a_complete_mime_message_with_its_placeholders_filled() {
        let since = OffsetDateTime::from_unix_timestamp(1_796_276_682).unwrap();
        let notice = Notice {
            event: NotifyEvent::MirrorMissing,
            language: Language::Es,
            view: View::NoMirror,
            since,
        };
        let template = MessageTemplate::parse(super::super::text::shipped(
            Language::Es,
            NotifyEvent::MirrorMissing,
        ))
        .unwrap();
        let (subject, body) = notice.render(&template);
        assert!(body.contains("2026-12-03 05:44 UTC"), "{body}");
        assert!(
            body.contains("se quedaron en el servidor principal"),
            "{body}"
        );
        assert!(!body.contains('{'), "{body}");
        let id = message_id(notice.event, since, "Alice@x.org", "postmaster@x.org");
        assert_eq!(
            id,
            message_id(notice.event, since, "alice@x.org", "postmaster@x.org")
        );
        assert!(id.ends_with("@x.org>"), "{id}");
        let bytes = compose(
            "postmaster@x.org",
            "alice@x.org",
            &subject,
            &body,
            since,
            &id,
        );
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.is_ascii());
        let (head, encoded_body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("Date: Thu, 03 Dec 2026 05:44:42 +0000\r\n"),
            "{head}"
        );
        for header in [
            "From: postmaster@x.org",
            "To: alice@x.org",
            "Subject: =?UTF-8?B?",
            "Message-ID: <posta.mirror_missing.1796276682.",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: quoted-printable",
        ] {
            assert!(head.contains(header), "{header} missing: {head}");
        }
        assert_eq!(decode_qp(encoded_body), body.replace('\n', "\r\n"));
    }
}
