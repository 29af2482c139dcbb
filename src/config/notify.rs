//! `[notify]`, typed: which events tell users, who is told, from which address, in which
//! language, with which templates, and how often at most. Also the template language the
//! shipped and the operator's templates share, parsed here so that an unknown placeholder in an
//! operator's file is a site-file problem with its position, not a blank in a user's mailbox.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

/// Each event sends a user at most one notice in this window unless the site file says
/// otherwise: an outage that flaps (takeover, failback, takeover) must not fill mailboxes.
pub const DEFAULT_RATE_LIMIT: Duration = Duration::from_secs(6 * 3600);

/// What users are told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    /// mailserver2 took mailserver1's place.
    Takeover,
    /// mailserver1 serves again.
    Failback,
    /// A takeover left users on a mailserver2 that holds no copy of their mailboxes: their
    /// folders and old mail stayed on mailserver1 (the seed's "inform your users").
    MirrorMissing,
}

impl NotifyEvent {
    pub const ALL: [NotifyEvent; 3] = [
        NotifyEvent::Takeover,
        NotifyEvent::Failback,
        NotifyEvent::MirrorMissing,
    ];

    /// The site file's spelling.
    pub fn name(self) -> &'static str {
        match self {
            NotifyEvent::Takeover => "takeover",
            NotifyEvent::Failback => "failback",
            NotifyEvent::MirrorMissing => "mirror_missing",
        }
    }

    pub fn parse(text: &str) -> Option<NotifyEvent> {
        NotifyEvent::ALL.into_iter().find(|e| e.name() == text)
    }
}

/// The language of the shipped templates and of the placeholders' text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// Spanish, the seed's language.
    #[default]
    Es,
    En,
}

impl Language {
    pub fn name(self) -> &'static str {
        match self {
            Language::Es => "es",
            Language::En => "en",
        }
    }

    pub fn parse(text: &str) -> Option<Language> {
        match text {
            "es" => Some(Language::Es),
            "en" => Some(Language::En),
            _ => None,
        }
    }
}

/// Who is told.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyRecipients {
    /// Every account `posta migrate` brings home: the `deliver_to` of each
    /// `[[migrate.accounts]]`, or with `accounts = "all"` each account found on mailserver2.
    #[default]
    Accounts,
    /// These addresses.
    List(Vec<String>),
}

/// An operator's template file for one event, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateFile {
    pub event: NotifyEvent,
    pub path: PathBuf,
    #[serde(skip)]
    pub template: MessageTemplate,
}

/// `[notify]`, typed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotifySettings {
    /// The events that send a notice.
    pub events: Vec<NotifyEvent>,
    pub recipients: NotifyRecipients,
    /// The notices' From address [default: postmaster@ the site's domain].
    pub from: Option<String>,
    pub language: Language,
    /// Templates in place of the shipped ones, per event.
    pub templates: Vec<TemplateFile>,
    /// At most one notice per event and user in this window.
    #[serde(serialize_with = "super::serialize_duration")]
    pub rate_limit: Duration,
}

impl Default for NotifySettings {
    fn default() -> NotifySettings {
        NotifySettings {
            events: NotifyEvent::ALL.to_vec(),
            recipients: NotifyRecipients::Accounts,
            from: None,
            language: Language::Es,
            templates: Vec::new(),
            rate_limit: DEFAULT_RATE_LIMIT,
        }
    }
}

impl NotifySettings {
    pub fn enabled(&self, event: NotifyEvent) -> bool {
        self.events.contains(&event)
    }

    /// The operator's template for `event`, if the site file names one.
    pub fn template(&self, event: NotifyEvent) -> Option<&MessageTemplate> {
        self.templates
            .iter()
            .find(|t| t.event == event)
            .map(|t| &t.template)
    }
}

/// What a template may say: `{event}`, `{since}`, `{what_you_can_see}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// What happened, in the notice's language.
    Event,
    /// When it happened.
    Since,
    /// What the user can and cannot see on the server that serves them now.
    WhatYouCanSee,
}

impl Placeholder {
    pub const ALL: [Placeholder; 3] = [
        Placeholder::Event,
        Placeholder::Since,
        Placeholder::WhatYouCanSee,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Placeholder::Event => "event",
            Placeholder::Since => "since",
            Placeholder::WhatYouCanSee => "what_you_can_see",
        }
    }
}

/// A piece of a template line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Field(Placeholder),
}

/// A notice's template: a `Subject:` line, an empty line, the body. `{name}` is a placeholder;
/// `{{` and `}}` are literal braces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageTemplate {
    pub subject: Vec<Piece>,
    pub body: Vec<Piece>,
}

/// Where a template is wrong: 1-based line and character column in the template's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct TemplateProblem {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl MessageTemplate {
    pub fn parse(text: &str) -> Result<MessageTemplate, TemplateProblem> {
        let problem = |line: usize, column: usize, message: &str| TemplateProblem {
            line,
            column,
            message: message.to_string(),
        };
        let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
        let first = first.strip_suffix('\r').unwrap_or(first);
        let Some(subject) = first.strip_prefix("Subject:") else {
            return Err(problem(
                1,
                1,
                "a template starts with a `Subject:` line, then an empty line, then the body",
            ));
        };
        let (blank, body) = rest.split_once('\n').unwrap_or((rest, ""));
        if !blank.trim().is_empty() {
            return Err(problem(
                2,
                1,
                "the line after `Subject:` must be empty (the body starts after it)",
            ));
        }
        let offset = first.len() - subject.len();
        let subject_text = subject.trim_start();
        let skipped = subject.len() - subject_text.len();
        Ok(MessageTemplate {
            subject: pieces(subject_text.trim_end(), 1, offset + skipped)?,
            body: pieces(body, 3, 0)?,
        })
    }
}

/// Splits `text` (starting at `line`, byte `column_offset` into its first line) into text and
/// placeholders.
fn pieces(text: &str, line: usize, column_offset: usize) -> Result<Vec<Piece>, TemplateProblem> {
    let mut out = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    let position = |at: &str| {
        let done = &text[..text.len() - at.len()];
        let lines = done.matches('\n').count();
        let start = done.rfind('\n').map_or(0, |i| i + 1);
        let column = done[start..].chars().count() + 1;
        let column = if lines == 0 {
            column + column_offset
        } else {
            column
        };
        (line + lines, column)
    };
    while let Some(i) = rest.find(['{', '}']) {
        literal.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("{{") {
            literal.push('{');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("}}") {
            literal.push('}');
            rest = after;
        } else if let Some(after) = tail.strip_prefix('}') {
            literal.push('}');
            rest = after;
        } else {
            let (l, c) = position(tail);
            let known = || {
                let names: Vec<String> = Placeholder::ALL
                    .iter()
                    .map(|p| format!("{{{}}}", p.name()))
                    .collect();
                names.join(", ")
            };
            let Some(end) = tail.find('}').filter(|&e| !tail[..e].contains('\n')) else {
                return Err(TemplateProblem {
                    line: l,
                    column: c,
                    message: format!(
                        "unclosed `{{` (a placeholder is one of {}; write {{{{ for a brace)",
                        known()
                    ),
                });
            };
            let name = &tail[1..end];
            let Some(p) = Placeholder::ALL.into_iter().find(|p| p.name() == name) else {
                return Err(TemplateProblem {
                    line: l,
                    column: c,
                    message: format!("unknown placeholder {{{name}}} (known: {})", known()),
                });
            };
            if !literal.is_empty() {
                out.push(Piece::Text(std::mem::take(&mut literal)));
            }
            out.push(Piece::Field(p));
            rest = &tail[end + 1..];
        }
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        out.push(Piece::Text(literal));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_is_a_subject_a_blank_line_and_a_body_with_placeholders() {
        let t = MessageTemplate::parse("Subject: Aviso {event}\n\nDesde {since}: {{x}}\n").unwrap();
        assert_eq!(
            t.subject,
            [
                Piece::Text("Aviso ".into()),
                Piece::Field(Placeholder::Event)
            ]
        );
        assert_eq!(
            t.body,
            [
                Piece::Text("Desde ".into()),
                Piece::Field(Placeholder::Since),
                Piece::Text(": {x}\n".into()),
            ]
        );
    }

    #[test]
    fn an_unknown_placeholder_is_located_by_line_and_column() {
        let e = MessageTemplate::parse("Subject: hola\n\nuno\n  dos {user} tres\n").unwrap_err();
        assert_eq!((e.line, e.column), (4, 7), "{e}");
        assert!(e.message.contains("unknown placeholder {user}"), "{e}");
        assert!(e.message.contains("{what_you_can_see}"), "{e}");
        let e = MessageTemplate::parse("Subject: ñu {evento}\n\nx").unwrap_err();
        assert_eq!((e.line, e.column), (1, 13), "{e}");
        let e = MessageTemplate::parse("Subject: x\n\nabre { y no cierra\n").unwrap_err();
        assert_eq!((e.line, e.column), (3, 6), "{e}");
        assert!(e.message.contains("unclosed"), "{e}");
    }

    #[test]
    fn the_subject_line_and_the_blank_line_are_required() {
        let e = MessageTemplate::parse("Hola\n\ncuerpo").unwrap_err();
        assert_eq!((e.line, e.column), (1, 1));
        let e = MessageTemplate::parse("Subject: x\ncuerpo").unwrap_err();
        assert_eq!((e.line, e.column), (2, 1));
    }
}
