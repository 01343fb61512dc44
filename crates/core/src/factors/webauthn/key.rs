//! A credential's public key: read from its COSE_Key (RFC 9052 §7, the form authenticators give
//! it in), checked against the algorithms Gatehouse accepts, and kept as those same COSE bytes.

use coset::iana::{self, EnumI64};
use coset::{CborSerializable, KeyType, Label};

/// COSE algorithm identifiers Gatehouse accepts, in the order registration offers them
/// (`pubKeyCredParams`): ES256 first (every platform authenticator has it), then EdDSA, then
/// RS256 (Windows Hello's older keys).
pub const ACCEPTED_ALGS: [i64; 3] = [ES256, EDDSA, RS256];
pub const ES256: i64 = -7;
pub const EDDSA: i64 = -8;
pub const RS256: i64 = -257;

/// RSA moduli shorter than this are refused (NIST SP 800-131A: 2048 bits at least).
pub const RSA_MIN_MODULUS_BITS: usize = 2048;
/// And longer than this: 4096 bits is the largest an authenticator makes, and a larger one only
/// costs verification time.
pub const RSA_MAX_MODULUS_BITS: usize = 4096;

/// A public key in the form the signature check takes.
#[derive(Clone, PartialEq, Eq)]
pub enum CredentialKey {
    /// ECDSA on P-256 with SHA-256: the affine coordinates, big-endian.
    Es256 { x: [u8; 32], y: [u8; 32] },
    /// Ed25519 (RFC 8032): the 32-byte public key.
    Ed25519([u8; 32]),
    /// RSASSA-PKCS1-v1_5 with SHA-256: modulus and exponent, big-endian, no leading zeros.
    Rs256 { n: Vec<u8>, e: Vec<u8> },
}

impl std::fmt::Debug for CredentialKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Public, but long: the algorithm is what a log needs.
        f.write_str(match self {
            CredentialKey::Es256 { .. } => "CredentialKey(ES256)",
            CredentialKey::Ed25519(_) => "CredentialKey(EdDSA)",
            CredentialKey::Rs256 { .. } => "CredentialKey(RS256)",
        })
    }
}

impl CredentialKey {
    /// The COSE algorithm identifier.
    pub fn alg(&self) -> i64 {
        match self {
            CredentialKey::Es256 { .. } => ES256,
            CredentialKey::Ed25519(_) => EDDSA,
            CredentialKey::Rs256 { .. } => RS256,
        }
    }

    /// Reads a COSE_Key. WebAuthn requires its `alg` (§6.5.1.1), and the key type and curve must
    /// be the ones that algorithm uses; anything else is `None`.
    pub fn from_cose(bytes: &[u8]) -> Option<CredentialKey> {
        let key = coset::CoseKey::from_slice(bytes).ok()?;
        let alg = match key.alg? {
            coset::Algorithm::Assigned(a) => a.to_i64(),
            _ => return None,
        };
        let param = |label: i64| key.params.iter().find(|(l, _)| *l == Label::Int(label)).map(|(_, v)| v);
        let int = |label: i64| {
            param(label)
                .and_then(|v| v.as_integer())
                .and_then(|i| i64::try_from(i).ok())
        };
        let bytes_of = |label: i64| param(label).and_then(|v| v.as_bytes());
        match (alg, &key.kty) {
            (ES256, KeyType::Assigned(iana::KeyType::EC2)) => {
                if int(iana::Ec2KeyParameter::Crv.to_i64())? != iana::EllipticCurve::P_256.to_i64() {
                    return None;
                }
                let x = bytes_of(iana::Ec2KeyParameter::X.to_i64())?;
                let y = bytes_of(iana::Ec2KeyParameter::Y.to_i64())?;
                Some(CredentialKey::Es256 {
                    x: x.as_slice().try_into().ok()?,
                    y: y.as_slice().try_into().ok()?,
                })
            }
            (EDDSA, KeyType::Assigned(iana::KeyType::OKP)) => {
                if int(iana::OkpKeyParameter::Crv.to_i64())? != iana::EllipticCurve::Ed25519.to_i64() {
                    return None;
                }
                let x = bytes_of(iana::OkpKeyParameter::X.to_i64())?;
                Some(CredentialKey::Ed25519(x.as_slice().try_into().ok()?))
            }
            (RS256, KeyType::Assigned(iana::KeyType::RSA)) => {
                let n = strip_leading_zeros(bytes_of(iana::RsaKeyParameter::N.to_i64())?);
                let e = strip_leading_zeros(bytes_of(iana::RsaKeyParameter::E.to_i64())?);
                let odd = |v: &[u8]| v.last().is_some_and(|b| b & 1 == 1);
                let bits = n.first().map_or(0, |top| n.len() * 8 - top.leading_zeros() as usize);
                if !(RSA_MIN_MODULUS_BITS..=RSA_MAX_MODULUS_BITS).contains(&bits) || !odd(n) {
                    return None;
                }
                // e is odd and small (65537 in practice); WebCrypto takes at most 4 bytes.
                if e.is_empty() || e.len() > 4 || !odd(e) || e == [1] {
                    return None;
                }
                Some(CredentialKey::Rs256 {
                    n: n.to_vec(),
                    e: e.to_vec(),
                })
            }
            _ => None,
        }
    }
}

fn strip_leading_zeros(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| *b != 0).unwrap_or(v.len());
    &v[start..]
}

/// An ECDSA signature as WebAuthn gives it (ASN.1 DER `SEQUENCE { r INTEGER, s INTEGER }`,
/// WebAuthn §6.5.5) as the raw `r || s` of 64 bytes that WebCrypto verifies. Strict DER: minimal
/// lengths and integers, positive, each at most 32 bytes of value; anything else is `None`.
/// (Hand-written: the whole grammar is two integers, and a DER crate would cost more wasm than
/// these lines.)
pub fn ecdsa_der_to_raw(der: &[u8]) -> Option<[u8; 64]> {
    let (&tag, rest) = der.split_first()?;
    let (&len, body) = rest.split_first()?;
    // The longest valid body is 2 * (2 + 33) = 70 bytes, so its length is always one byte (the
    // short form); a long-form length byte (0x81...) never equals the body's length, or, if
    // it does, the integers inside are too long.
    if tag != 0x30 || usize::from(len) != body.len() {
        return None;
    }
    let (r, body) = der_positive_integer(body)?;
    let (s, body) = der_positive_integer(body)?;
    if !body.is_empty() {
        return None;
    }
    let mut raw = [0u8; 64];
    raw[32 - r.len()..32].copy_from_slice(r);
    raw[64 - s.len()..].copy_from_slice(s);
    Some(raw)
}

/// One DER INTEGER that must be positive and fit 32 bytes: its value without the sign byte, and
/// what follows it.
fn der_positive_integer(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&len, rest) = rest.split_first()?;
    // A long-form length (0x80 and up) reads as a length over 33: refused below.
    let len = usize::from(len);
    if tag != 0x02 || len == 0 || rest.len() < len {
        return None;
    }
    let (value, after) = rest.split_at(len);
    let negative = value[0] & 0x80 != 0;
    // Minimal: a leading zero only where the next byte has its top bit set.
    let padded = value.len() > 1 && value[0] == 0;
    if negative || (padded && value[1] & 0x80 == 0) {
        return None;
    }
    let magnitude = if padded { &value[1..] } else { value };
    if magnitude.len() > 32 || magnitude.iter().all(|b| *b == 0) {
        return None;
    }
    Some((magnitude, after))
}

#[cfg(test)]
mod tests {
    use super::*;
    use coset::CoseKeyBuilder;

    fn ec2(crv: iana::EllipticCurve, alg: Option<iana::Algorithm>) -> Vec<u8> {
        let mut b = CoseKeyBuilder::new_ec2_pub_key(crv, vec![1; 32], vec![2; 32]);
        if let Some(a) = alg {
            b = b.algorithm(a);
        }
        b.build().to_vec().unwrap()
    }

    #[test]
    fn a_p256_key_for_es256_is_read_and_other_curves_or_a_missing_alg_are_not() {
        let key = CredentialKey::from_cose(&ec2(iana::EllipticCurve::P_256, Some(iana::Algorithm::ES256))).unwrap();
        assert_eq!(key, CredentialKey::Es256 { x: [1; 32], y: [2; 32] });
        assert_eq!(key.alg(), ES256);
        assert_eq!(format!("{key:?}"), "CredentialKey(ES256)");
        assert!(CredentialKey::from_cose(&ec2(iana::EllipticCurve::P_256, None)).is_none());
        assert!(CredentialKey::from_cose(&ec2(iana::EllipticCurve::P_384, Some(iana::Algorithm::ES256))).is_none());
        assert!(CredentialKey::from_cose(&ec2(iana::EllipticCurve::P_256, Some(iana::Algorithm::ES384))).is_none());
        assert!(CredentialKey::from_cose(&ec2(iana::EllipticCurve::P_256, Some(iana::Algorithm::EdDSA))).is_none());
        let short = CoseKeyBuilder::new_ec2_pub_key(iana::EllipticCurve::P_256, vec![1; 31], vec![2; 32])
            .algorithm(iana::Algorithm::ES256)
            .build()
            .to_vec()
            .unwrap();
        assert!(CredentialKey::from_cose(&short).is_none());
        assert!(CredentialKey::from_cose(b"\xa0").is_none(), "an empty map");
        assert!(CredentialKey::from_cose(b"not cbor").is_none());
    }

    #[test]
    fn an_ed25519_key_for_eddsa_is_read_and_x25519_is_not() {
        let okp = |crv: iana::EllipticCurve, x: Vec<u8>| {
            CoseKeyBuilder::new_okp_key()
                .param(iana::OkpKeyParameter::Crv.to_i64(), ciborium::Value::from(crv.to_i64()))
                .param(iana::OkpKeyParameter::X.to_i64(), ciborium::Value::Bytes(x))
                .algorithm(iana::Algorithm::EdDSA)
                .build()
                .to_vec()
                .unwrap()
        };
        let key = CredentialKey::from_cose(&okp(iana::EllipticCurve::Ed25519, vec![7; 32])).unwrap();
        assert_eq!(key, CredentialKey::Ed25519([7; 32]));
        assert_eq!(
            (key.alg(), format!("{key:?}").as_str()),
            (EDDSA, "CredentialKey(EdDSA)")
        );
        assert!(CredentialKey::from_cose(&okp(iana::EllipticCurve::X25519, vec![7; 32])).is_none());
        assert!(CredentialKey::from_cose(&okp(iana::EllipticCurve::Ed25519, vec![7; 33])).is_none());
    }

    fn rsa(n: Vec<u8>, e: Vec<u8>) -> Vec<u8> {
        coset::CoseKeyBuilder::new()
            .key_type(iana::KeyType::RSA)
            .param(iana::RsaKeyParameter::N.to_i64(), ciborium::Value::Bytes(n))
            .param(iana::RsaKeyParameter::E.to_i64(), ciborium::Value::Bytes(e))
            .algorithm(iana::Algorithm::RS256)
            .build()
            .to_vec()
            .unwrap()
    }

    #[test]
    fn an_rsa_key_is_read_between_2048_and_4096_bits_with_a_small_odd_exponent() {
        let n = |len: usize| {
            let mut v = vec![0xc5; len];
            v[len - 1] = 0x01;
            v
        };
        let e = vec![0x01, 0x00, 0x01];
        let key = CredentialKey::from_cose(&rsa(n(256), e.clone())).unwrap();
        assert_eq!(key.alg(), RS256);
        assert_eq!(format!("{key:?}"), "CredentialKey(RS256)");
        // Leading zeros do not count toward the length.
        let mut padded = vec![0, 0];
        padded.extend(n(256));
        assert_eq!(
            CredentialKey::from_cose(&rsa(padded, vec![0, 1, 0, 1])),
            Some(CredentialKey::Rs256 {
                n: n(256),
                e: e.clone()
            })
        );
        assert!(CredentialKey::from_cose(&rsa(n(512), e.clone())).is_some());
        assert!(CredentialKey::from_cose(&rsa(n(255), e.clone())).is_none(), "2040 bits");
        assert!(CredentialKey::from_cose(&rsa(n(513), e.clone())).is_none());
        // Bits, not bytes: 256 bytes whose top byte is 0x01 are a 2041-bit modulus.
        let mut short_top = n(256);
        short_top[0] = 0x01;
        assert!(
            CredentialKey::from_cose(&rsa(short_top, e.clone())).is_none(),
            "2041 bits"
        );
        let mut full_top = n(256);
        full_top[0] = 0x80;
        assert!(
            CredentialKey::from_cose(&rsa(full_top, e.clone())).is_some(),
            "2048 bits"
        );
        let mut over = n(513);
        over[0] = 0x01;
        assert!(CredentialKey::from_cose(&rsa(over, e.clone())).is_none(), "4097 bits");
        let mut even = n(256);
        even[255] = 0x02;
        assert!(CredentialKey::from_cose(&rsa(even, e.clone())).is_none());
        for bad_e in [vec![], vec![1], vec![0, 0, 1], vec![2], vec![1, 0, 0, 0, 1]] {
            assert!(
                CredentialKey::from_cose(&rsa(n(256), bad_e.clone())).is_none(),
                "{bad_e:?}"
            );
        }
        assert!(CredentialKey::from_cose(&rsa(n(256), vec![3])).is_some());
        assert!(CredentialKey::from_cose(&rsa(n(256), vec![0xff, 0xff, 0xff, 0xff])).is_some());
    }

    #[test]
    fn der_signatures_become_raw_and_anything_not_strict_der_is_refused() {
        let mut r = vec![0x00, 0x80];
        r.extend([0x11; 31]);
        let s = [0x7f; 32];
        let mut der = vec![0x30, (2 + 33 + 2 + 32) as u8, 0x02, 33];
        der.extend(&r);
        der.extend([0x02, 32]);
        der.extend(s);
        let raw = ecdsa_der_to_raw(&der).unwrap();
        assert_eq!(&raw[..32], &r[1..]);
        assert_eq!(&raw[32..], &s);
        // Short integers are left-padded.
        assert_eq!(
            ecdsa_der_to_raw(&[0x30, 6, 0x02, 1, 0x05, 0x02, 1, 0x07]).map(|r| (r[31], r[63], r[0], r[32])),
            Some((5, 7, 0, 0))
        );
        let refused: &[&[u8]] = &[
            &[],
            &[0x30],
            &[0x31, 6, 0x02, 1, 5, 0x02, 1, 7],
            &[0x30, 7, 0x02, 1, 5, 0x02, 1, 7],
            &[0x30, 6, 0x02, 1, 5, 0x02, 1, 7, 0],
            &[0x30, 9, 0x02, 1, 5, 0x02, 1, 7, 0x02, 1, 1],
            &[0x30, 6, 0x03, 1, 5, 0x02, 1, 7],
            &[0x30, 6, 0x02, 1, 0x85, 0x02, 1, 7],
            &[0x30, 7, 0x02, 2, 0, 5, 0x02, 1, 7],
            &[0x30, 6, 0x02, 1, 0, 0x02, 1, 7],
            &[0x30, 5, 0x02, 0, 0x02, 1, 7],
            &[0x30, 6, 0x02, 5, 5, 0x02, 1, 7],
            &[0x30, 0x81, 6, 0x02, 1, 5, 0x02, 1, 7],
            &[0x30, 4, 0x02, 1, 5, 0x02],
        ];
        for der in refused {
            assert!(ecdsa_der_to_raw(der).is_none(), "{der:?}");
        }
        let mut long = vec![0x30, 2 + 33 + 3, 0x02, 33];
        long.extend([0x11; 33]);
        long.extend([0x02, 1, 7]);
        assert!(ecdsa_der_to_raw(&long).is_none(), "33 bytes of value");
        let mut long_len = vec![0x30, 0x80];
        long_len.extend(vec![0; 0x80]);
        assert!(ecdsa_der_to_raw(&long_len).is_none());
    }
}
