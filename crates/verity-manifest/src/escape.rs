// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Percent-escaping of raw path bytes so that any Unix name fits on one line.
//!
//! Bytes `0x21..=0x7e` other than `%` stand for themselves; every other byte
//! (space, control characters, `%`, bytes >= 0x7f) is written `%XX` with two
//! lowercase hex digits. The encoding is canonical: each byte string has
//! exactly one form, and decoding rejects any other.

/// True for a byte that stands for itself in the escaped form.
fn is_plain(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && b != b'%'
}

/// Escapes raw bytes.
pub fn escape_bytes(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    escape_into(raw, &mut out);
    // Only ASCII is ever written.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends the escaped form of `raw` to `out`.
pub(crate) fn escape_into(raw: &[u8], out: &mut Vec<u8>) {
    if raw.iter().all(|&b| is_plain(b)) {
        out.extend_from_slice(raw);
        return;
    }
    for &b in raw {
        if is_plain(b) {
            out.push(b);
        } else {
            let mut pair = [0u8; 2];
            // Two hex digits for one byte: cannot fail.
            let _ = hex::encode_to_slice([b], &mut pair);
            out.extend_from_slice(&[b'%', pair[0], pair[1]]);
        }
    }
}

/// Decodes an escaped string; `None` unless it is the canonical form.
pub fn unescape_bytes(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hexpart = b.get(i + 1..i + 3)?;
            if hexpart.iter().any(|c| c.is_ascii_uppercase()) {
                return None;
            }
            let byte = hex::decode(hexpart).ok()?[0];
            if is_plain(byte) {
                return None;
            }
            out.push(byte);
            i += 3;
        } else if (0x21..=0x7e).contains(&b[i]) {
            out.push(b[i]);
            i += 1;
        } else {
            return None;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        let e = escape_bytes(&all);
        assert!(!e.contains(' ') && !e.contains('\n'));
        assert_eq!(unescape_bytes(&e).unwrap(), all);
    }

    #[test]
    fn rejects_non_canonical_forms() {
        assert_eq!(unescape_bytes("a%20b").unwrap(), b"a b");
        for bad in ["%41", "%2", "%zz", "%2F", "a b", "é"] {
            assert!(unescape_bytes(bad).is_none(), "{bad}");
        }
    }
}
