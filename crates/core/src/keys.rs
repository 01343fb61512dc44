//! Signing keys from GATEHOUSE_PRIVATE_KEY: PEM parsing, JWK thumbprints (RFC 7638).
//!
//! The secret is the base64 (standard alphabet) of a text holding one or more PEM blocks, or that
//! PEM text itself. Accepted blocks:
//! - `PRIVATE KEY` (PKCS#8, RFC 5958) holding an RSA key or an EC P-256 key;
//! - `RSA PRIVATE KEY` (PKCS#1, RFC 8017), wrapped here into PKCS#8;
//! - `EC PRIVATE KEY` (SEC1, RFC 5915) on P-256, wrapped here into PKCS#8;
//! - `EC PARAMETERS` (what `openssl ecparam -genkey` prints first) is skipped.
//!
//! Rotation: the first key of each algorithm is active and signs; later keys of the same algorithm
//! are retired: published in the JWKS and still verifying, never signing. An RSA key is mandatory
//! (OIDC Core §15.1: RS256 must be supported).
//!
//! Errors name the setting and the block's position, never key material.

use std::fmt;

use serde_json::{Map, Value};

use crate::config::PRIVATE_KEY;
use crate::crypto::{b64_decode, b64url, sha256};
use crate::error::InternalError;
use crate::ports::SigningAlg;

/// One private key in PKCS#8 DER. `Debug` prints no key material.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKeyDer {
    pub alg: SigningAlg,
    /// PKCS#8 `PrivateKeyInfo`, DER (what WebCrypto's `importKey("pkcs8", …)` takes).
    pub pkcs8: Vec<u8>,
    /// Whether this key signs new tokens (the first key of its algorithm).
    pub active: bool,
}

impl fmt::Debug for PrivateKeyDer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKeyDer")
            .field("alg", &self.alg)
            .field("pkcs8", &"[redacted]")
            .field("active", &self.active)
            .finish()
    }
}

// DER tags.
const TAG_INTEGER: u8 = 0x02;
const TAG_OCTET_STRING: u8 = 0x04;
const TAG_NULL: u8 = 0x05;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;
const TAG_CONTEXT_0: u8 = 0xa0;

// OID contents (DER, without tag and length).
/// rsaEncryption, 1.2.840.113549.1.1.1
const OID_RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// id-ecPublicKey, 1.2.840.10045.2.1
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// prime256v1 (secp256r1, P-256), 1.2.840.10045.3.1.7
const OID_PRIME256V1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// Parses the GATEHOUSE_PRIVATE_KEY value into PKCS#8 keys, marking the first key of each
/// algorithm active.
pub fn parse_private_keys(value: &str) -> Result<Vec<PrivateKeyDer>, InternalError> {
    let text = secret_text(value)?;
    let blocks = pem_blocks(&text)?;
    let mut keys: Vec<PrivateKeyDer> = Vec::new();
    for (index, (label, der)) in blocks.iter().enumerate() {
        let n = index + 1;
        let parsed = match label.as_str() {
            "EC PARAMETERS" => continue,
            "PRIVATE KEY" => pkcs8_alg(der).map(|alg| (alg, der.clone())),
            "RSA PRIVATE KEY" => wrap_pkcs1(der).map(|pkcs8| (SigningAlg::RS256, pkcs8)),
            "EC PRIVATE KEY" => wrap_sec1(der).map(|pkcs8| (SigningAlg::ES256, pkcs8)),
            "ENCRYPTED PRIVATE KEY" => {
                return Err(err(format!(
                    "PEM block {n} is encrypted; an unencrypted key is required"
                )))
            }
            other => {
                return Err(err(format!(
                    "PEM block {n} is a {} block, not a private key",
                    printable_label(other)
                )))
            }
        };
        let (alg, pkcs8) =
            parsed.map_err(|why| err(format!("PEM block {n} ({label}) is malformed or unsupported: {why}")))?;
        let active = !keys.iter().any(|k| k.alg == alg);
        keys.push(PrivateKeyDer { alg, pkcs8, active });
    }
    if keys.is_empty() {
        return Err(err("holds no private key".to_owned()));
    }
    if !keys.iter().any(|k| k.alg == SigningAlg::RS256) {
        return Err(err("holds no RSA key; RS256 is mandatory".to_owned()));
    }
    Ok(keys)
}

/// RFC 7638 JWK thumbprint: SHA-256 of the required members in lexicographic order, without
/// whitespace, base64url. Required members: `e`,`kty`,`n` (RSA); `crv`,`kty`,`x`,`y` (EC);
/// `crv`,`kty`,`x` (OKP); `k`,`kty` (oct). For another `kty`, every member is used. Missing
/// members are left out (the result then matches no conforming thumbprint).
pub fn jwk_thumbprint(jwk: &Map<String, Value>) -> String {
    let required: &[&str] = match jwk.get("kty").and_then(Value::as_str) {
        Some("RSA") => &["e", "kty", "n"],
        Some("EC") => &["crv", "kty", "x", "y"],
        Some("OKP") => &["crv", "kty", "x"],
        Some("oct") => &["k", "kty"],
        _ => &[],
    };
    let mut names: Vec<&str> = if required.is_empty() {
        jwk.keys().map(String::as_str).collect()
    } else {
        required.to_vec()
    };
    names.sort_unstable();
    // Written by hand so member order never depends on serde_json's map flavour.
    let mut json = String::from("{");
    for name in names {
        let Some(value) = jwk.get(name) else { continue };
        if json.len() > 1 {
            json.push(',');
        }
        json.push_str(&Value::String(name.to_owned()).to_string());
        json.push(':');
        json.push_str(&value.to_string());
    }
    json.push('}');
    b64url(&sha256(json.as_bytes()))
}

fn err(detail: String) -> InternalError {
    InternalError::new(format!("{PRIVATE_KEY}: {detail}"))
}

/// Labels are echoed in errors; keep them short and printable.
fn printable_label(label: &str) -> String {
    label
        .chars()
        .filter(|c| c.is_ascii_uppercase() || *c == ' ')
        .take(40)
        .collect()
}

/// The PEM text: the value itself when it is PEM, else its base64 decoding.
fn secret_text(value: &str) -> Result<String, InternalError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(err("is empty".to_owned()));
    }
    if trimmed.starts_with("-----BEGIN") {
        return Ok(trimmed.to_owned());
    }
    let compact: String = trimmed.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = b64_decode(&compact).ok_or_else(|| err("is neither PEM text nor base64 of PEM text".to_owned()))?;
    let text = String::from_utf8(bytes).map_err(|_| err("base64 does not decode to PEM text".to_owned()))?;
    if !text.trim_start().starts_with("-----BEGIN") {
        return Err(err("base64 does not decode to PEM text".to_owned()));
    }
    Ok(text)
}

/// Splits PEM text into (label, DER) blocks. Text outside blocks is ignored (RFC 7468 §2).
fn pem_blocks(text: &str) -> Result<Vec<(String, Vec<u8>)>, InternalError> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        let line = line.trim();
        let n = blocks.len() + 1;
        if let Some(label) = line.strip_prefix("-----BEGIN ").and_then(|l| l.strip_suffix("-----")) {
            if current.is_some() {
                return Err(err(format!("PEM block {n} has no END line")));
            }
            current = Some((label.to_owned(), String::new()));
        } else if let Some(label) = line.strip_prefix("-----END ").and_then(|l| l.strip_suffix("-----")) {
            let Some((begin, body)) = current.take() else {
                return Err(err(format!("PEM block {n} has an END line without BEGIN")));
            };
            if begin != label {
                return Err(err(format!("PEM block {n} ends with a different label than it begins")));
            }
            let der = b64_decode(&body).filter(|d| !d.is_empty()).ok_or_else(|| {
                err(format!(
                    "PEM block {n} ({}) is not valid base64",
                    printable_label(&begin)
                ))
            })?;
            blocks.push((begin, der));
        } else if let Some((label, body)) = current.as_mut() {
            if line.contains(':') {
                // RFC 1421 headers (Proc-Type, DEK-Info): an encrypted legacy key.
                return Err(err(format!(
                    "PEM block {n} ({}) is encrypted; an unencrypted key is required",
                    printable_label(label)
                )));
            }
            body.push_str(line);
        }
    }
    if current.is_some() {
        return Err(err(format!("PEM block {} has no END line", blocks.len() + 1)));
    }
    if blocks.is_empty() {
        return Err(err("holds no PEM block".to_owned()));
    }
    Ok(blocks)
}

// ---- A minimal DER reader and writer: just what PKCS#1/SEC1/PKCS#8 framing needs. ----

/// Reads one TLV, returning (tag, contents, rest). Low tag numbers and definite lengths only.
fn read_tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), &'static str> {
    let (&tag, rest) = input.split_first().ok_or("truncated DER")?;
    if tag & 0x1f == 0x1f {
        return Err("unsupported DER tag");
    }
    let (&first, mut rest) = rest.split_first().ok_or("truncated DER")?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return Err("bad DER length");
        }
        let (len_bytes, after) = rest.split_at(count);
        rest = after;
        let len = len_bytes.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        if len < 0x80 || len_bytes.first() == Some(&0) {
            return Err("non-minimal DER length");
        }
        len
    };
    if rest.len() < len {
        return Err("truncated DER");
    }
    let (contents, rest) = rest.split_at(len);
    Ok((tag, contents, rest))
}

/// Reads one TLV that must carry `tag`.
fn expect_tlv(input: &[u8], tag: u8) -> Result<(&[u8], &[u8]), &'static str> {
    let (t, contents, rest) = read_tlv(input)?;
    if t != tag {
        return Err("unexpected DER structure");
    }
    Ok((contents, rest))
}

/// The contents of a single outer SEQUENCE spanning all of `der`.
fn whole_sequence(der: &[u8]) -> Result<&[u8], &'static str> {
    let (contents, rest) = expect_tlv(der, TAG_SEQUENCE)?;
    if !rest.is_empty() {
        return Err("trailing data after DER");
    }
    Ok(contents)
}

fn write_tlv(out: &mut Vec<u8>, tag: u8, contents: &[u8]) {
    out.push(tag);
    let len = contents.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(contents);
}

/// PKCS#8 `PrivateKeyInfo` (version 0) around a private key structure.
fn pkcs8_wrap(algorithm_oid: &[u8], parameters: (u8, &[u8]), private_key: &[u8]) -> Vec<u8> {
    let mut alg_id = Vec::new();
    write_tlv(&mut alg_id, TAG_OID, algorithm_oid);
    write_tlv(&mut alg_id, parameters.0, parameters.1);
    let mut body = Vec::new();
    write_tlv(&mut body, TAG_INTEGER, &[0]);
    write_tlv(&mut body, TAG_SEQUENCE, &alg_id);
    write_tlv(&mut body, TAG_OCTET_STRING, private_key);
    let mut out = Vec::with_capacity(body.len() + 4);
    write_tlv(&mut out, TAG_SEQUENCE, &body);
    out
}

/// The algorithm of a PKCS#8 key, checking the inner key's framing.
fn pkcs8_alg(der: &[u8]) -> Result<SigningAlg, &'static str> {
    let body = whole_sequence(der)?;
    let (version, rest) = expect_tlv(body, TAG_INTEGER)?;
    if version != [0] && version != [1] {
        return Err("unknown PKCS#8 version");
    }
    let (alg_id, rest) = expect_tlv(rest, TAG_SEQUENCE)?;
    let (private_key, _attributes_or_public_key) = expect_tlv(rest, TAG_OCTET_STRING)?;
    let (oid, params) = expect_tlv(alg_id, TAG_OID)?;
    if oid == OID_RSA_ENCRYPTION {
        check_pkcs1(private_key)?;
        Ok(SigningAlg::RS256)
    } else if oid == OID_EC_PUBLIC_KEY {
        let (curve, _) = expect_tlv(params, TAG_OID).map_err(|_| "EC key without a named curve")?;
        if curve != OID_PRIME256V1 {
            return Err("EC key is not on P-256");
        }
        sec1_without_parameters(private_key)?;
        Ok(SigningAlg::ES256)
    } else {
        Err("key type is neither RSA nor EC P-256")
    }
}

/// Checks the framing of a PKCS#1 `RSAPrivateKey`: version 0 (two primes) and nine integers.
fn check_pkcs1(der: &[u8]) -> Result<(), &'static str> {
    let mut rest = whole_sequence(der)?;
    for i in 0..9 {
        let (value, after) = expect_tlv(rest, TAG_INTEGER).map_err(|_| "bad RSAPrivateKey")?;
        if value.is_empty() || (i == 0 && value != [0]) {
            return Err("bad RSAPrivateKey (multi-prime keys are not supported)");
        }
        rest = after;
    }
    if !rest.is_empty() {
        return Err("bad RSAPrivateKey");
    }
    Ok(())
}

fn wrap_pkcs1(der: &[u8]) -> Result<Vec<u8>, &'static str> {
    check_pkcs1(der)?;
    Ok(pkcs8_wrap(OID_RSA_ENCRYPTION, (TAG_NULL, &[]), der))
}

/// Checks a SEC1 `ECPrivateKey` on P-256 and returns it re-encoded without the `[0] parameters`
/// field (the curve moves to the PKCS#8 AlgorithmIdentifier, as OpenSSL writes it).
fn sec1_without_parameters(der: &[u8]) -> Result<Vec<u8>, &'static str> {
    let body = whole_sequence(der)?;
    let (version, rest) = expect_tlv(body, TAG_INTEGER)?;
    if version != [1] {
        return Err("bad ECPrivateKey version");
    }
    let (scalar, mut rest) = expect_tlv(rest, TAG_OCTET_STRING)?;
    if scalar.len() != 32 {
        return Err("EC private key is not a P-256 scalar");
    }
    let mut out_body = Vec::new();
    write_tlv(&mut out_body, TAG_INTEGER, version);
    write_tlv(&mut out_body, TAG_OCTET_STRING, scalar);
    while !rest.is_empty() {
        let (tag, contents, after) = read_tlv(rest)?;
        if tag == TAG_CONTEXT_0 {
            let (curve, extra) = expect_tlv(contents, TAG_OID).map_err(|_| "EC key without a named curve")?;
            if curve != OID_PRIME256V1 || !extra.is_empty() {
                return Err("EC key is not on P-256");
            }
        } else {
            write_tlv(&mut out_body, tag, contents);
        }
        rest = after;
    }
    let mut out = Vec::new();
    write_tlv(&mut out, TAG_SEQUENCE, &out_body);
    Ok(out)
}

fn wrap_sec1(der: &[u8]) -> Result<Vec<u8>, &'static str> {
    let inner = sec1_without_parameters(der)?;
    Ok(pkcs8_wrap(OID_EC_PUBLIC_KEY, (TAG_OID, OID_PRIME256V1), &inner))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::b64_encode;
    use crate::testing::signer::{EC_A_PKCS8_PEM, EC_B_SEC1_PEM, RSA_A_PKCS8_PEM, RSA_B_PKCS1_PEM};

    /// `openssl pkcs8 -topk8 -nocrypt -outform DER` of RSA_B_PKCS1_PEM.
    const RSA_B_PKCS8_DER_B64: &str = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDXcPbRsiWsgZ/JRQbZJFfeYwsJ33xMaqngwg3nNJhcEdjUIQSf5JKeH2+NGiN2CApS1N7qR7QsQk9eVCEsgoOgCu3GXPLo9CIhAPkxNk/WkvtZMgr6YDOerzcQmMfBJDUOb4q6OsSOuT5THSmWLtJfkQOaiwTifnwOcKmzS2zCDHE8tma+VdwKvszVEsdS9iqmi7EZq2y01Vcz3IO6EroyM/BtOC30lhBARWM1nRHbBMbbqn7t7OjEYutxMcnVSf/TJKuJF1dJ4XotWfd5mkwAZBdDs8o//rXquhqPUfHJ/fhERa0aHIz/8nZyxSU0DJaqPpiS2qlRtWw7qy1d00V9AgMBAAECggEALGdMf8jTafwndkDDWhLbB2trdYP55vge/kOQwQP+mQ9WnNYXUWs3at64y6DFCUk783mLXkccE/kwyZTWZ4mY3m4SNs2mhSv4Msw0EBgNGYEey/H8AEG+seiUFVgf56dyRgDoW1zMcUwt08yRazJISsklMH+RqKsAH6vJ1jnn9xBfkg6PWuFMCFDq1EprDqodZ3B9JK6TNfYbvlwHWLTLZfQhApe1Z+h9iqzt7OH37HF+JOMhXe+EfaYnr+DFDjDYozH70yJWQnzAQk757DFRHpK6P6z7OQKuHy405htrhCPt52CMRuQYwuw6EeCTH+G7Ci2etbV5kH9SVwwWI/J+UwKBgQDzVlaSDrlXb/3EwojCdv8uCkLJDAXjF6UD8y9lE8HLUiqBiGQRY8SOhGRPG5asipZavjOCp7l09xQJ/Vjvd1waHIfQKRBernHSotBAOYg3LB5dRuk79poB4mlI3xUeyIulWT4af4YxZhht8GsSozyWIyj8F6Ktp9BIi37daKTcLwKBgQDipwEgjb//pD2c0306ncJ34EdXYG09y0tDH+5GN8hqr8r8UA6qR8I7aGKDI1eVCb/0O9cgVuZ4DbvyEE9Ju27X7LXMRvqAn2WiKFTaZPT+MU2kfN4PTjf2qZNjVPm/zkHQdnHRLS1ldyGM5kHBqwRZpMx+sPu1ikjZ6xaPlJZyEwKBgH6KupBP6eBnk99bjsUaHs+xdFOa1gDnjd/E+jOlF5WFUCd2ZxuH93JptMRSw4NMuq3L1Xuvf0ktKBWd0z8Moi/OAG6mvCWQsA5qrsOHZ6fRYKT/OFD/h81NEZVctV4BymUdSKd9A6ryveeGLBhQHTSyaiDWpbmK2EyxhjLbtUfvAoGAXoLFNY3mQfN6vapyzb57GQGsvgK3isz61UK7WQxpxhMH0a6QbvD9TUh5y7UxEDTAllddnV6fO/B+LrIeXeCKl/9cz5HJY1kUSEoJGAiBIH3uomhvMHKtY23Sx9jnS9P2HbdGPrNX+rdyhg593QQzDC5sF2g1jb3cIwKkpbqQAYECgYEA3vcuEccvydzuxGuMc4k/V9nuOyiDH/jXnGmT6AlGnvJF8HkYZYiUyGVDXUaFnCUmuU73dL8Y+zjIBkxTxj6zxCLE9Yt4NBzNzr+rcmKUNMLhCLFIeyjjvOPokazd0QynllO/mfIhJtB8mwsMmx1nyWVPYawa2arTSWAP8HOeCIM=";
    /// `openssl pkcs8 -topk8 -nocrypt -outform DER` of EC_B_SEC1_PEM.
    const EC_B_PKCS8_DER_B64: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgP9UOkyAV9Opa/c943F2xnlOvRr3B471e6TiuDHZLjaGhRANCAATDSneiVFliarDntl7OozVZQ3DpxlHg3f9hKwV1wkvCYe8nVwIA6Pp9HfUdG7zf1afwY3pOwsrP5NtbhHwuCLEB";
    const EC_P384_PKCS8_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDCPoYxC7BALPpGph5eZ
J5+ZLAsEliu8AaBPZSJ6hSGym4lsgF/YrjwmMYP3SvbywUuhZANiAAQvRzin2Jol
c35JNo+L7kDaWwhnmZIF7Ypva3x17mJTZ3Bfbz+hzVS4TbFWrRFuu1+aNzstJgNd
FBNarz7jnKGzjPUoEtylPXZf92L0B/kTZwDvoaQqm147tq5FAJQZSoE=
-----END PRIVATE KEY-----
";
    const ED25519_PKCS8_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIP1rg5yd9IN5quDGB83SDZHNmiaMmQECwD6HwmaPh7fU
-----END PRIVATE KEY-----
";

    fn der_of(pem: &str) -> Vec<u8> {
        let blocks = pem_blocks(pem).unwrap();
        blocks.last().unwrap().1.clone()
    }

    #[test]
    fn parses_base64_of_several_pem_blocks_first_of_each_alg_active() {
        let text = format!("{RSA_A_PKCS8_PEM}{EC_A_PKCS8_PEM}{RSA_B_PKCS1_PEM}{EC_B_SEC1_PEM}");
        let keys = parse_private_keys(&b64_encode(text.as_bytes())).unwrap();
        let summary: Vec<(SigningAlg, bool)> = keys.iter().map(|k| (k.alg, k.active)).collect();
        assert_eq!(
            summary,
            vec![
                (SigningAlg::RS256, true),
                (SigningAlg::ES256, true),
                (SigningAlg::RS256, false),
                (SigningAlg::ES256, false),
            ]
        );
        // A PKCS#8 block is passed through unchanged.
        assert_eq!(keys[0].pkcs8, der_of(RSA_A_PKCS8_PEM));
        assert_eq!(keys[1].pkcs8, der_of(EC_A_PKCS8_PEM));
    }

    #[test]
    fn accepts_raw_pem_text_and_base64_with_line_breaks() {
        let text = format!("{RSA_A_PKCS8_PEM}{EC_A_PKCS8_PEM}");
        let raw = parse_private_keys(&text).unwrap();
        let b64 = b64_encode(text.as_bytes());
        let wrapped: String = b64
            .as_bytes()
            .chunks(64)
            .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
            .collect();
        assert_eq!(parse_private_keys(&wrapped).unwrap(), raw);
        assert_eq!(parse_private_keys(&format!("  {b64}\n")).unwrap(), raw);
    }

    #[test]
    fn pkcs1_is_wrapped_exactly_as_openssl_pkcs8_does() {
        let keys = parse_private_keys(RSA_B_PKCS1_PEM).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].alg, SigningAlg::RS256);
        assert_eq!(keys[0].pkcs8, b64_decode(RSA_B_PKCS8_DER_B64).unwrap());
    }

    #[test]
    fn sec1_with_ec_parameters_block_is_wrapped_exactly_as_openssl_pkcs8_does() {
        let text = format!("{RSA_A_PKCS8_PEM}{EC_B_SEC1_PEM}");
        let keys = parse_private_keys(&text).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[1].alg, SigningAlg::ES256);
        assert!(keys[1].active);
        assert_eq!(keys[1].pkcs8, b64_decode(EC_B_PKCS8_DER_B64).unwrap());
    }

    #[test]
    fn no_rsa_key_is_refused() {
        let e = parse_private_keys(&b64_encode(EC_A_PKCS8_PEM.as_bytes())).unwrap_err();
        assert!(e.0.contains("GATEHOUSE_PRIVATE_KEY"), "{e}");
        assert!(e.0.contains("RSA"), "{e}");
    }

    #[test]
    fn unsupported_curves_and_key_types_are_refused() {
        for pem in [EC_P384_PKCS8_PEM, ED25519_PKCS8_PEM] {
            let text = format!("{RSA_A_PKCS8_PEM}{pem}");
            let e = parse_private_keys(&text).unwrap_err();
            assert!(e.0.starts_with("GATEHOUSE_PRIVATE_KEY"), "{e}");
            assert!(e.0.contains("block 2"), "{e}");
        }
    }

    #[test]
    fn malformed_values_are_refused_without_echoing_key_material() {
        let body_line = RSA_A_PKCS8_PEM.lines().nth(5).unwrap();
        let truncated: String = RSA_A_PKCS8_PEM
            .lines()
            .filter(|l| *l != body_line)
            .map(|l| format!("{l}\n"))
            .collect();
        let cases = vec![
            String::new(),
            "not base64 at all!".to_owned(),
            b64_encode(b"hello"),
            truncated,
            RSA_A_PKCS8_PEM.replace("-----END PRIVATE KEY-----", ""),
            RSA_A_PKCS8_PEM.replace("END PRIVATE KEY", "END RSA PRIVATE KEY"),
            RSA_A_PKCS8_PEM.replace("PRIVATE KEY", "PUBLIC KEY"),
            RSA_A_PKCS8_PEM.replace("PRIVATE KEY", "ENCRYPTED PRIVATE KEY"),
            RSA_A_PKCS8_PEM.replace("PRIVATE KEY", "RSA PRIVATE KEY"),
            RSA_B_PKCS1_PEM.replace("RSA PRIVATE KEY", "PRIVATE KEY"),
            format!(
                "{RSA_A_PKCS8_PEM}{}",
                EC_B_SEC1_PEM.replace("EC PRIVATE KEY", "RSA PRIVATE KEY")
            ),
            format!("{RSA_A_PKCS8_PEM}-----BEGIN EC PRIVATE KEY-----\n!!!!\n-----END EC PRIVATE KEY-----\n"),
        ];
        for case in cases {
            let e = parse_private_keys(&case).unwrap_err();
            assert!(e.0.starts_with("GATEHOUSE_PRIVATE_KEY"), "{e}");
            assert!(!e.0.contains(body_line), "{e}");
            assert!(!e.0.contains("MII"), "{e}");
        }
    }

    #[test]
    fn debug_does_not_print_key_material() {
        let keys = parse_private_keys(RSA_A_PKCS8_PEM).unwrap();
        let shown = format!("{keys:?}");
        assert!(shown.contains("redacted"));
        assert!(!shown.contains("48, 130"), "{shown}");
    }

    #[test]
    fn der_lengths_round_trip() {
        for len in [0usize, 1, 127, 128, 255, 256, 1217, 70000] {
            let contents = vec![7u8; len];
            let mut out = Vec::new();
            write_tlv(&mut out, TAG_OCTET_STRING, &contents);
            let (tag, got, rest) = read_tlv(&out).unwrap();
            assert_eq!((tag, got.len(), rest.len()), (TAG_OCTET_STRING, len, 0));
        }
        assert!(read_tlv(&[0x04, 0x80]).is_err(), "indefinite length");
        assert!(
            read_tlv(&[0x04, 0x81, 0x05, 0, 0, 0, 0, 0]).is_err(),
            "non-minimal length"
        );
        assert!(read_tlv(&[0x04, 0x05, 0]).is_err(), "truncated");
    }

    #[test]
    fn rfc7638_section_3_1_thumbprint_vector() {
        let jwk: Map<String, Value> = serde_json::from_str(
            r#"{"kty":"RSA",
                "n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
                "e":"AQAB",
                "alg":"RS256",
                "kid":"2011-04-29"}"#,
        )
        .unwrap();
        assert_eq!(jwk_thumbprint(&jwk), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn ec_thumbprint_uses_crv_kty_x_y_only() {
        // Expected value computed independently (Python `cryptography`, sorted compact JSON).
        let jwk: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "y": "7ydXAgDo-n0d9R0bvN_Vp_Bjek7Cys_k21uEfC4IsQE",
            "use": "sig",
            "x": "w0p3olRZYmqw57ZezqM1WUNw6cZR4N3_YSsFdcJLwmE",
            "kty": "EC",
            "crv": "P-256",
        }))
        .unwrap();
        assert_eq!(jwk_thumbprint(&jwk), "OS_MVZVEGARbnhq3JoaM5bq6Gsb3Qs1UBHAO9Jjzbzc");
    }
}
