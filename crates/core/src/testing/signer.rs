//! A RustCrypto [`Signer`] for native and wasm-bindgen tests, and fixed test keys.
//!
//! Never used in production: pure-Rust RSA costs ~10 ms per signature inside workerd, so the
//! Worker signs with WebCrypto (`gatehouse::signing::WebCryptoSigner`). This signer is the
//! reference the WebCrypto one is checked against.

use async_trait::async_trait;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use rsa::pkcs1v15;
use rsa::pkcs8::DecodePrivateKey;
use rsa::sha2::Sha256;
use rsa::signature::{Keypair, SignatureEncoding};
use rsa::traits::PublicKeyParts;
use serde_json::Map;

use crate::crypto::{b64_encode, b64url};
use crate::error::InternalError;
use crate::keys::{jwk_thumbprint, parse_private_keys};
use crate::ports::{PublicKey, Signer, SigningAlg};

enum KeyPair {
    // Boxed: an RSA key pair is several times the size of a P-256 one.
    Rsa(Box<(pkcs1v15::SigningKey<Sha256>, pkcs1v15::VerifyingKey<Sha256>)>),
    Ec {
        signing: p256::ecdsa::SigningKey,
        verifying: p256::ecdsa::VerifyingKey,
    },
}

/// Signs with RustCrypto (`rsa`, `p256`): RS256 is RSASSA-PKCS1-v1_5 with SHA-256, ES256 is
/// ECDSA P-256 with SHA-256 as raw r||s (64 bytes). Both are deterministic (no randomness used).
pub struct RustCryptoSigner {
    public: Vec<PublicKey>,
    pairs: Vec<KeyPair>,
}

impl RustCryptoSigner {
    /// Builds the signer from a GATEHOUSE_PRIVATE_KEY value (see [`crate::keys`]).
    pub fn from_secret(value: &str) -> Result<Self, InternalError> {
        let mut public = Vec::new();
        let mut pairs = Vec::new();
        for (index, key) in parse_private_keys(value)?.into_iter().enumerate() {
            let bad = || InternalError::new(format!("GATEHOUSE_PRIVATE_KEY: key {} is not usable", index + 1));
            let mut jwk = Map::new();
            let pair = match key.alg {
                SigningAlg::RS256 => {
                    let private = rsa::RsaPrivateKey::from_pkcs8_der(&key.pkcs8).map_err(|_| bad())?;
                    jwk.insert("kty".into(), "RSA".into());
                    jwk.insert("n".into(), b64url(&private.n().to_bytes_be()).into());
                    jwk.insert("e".into(), b64url(&private.e().to_bytes_be()).into());
                    let signing = pkcs1v15::SigningKey::<Sha256>::new(private);
                    let verifying = signing.verifying_key();
                    KeyPair::Rsa(Box::new((signing, verifying)))
                }
                SigningAlg::ES256 => {
                    let signing = p256::ecdsa::SigningKey::from_pkcs8_der(&key.pkcs8).map_err(|_| bad())?;
                    let verifying = *signing.verifying_key();
                    let point = verifying.to_encoded_point(false);
                    let (Some(x), Some(y)) = (point.x(), point.y()) else {
                        return Err(bad());
                    };
                    jwk.insert("kty".into(), "EC".into());
                    jwk.insert("crv".into(), "P-256".into());
                    jwk.insert("x".into(), b64url(x).into());
                    jwk.insert("y".into(), b64url(y).into());
                    KeyPair::Ec { signing, verifying }
                }
            };
            let kid = jwk_thumbprint(&jwk);
            public.push(PublicKey {
                kid,
                alg: key.alg,
                jwk,
                active: key.active,
            });
            pairs.push(pair);
        }
        Ok(RustCryptoSigner { public, pairs })
    }

    fn find(&self, kid: &str, alg: SigningAlg) -> Option<&KeyPair> {
        self.public
            .iter()
            .zip(&self.pairs)
            .find(|(p, _)| p.kid == kid && p.alg == alg)
            .map(|(_, k)| k)
    }
}

#[async_trait(?Send)]
impl Signer for RustCryptoSigner {
    fn public_keys(&self) -> &[PublicKey] {
        &self.public
    }

    async fn sign(&self, alg: SigningAlg, input: &[u8]) -> Result<(String, Vec<u8>), InternalError> {
        let (public, pair) = self
            .public
            .iter()
            .zip(&self.pairs)
            .find(|(p, _)| p.alg == alg && p.active)
            .ok_or_else(|| InternalError::new(format!("no active {} key", alg.as_str())))?;
        let signature = match pair {
            KeyPair::Rsa(rsa_pair) => rsa_pair
                .0
                .try_sign(input)
                .map_err(|_| InternalError::new("RS256 signing failed"))?
                .to_vec(),
            KeyPair::Ec { signing, .. } => {
                let sig: p256::ecdsa::Signature = signing
                    .try_sign(input)
                    .map_err(|_| InternalError::new("ES256 signing failed"))?;
                sig.to_bytes().to_vec()
            }
        };
        Ok((public.kid.clone(), signature))
    }

    async fn verify(&self, kid: &str, alg: SigningAlg, input: &[u8], signature: &[u8]) -> Result<bool, InternalError> {
        Ok(match self.find(kid, alg) {
            None => false,
            Some(KeyPair::Rsa(pair)) => match pkcs1v15::Signature::try_from(signature) {
                Ok(sig) => pair.1.verify(input, &sig).is_ok(),
                Err(_) => false,
            },
            Some(KeyPair::Ec { verifying, .. }) => match p256::ecdsa::Signature::from_slice(signature) {
                Ok(sig) => verifying.verify(input, &sig).is_ok(),
                Err(_) => false,
            },
        })
    }
}

/// A GATEHOUSE_PRIVATE_KEY value for tests: base64 of [`RSA_A_PKCS8_PEM`] (active RS256) and
/// [`EC_B_SEC1_PEM`] (active ES256, SEC1 with its EC PARAMETERS block).
pub fn test_secret() -> String {
    b64_encode(format!("{RSA_A_PKCS8_PEM}{EC_B_SEC1_PEM}").as_bytes())
}

/// [`test_secret`] after an RSA rotation: the new key [`RSA_B_PKCS1_PEM`] (PKCS#1) signs, the old
/// [`RSA_A_PKCS8_PEM`] is retired (still published and verifying), the EC key is unchanged.
pub fn test_secret_rotated() -> String {
    b64_encode(format!("{RSA_B_PKCS1_PEM}{RSA_A_PKCS8_PEM}{EC_B_SEC1_PEM}").as_bytes())
}

/// RFC 7638 thumbprints of the test keys, computed independently (Python `cryptography`).
pub const RSA_A_KID: &str = "zwGNgrfqTRVHJI8ci2lBNboezabFcFNnxdfCx5p8O8E";
pub const RSA_B_KID: &str = "7jB0n26Nmj_RWamGVcravpZ18-0Uw2ybvFTESNDHwBM";
pub const EC_A_KID: &str = "F3p5Fmy3k4D3HapFvUfPFL0TtCDEaFsh4Nk2hdYFvD8";
pub const EC_B_KID: &str = "OS_MVZVEGARbnhq3JoaM5bq6Gsb3Qs1UBHAO9Jjzbzc";

/// RSA 2048, PKCS#8 (`openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`). Test only.
pub const RSA_A_PKCS8_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQCkn+BkODDvjyrX
lEkDpD/qZXY+iqcNFdXoM0qe94MIYam1YqBy8Uaofvqzl0C6+DPIEQ9m1nlPi+lc
D40oN5c5+u9VVnbB2U0hW0Arfx6VRCXLzANAkFV5G87jng9/B+JHLHCCWpgs0GFk
Gkjf2BAKRf7kHaHLp3rqGBDnB0jufhTPsDVPu7X7Rzu+Emb/1PbK5tspB7QWc8fG
Wf8HQFJWJr/L6g1I0d8ibcj+52h4Se4oATqnPmXktxcqXe1PMnuTSdzVapflFmZ4
QERMsWc28zLpu8mEYzRBDGzFnIIIsz92ZON+AlyKM2vC7q9E6/zvFav9ZVe6qaSz
UaGKyeOtAgMBAAECggEAFOG2u9+ozWpSm9/SVyTpepj+I7bAs9c2N+rxpzJsK47/
0OM+yPWz6cGZmVgxPMYpA1KuqnPAFYgAxM2wMQ7EHvWmkCOUksg2kWmavSm1vmdT
iANL0k+8l80gNB0jiBB+8lo/tzk4nk6cW+89mS818aepSlQ75rJK1BDTbAqvhJjD
fazNkcqixYfUdrPPyLpUs5NVuK6juuk4NcLbd5KtjD0GkuDunfCAlsHQ79X4YssJ
xlozkZD1ER8a+44js+/vCcEyRSxzGWSHqLBq7ZyUhV3jy0g0L6NAJQn7Gtm6I+tY
rh0MIM1gHOddk2hEDBK09DvG/Td+t95NcKc8AeyW/QKBgQDT7ags1UFUt0OD4yM2
QewC9aDbYUwZMGwXuESixoeXx2fPy8+Wphj08dJIOfF1FruBAsJ6BOuR8OgbS0qM
OLnowcexNMrx3kavj2W9CKu1c6DfSwc39mTwrcW/Vuuw6axmbyGUtA1D8Q23Y1Zb
JtNoHwwR/fevJDVI2v+BT5OBXwKBgQDG2+zFmpdPXltMu7r6R4eoS6YaBGNdQrG0
NoPwTXdgszCL600TS2I10JNh7GGibY2rdnvClNGvNhrr5i+En31g2PQkeLjE2355
rp4evwCb7kyIPljwSQ9sbnjWnFWSN7WfXZ7yWLVKihLfvW7FnjYc7dMeO3bGofDC
+rK9ntD6cwKBgQCLS7YyYakjSaGy2mSWkRXTjCdCit094TnrDU7vvpX5CTQOvOOh
HWNh/GA+4Pb4Aw0TawDwurMrpbCp3/8L020+s7/RleWevH6xfgtdCIn0JiAjJGmG
Owl1uII1lagtDCoo2fq0hvQBKDvfwgdMumRSF7YTTV6zW5U6Ydd24xsM+QKBgDFF
YH79dKwXput2QDeu7W/HfppHqA79bWZHc51gtEljXI3ueSRksyq+SSYkGXTTTBzF
uJhXozSUZUs5t2BW3AvY9XTr7GvqLoYbu9XGYXJBMvk26XZvw8CMBqi2B4W5A+k+
mxlU3WZgm5iQKRgRwTqduodtGFrS2QKWdx8AcKr9AoGBAKmZmp3ggYmtpQlqxjef
zJmPpT2Yio4/afujTlNTFld7wDPqSaLVPSZ7jsvqgRiQJQ846dzyg3ditkPDgv44
4CUJ+X1r4ol1/VGsSnZ3sUyNE43qd/qZNz0Fv1wI9yfk8Pl88yJIzsqgP8gzRnxJ
expfphkVBF9LLjgsftgLpt+d
-----END PRIVATE KEY-----
";
/// RSA 2048, PKCS#1 (`openssl genrsa -traditional 2048`). Test only.
pub const RSA_B_PKCS1_PEM: &str = "-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEA13D20bIlrIGfyUUG2SRX3mMLCd98TGqp4MIN5zSYXBHY1CEE
n+SSnh9vjRojdggKUtTe6ke0LEJPXlQhLIKDoArtxlzy6PQiIQD5MTZP1pL7WTIK
+mAznq83EJjHwSQ1Dm+KujrEjrk+Ux0pli7SX5EDmosE4n58DnCps0tswgxxPLZm
vlXcCr7M1RLHUvYqpouxGatstNVXM9yDuhK6MjPwbTgt9JYQQEVjNZ0R2wTG26p+
7ezoxGLrcTHJ1Un/0ySriRdXSeF6LVn3eZpMAGQXQ7PKP/616roaj1Hxyf34REWt
GhyM//J2csUlNAyWqj6YktqpUbVsO6stXdNFfQIDAQABAoIBACxnTH/I02n8J3ZA
w1oS2wdra3WD+eb4Hv5DkMED/pkPVpzWF1FrN2reuMugxQlJO/N5i15HHBP5MMmU
1meJmN5uEjbNpoUr+DLMNBAYDRmBHsvx/ABBvrHolBVYH+enckYA6FtczHFMLdPM
kWsySErJJTB/kairAB+rydY55/cQX5IOj1rhTAhQ6tRKaw6qHWdwfSSukzX2G75c
B1i0y2X0IQKXtWfofYqs7ezh9+xxfiTjIV3vhH2mJ6/gxQ4w2KMx+9MiVkJ8wEJO
+ewxUR6Suj+s+zkCrh8uNOYba4Qj7edgjEbkGMLsOhHgkx/huwotnrW1eZB/UlcM
FiPyflMCgYEA81ZWkg65V2/9xMKIwnb/LgpCyQwF4xelA/MvZRPBy1IqgYhkEWPE
joRkTxuWrIqWWr4zgqe5dPcUCf1Y73dcGhyH0CkQXq5x0qLQQDmINyweXUbpO/aa
AeJpSN8VHsiLpVk+Gn+GMWYYbfBrEqM8liMo/BeirafQSIt+3Wik3C8CgYEA4qcB
II2//6Q9nNN9Op3Cd+BHV2BtPctLQx/uRjfIaq/K/FAOqkfCO2higyNXlQm/9DvX
IFbmeA278hBPSbtu1+y1zEb6gJ9loihU2mT0/jFNpHzeD0439qmTY1T5v85B0HZx
0S0tZXchjOZBwasEWaTMfrD7tYpI2esWj5SWchMCgYB+irqQT+ngZ5PfW47FGh7P
sXRTmtYA543fxPozpReVhVAndmcbh/dyabTEUsODTLqty9V7r39JLSgVndM/DKIv
zgBuprwlkLAOaq7Dh2en0WCk/zhQ/4fNTRGVXLVeAcplHUinfQOq8r3nhiwYUB00
smog1qW5ithMsYYy27VH7wKBgF6CxTWN5kHzer2qcs2+exkBrL4Ct4rM+tVCu1kM
acYTB9GukG7w/U1Iecu1MRA0wJZXXZ1enzvwfi6yHl3gipf/XM+RyWNZFEhKCRgI
gSB97qJobzByrWNt0sfY50vT9h23Rj6zV/q3coYOfd0EMwwubBdoNY293CMCpKW6
kAGBAoGBAN73LhHHL8nc7sRrjHOJP1fZ7jsogx/415xpk+gJRp7yRfB5GGWIlMhl
Q11GhZwlJrlO93S/GPs4yAZMU8Y+s8QixPWLeDQczc6/q3JilDTC4QixSHso47zj
6JGs3dEMp5ZTv5nyISbQfJsLDJsdZ8llT2GsGtmq00lgD/BzngiD
-----END RSA PRIVATE KEY-----
";
/// P-256, PKCS#8 (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`). Test only.
pub const EC_A_PKCS8_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgmx2dhlIlr0mUiXXW
wHZVT1cKl2puxBa2de+mveBWvlihRANCAASktN2eoO425WpdgPdWk2oV6OyciSBu
VvnzV4TZCjCWS6vs57iyy0b5n1+IrurSbXqkOkYiXsXsOOQ0CuKL8uVG
-----END PRIVATE KEY-----
";
/// P-256, SEC1 after an EC PARAMETERS block (`openssl ecparam -name prime256v1 -genkey`). Test only.
pub const EC_B_SEC1_PEM: &str = "-----BEGIN EC PARAMETERS-----
BggqhkjOPQMBBw==
-----END EC PARAMETERS-----
-----BEGIN EC PRIVATE KEY-----
MHcCAQEEID/VDpMgFfTqWv3PeNxdsZ5Tr0a9weO9Xuk4rgx2S42hoAoGCCqGSM49
AwEHoUQDQgAEw0p3olRZYmqw57ZezqM1WUNw6cZR4N3/YSsFdcJLwmHvJ1cCAOj6
fR31HRu839Wn8GN6TsLKz+TbW4R8LgixAQ==
-----END EC PRIVATE KEY-----
";
/// The SubjectPublicKeyInfo of RSA_A_PKCS8_PEM (`openssl pkey -pubout`).
pub const RSA_A_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEApJ/gZDgw748q15RJA6Q/
6mV2PoqnDRXV6DNKnveDCGGptWKgcvFGqH76s5dAuvgzyBEPZtZ5T4vpXA+NKDeX
OfrvVVZ2wdlNIVtAK38elUQly8wDQJBVeRvO454PfwfiRyxwglqYLNBhZBpI39gQ
CkX+5B2hy6d66hgQ5wdI7n4Uz7A1T7u1+0c7vhJm/9T2yubbKQe0FnPHxln/B0BS
Via/y+oNSNHfIm3I/udoeEnuKAE6pz5l5LcXKl3tTzJ7k0nc1WqX5RZmeEBETLFn
NvMy6bvJhGM0QQxsxZyCCLM/dmTjfgJcijNrwu6vROv87xWr/WVXuqmks1Ghisnj
rQIDAQAB
-----END PUBLIC KEY-----
";

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    #[test]
    fn kids_are_rfc7638_thumbprints_matching_an_independent_computation() {
        let signer = RustCryptoSigner::from_secret(&test_secret_rotated()).unwrap();
        let keys: Vec<(&str, SigningAlg, bool)> = signer
            .public_keys()
            .iter()
            .map(|k| (k.kid.as_str(), k.alg, k.active))
            .collect();
        assert_eq!(
            keys,
            vec![
                (RSA_B_KID, SigningAlg::RS256, true),
                (RSA_A_KID, SigningAlg::RS256, false),
                (EC_B_KID, SigningAlg::ES256, true),
            ]
        );
        let ec = RustCryptoSigner::from_secret(&format!("{RSA_A_PKCS8_PEM}{EC_A_PKCS8_PEM}")).unwrap();
        assert_eq!(ec.public_keys()[1].kid, EC_A_KID);
    }

    #[test]
    fn public_jwks_hold_only_public_members() {
        let signer = RustCryptoSigner::from_secret(&test_secret()).unwrap();
        let members: Vec<Vec<&str>> = signer
            .public_keys()
            .iter()
            .map(|k| k.jwk.keys().map(String::as_str).collect())
            .collect();
        let mut rsa = members[0].clone();
        rsa.sort_unstable();
        let mut ec = members[1].clone();
        ec.sort_unstable();
        assert_eq!(rsa, ["e", "kty", "n"]);
        assert_eq!(ec, ["crv", "kty", "x", "y"]);
        assert_eq!(signer.public_keys()[0].jwk["e"], "AQAB");
    }

    #[test]
    fn signs_and_verifies_both_algorithms() {
        let signer = RustCryptoSigner::from_secret(&test_secret()).unwrap();
        for (alg, len) in [(SigningAlg::RS256, 256), (SigningAlg::ES256, 64)] {
            let (kid, sig) = block_on(signer.sign(alg, b"input")).unwrap();
            assert_eq!(sig.len(), len);
            assert!(block_on(signer.verify(&kid, alg, b"input", &sig)).unwrap());
            assert!(!block_on(signer.verify(&kid, alg, b"inpuT", &sig)).unwrap());
            let other = if alg == SigningAlg::RS256 {
                SigningAlg::ES256
            } else {
                SigningAlg::RS256
            };
            assert!(!block_on(signer.verify(&kid, other, b"input", &sig)).unwrap());
        }
    }

    #[test]
    fn retired_key_verifies_but_never_signs() {
        let old = RustCryptoSigner::from_secret(&test_secret()).unwrap();
        let rotated = RustCryptoSigner::from_secret(&test_secret_rotated()).unwrap();
        let (kid, sig) = block_on(old.sign(SigningAlg::RS256, b"input")).unwrap();
        assert_eq!(kid, RSA_A_KID);
        assert!(block_on(rotated.verify(&kid, SigningAlg::RS256, b"input", &sig)).unwrap());
        let (kid, _) = block_on(rotated.sign(SigningAlg::RS256, b"input")).unwrap();
        assert_eq!(kid, RSA_B_KID);
    }
}
