//! Authenticator data (WebAuthn §6.1): what the authenticator signs besides the client data.

/// Flags (§6.1): user present, user verified, backup eligible, backed up, attested credential
/// data included, extension data included.
pub const UP: u8 = 0x01;
pub const UV: u8 = 0x04;
pub const BE: u8 = 0x08;
pub const BS: u8 = 0x10;
pub const AT: u8 = 0x40;
pub const ED: u8 = 0x80;

/// A credential id is at most 1023 bytes (§5.8.3, registration step 25).
pub const MAX_CREDENTIAL_ID: usize = 1023;

/// Authenticator data as parsed; slices borrow from the bytes it was read from.
#[derive(Debug)]
pub struct AuthenticatorData<'a> {
    pub rp_id_hash: &'a [u8],
    pub flags: u8,
    pub sign_count: u32,
    pub attested: Option<AttestedCredential<'a>>,
}

/// Attested credential data (§6.5.2), present at registration.
#[derive(Debug)]
pub struct AttestedCredential<'a> {
    pub aaguid: [u8; 16],
    pub credential_id: &'a [u8],
    /// The COSE_Key exactly as the authenticator encoded it.
    pub public_key: &'a [u8],
}

impl AuthenticatorData<'_> {
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag == flag
    }
}

/// Reads authenticator data. Strict: the attested credential data is there exactly when the AT
/// flag says so, the extensions exactly when ED says so (a CBOR map), and nothing follows.
pub fn parse(bytes: &[u8]) -> Option<AuthenticatorData<'_>> {
    let (rp_id_hash, rest) = split(bytes, 32)?;
    let (flags, rest) = split(rest, 1)?;
    let flags = flags[0];
    let (count, mut rest) = split(rest, 4)?;
    let sign_count = u32::from_be_bytes(count.try_into().ok()?);
    let attested = if flags & AT != 0 {
        let (aaguid, after) = split(rest, 16)?;
        let (len, after) = split(after, 2)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        if len == 0 || len > MAX_CREDENTIAL_ID {
            return None;
        }
        let (credential_id, after) = split(after, len)?;
        let (_, public_key, after) = one_cbor_item(after)?;
        rest = after;
        Some(AttestedCredential {
            aaguid: aaguid.try_into().ok()?,
            credential_id,
            public_key,
        })
    } else {
        None
    };
    if flags & ED != 0 {
        let (extensions, _, after) = one_cbor_item(rest)?;
        if !extensions.is_map() {
            return None;
        }
        rest = after;
    }
    if !rest.is_empty() {
        return None;
    }
    Some(AuthenticatorData {
        rp_id_hash,
        flags,
        sign_count,
        attested,
    })
}

fn split(bytes: &[u8], n: usize) -> Option<(&[u8], &[u8])> {
    (bytes.len() >= n).then(|| bytes.split_at(n))
}

/// Nesting deeper than this in the key or the extensions is refused (a COSE key is one map).
const CBOR_DEPTH: usize = 16;

/// The first CBOR data item of `bytes`: its value, its own bytes, and what follows it. The
/// decoder reads exactly the item (it never reads ahead), so the rest of the slice is what is
/// left.
pub(crate) fn one_cbor_item(bytes: &[u8]) -> Option<(ciborium::Value, &[u8], &[u8])> {
    let mut rest = bytes;
    let value = ciborium::de::from_reader_with_recursion_limit::<ciborium::Value, _>(&mut rest, CBOR_DEPTH).ok()?;
    let (item, rest) = bytes.split_at(bytes.len() - rest.len());
    Some((value, item, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(flags: u8, count: u32, tail: &[u8]) -> Vec<u8> {
        let mut v = vec![0xaa; 32];
        v.push(flags);
        v.extend(count.to_be_bytes());
        v.extend(tail);
        v
    }

    fn attested(id: &[u8], key: &[u8]) -> Vec<u8> {
        let mut v = vec![0x0b; 16];
        v.extend((id.len() as u16).to_be_bytes());
        v.extend(id);
        v.extend(key);
        v
    }

    // {1: 2} and {"x": 1}: small CBOR maps.
    const KEY: &[u8] = &[0xa1, 0x01, 0x02];
    const EXT: &[u8] = &[0xa1, 0x61, b'x', 0x01];

    #[test]
    fn an_assertions_data_is_hash_flags_and_count_only() {
        let d = data(UP | UV, 0x0102_0304, &[]);
        let a = parse(&d).unwrap();
        assert_eq!(a.rp_id_hash, &[0xaa; 32]);
        assert_eq!(a.sign_count, 0x0102_0304);
        assert!(a.has(UP) && a.has(UV) && !a.has(BE) && !a.has(UP | BE));
        assert!(a.attested.is_none());
        assert!(parse(&d[..36]).is_none(), "a byte short");
        let mut long = d.clone();
        long.push(0);
        assert!(parse(&long).is_none(), "a byte too many");
    }

    #[test]
    fn attested_credential_data_gives_the_id_and_the_exact_key_bytes() {
        let d = data(UP | AT, 0, &attested(b"cred", KEY));
        let a = parse(&d).unwrap();
        let c = a.attested.unwrap();
        assert_eq!(
            (c.aaguid, c.credential_id, c.public_key),
            ([0x0b; 16], &b"cred"[..], KEY)
        );
        // Extensions after the key, when ED says so.
        let mut tail = attested(b"cred", KEY);
        tail.extend(EXT);
        let d = data(UP | AT | ED, 0, &tail);
        assert_eq!(parse(&d).unwrap().attested.unwrap().public_key, KEY);
        // ...and not without it, nor ED without a map.
        assert!(parse(&data(UP | AT, 0, &tail)).is_none());
        assert!(parse(&data(UP | AT | ED, 0, &attested(b"cred", KEY))).is_none());
        let mut not_a_map = attested(b"cred", KEY);
        not_a_map.extend([0x01]);
        assert!(parse(&data(UP | AT | ED, 0, &not_a_map)).is_none());
        // Extensions alone (an assertion with extension outputs).
        assert!(parse(&data(UP | ED, 0, EXT)).is_some());
    }

    #[test]
    fn a_credential_id_is_one_to_1023_bytes_and_the_key_must_be_whole() {
        assert!(parse(&data(UP | AT, 0, &attested(&[7; 1023], KEY))).is_some());
        assert!(parse(&data(UP | AT, 0, &attested(&[7; 1024], KEY))).is_none());
        assert!(parse(&data(UP | AT, 0, &attested(&[], KEY))).is_none());
        assert!(parse(&data(UP | AT, 0, &attested(b"cred", &KEY[..2]))).is_none());
        assert!(parse(&data(UP | AT, 0, &attested(b"cred", &[]))).is_none());
        // The id's length runs past the end.
        let mut cut = vec![0x0b; 16];
        cut.extend(10u16.to_be_bytes());
        cut.extend(b"abc");
        assert!(parse(&data(UP | AT, 0, &cut)).is_none());
        assert!(parse(&data(UP | AT, 0, &[0x0b; 17])).is_none());
    }

    #[test]
    fn deep_nesting_in_the_key_is_refused() {
        let mut deep = vec![0x81; 40];
        deep.push(0x01);
        assert!(one_cbor_item(&deep).is_none());
        let mut shallow = vec![0x81; 3];
        shallow.push(0x01);
        shallow.push(0xff);
        let (value, item, rest) = one_cbor_item(&shallow).unwrap();
        assert_eq!((item, rest), (&shallow[..4], &shallow[4..]));
        assert!(value.is_array());
    }
}
