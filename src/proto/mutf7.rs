//! Modified UTF-7, the encoding of IMAP mailbox names (RFC 3501 §5.1.3).
//!
//! Printable US-ASCII stands for itself except `&`, written `&-`. Any other run of characters
//! becomes UTF-16BE (non-BMP characters as surrogate pairs), base64 with `,` for `/` and no
//! padding, between `&` and `-`. A name such as "Entwürfe" travels as `Entw&APw-rfe`.
//!
//! IMAP4rev1 servers (Dovecot included) send and expect names in this form; a client that showed
//! them raw or created folders from UTF-8 would make "Entw&APw-rfe" folders on the destination.

use base64::Engine;
use base64::alphabet::IMAP_MUTF7;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::ProtoError;

/// RFC 3501 §5.1.3: "modified BASE64, with the further modification from [UTF-7] that '=' is not
/// used"; trailing bits must be zero, which the engine checks.
const MUTF7: GeneralPurpose = GeneralPurpose::new(
    &IMAP_MUTF7,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone),
);

/// Encodes a UTF-8 mailbox name for the wire. Never fails: every string has an encoding.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut shifted: Vec<u16> = Vec::new();
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut out, &mut shifted);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut units = [0u16; 2];
            shifted.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush(&mut out, &mut shifted);
    out
}

fn flush(out: &mut String, shifted: &mut Vec<u16>) {
    if shifted.is_empty() {
        return;
    }
    let bytes: Vec<u8> = shifted.iter().flat_map(|u| u.to_be_bytes()).collect();
    out.push('&');
    out.push_str(&MUTF7.encode(bytes));
    out.push('-');
    shifted.clear();
}

/// Decodes a wire mailbox name to UTF-8. Fails on anything RFC 3501 §5.1.3 does not allow:
/// raw non-ASCII or control bytes, an unterminated or invalid base64 run, odd UTF-16 lengths,
/// unpaired surrogates.
pub fn decode(raw: &str) -> Result<String, ProtoError> {
    let bad = |why: &str| ProtoError::malformed(format!("invalid modified UTF-7 ({why})"), raw);
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(c) = rest.chars().next() {
        if !(' '..='~').contains(&c) {
            return Err(bad("character outside printable ASCII"));
        }
        if c != '&' {
            out.push(c);
            rest = &rest[1..];
            continue;
        }
        let Some(end) = rest.find('-') else {
            return Err(bad("'&' without closing '-'"));
        };
        let run = &rest[1..end];
        rest = &rest[end + 1..];
        if run.is_empty() {
            out.push('&');
            continue;
        }
        let bytes = MUTF7.decode(run).map_err(|_| bad("bad base64"))?;
        if bytes.len() % 2 != 0 {
            return Err(bad("odd number of UTF-16 octets"));
        }
        let units = bytes
            .chunks_exact(2)
            .map(|p| u16::from_be_bytes([p[0], p[1]]));
        for c in char::decode_utf16(units) {
            out.push(c.map_err(|_| bad("unpaired UTF-16 surrogate"))?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_encodings() {
        assert_eq!(encode("Entwürfe"), "Entw&APw-rfe");
        assert_eq!(encode("日本語"), "&ZeVnLIqe-");
        assert_eq!(encode("&"), "&-");
        assert_eq!(encode("a&b"), "a&-b");
        assert_eq!(encode("INBOX.Sent"), "INBOX.Sent");
        // RFC 3501 §5.1.3's own example.
        assert_eq!(
            encode("~peter/mail/台北/日本語"),
            "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
        );
        // U+1F4E7 (outside the BMP) as the surrogate pair D83D DCE7.
        assert_eq!(encode("📧"), "&2D3c5w-");
    }

    #[test]
    fn round_trips() {
        for name in [
            "Entwürfe",
            "日本語",
            "&",
            "a&b",
            "",
            "Ünïcödé & more",
            "📧 Post",
            "tab\there",
        ] {
            assert_eq!(decode(&encode(name)).unwrap(), name, "{name}");
        }
    }

    #[test]
    fn refuses_invalid_input() {
        for raw in [
            "Entw&APw",   // no '-'
            "a&ZeVnLIq-", // base64 leaves non-zero bits
            "a&Z!-",      // not base64
            "&AGE",       // unterminated
            "&2D0-",      // lone high surrogate
            "Entwürfe",   // raw UTF-8
            "a\u{7f}b",   // DEL is not printable
            "&AA-",       // one octet, not a UTF-16 unit
            "&2D3c5w==-", // padding is not used
        ] {
            assert!(decode(raw).is_err(), "{raw}");
        }
    }
}
