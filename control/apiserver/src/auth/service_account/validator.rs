//! Verifying a bearer token that claims to be one of ours: the issuer is
//! read first (unverified) so a token of another kind is left to other
//! authenticators, then the signature against the configured keys (by
//! `kid` where the header names one), then the claims (`claims::validate`).
//! No storage: whether the objects still exist is `authenticator.rs`'s.

use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::Validation;
use serde_json::Value;

use super::claims::{self, Claims, ServiceAccountInfo};
use super::keys::VerifyingKey;

pub struct TokenValidator {
    /// Every `--service-account-issuer`: tokens of any of them are accepted.
    issuers: Vec<String>,
    keys: Vec<VerifyingKey>,
}

/// The `iss` of a JWT-shaped token, read without verifying anything.
fn unverified_issuer(token: &str) -> Option<String> {
    let mut parts = token.split('.');
    let (_, payload, _, None) = (parts.next()?, parts.next()?, parts.next()?, parts.next()) else {
        return None;
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.get("iss")?.as_str().map(str::to_string)
}

impl TokenValidator {
    pub fn new(issuers: Vec<String>, keys: Vec<VerifyingKey>) -> Self {
        TokenValidator { issuers, keys }
    }

    /// None when `token` is not a JWT from one of our issuers; otherwise
    /// who it names, or why it is refused.
    pub fn verify(
        &self,
        token: &str,
        now: i64,
        target: &[String],
    ) -> Option<Result<ServiceAccountInfo, String>> {
        let iss = unverified_issuer(token)?;
        if !self.issuers.contains(&iss) {
            return None;
        }
        Some(
            self.verified_claims(token)
                .and_then(|c| claims::validate(&c, now, target).map_err(|e| e.to_string())),
        )
    }

    fn verified_claims(&self, token: &str) -> Result<Claims, String> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| format!("service account token header is malformed: {e}"))?;
        let mut candidates = self
            .keys
            .iter()
            .filter(|k| k.alg == header.alg)
            .filter(|k| header.kid.as_ref().is_none_or(|kid| *kid == k.kid))
            .peekable();
        if candidates.peek().is_none() {
            return Err(
                "service account token is signed by a key this server does not have".into(),
            );
        }
        let mut validation = Validation::new(header.alg);
        // The claims are checked by `claims::validate`, with Kubernetes'
        // rules and messages; here only the signature.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        validation.leeway = 0;
        for k in candidates {
            match jsonwebtoken::decode::<Claims>(token, &k.key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => continue,
                Err(e) => return Err(format!("service account token is malformed: {e}")),
            }
        }
        Err("service account token signature is invalid".into())
    }
}

#[cfg(test)]
mod tests {
    use super::super::claims::{ClaimError, KubernetesClaims, ObjectRef};
    use super::super::issuer::{Binding, IssuerOptions, TokenIssuer, TokenSpec};
    use super::super::keys;
    use super::*;

    const NOW: i64 = 1_700_000_000;
    const ISS: &str = "https://kubernetes.default.svc.cluster.local";

    fn issuer() -> (TokenIssuer, VerifyingKey) {
        let dir = tempfile::tempdir().unwrap();
        let (private, _) = keys::generate().unwrap();
        let p = dir.path().join("sa.key");
        std::fs::write(&p, private).unwrap();
        let key = keys::load_signing_key(&p).unwrap();
        let public = key.public.clone();
        let options = IssuerOptions {
            issuer: ISS.into(),
            api_audiences: vec![ISS.into()],
            max_expiration_seconds: None,
            extend_expiration: true,
        };
        (TokenIssuer::new(key, options), public)
    }

    fn spec(lifetime: i64) -> TokenSpec<'static> {
        TokenSpec {
            namespace: "ns",
            service_account: ObjectRef {
                name: "sa".into(),
                uid: "u1".into(),
            },
            binding: Binding::default(),
            audiences: vec![ISS.into()],
            lifetime,
            warn_after: None,
            now: NOW,
            jti: "j1".into(),
        }
    }

    #[test]
    fn issued_tokens_verify_and_expire() {
        let (iss, public) = issuer();
        let v = TokenValidator::new(vec![ISS.into()], vec![public]);
        let token = iss.sign(&iss.claims(spec(600))).unwrap();
        let info = v.verify(&token, NOW + 1, &[ISS.into()]).unwrap().unwrap();
        assert_eq!((info.name.as_str(), info.uid.as_str()), ("sa", "u1"));
        let late = v.verify(
            &token,
            NOW + 600 + claims::LEEWAY_SECONDS + 1,
            &[ISS.into()],
        );
        assert_eq!(late, Some(Err(ClaimError::Expired.to_string())));
        let other = v.verify(&token, NOW, &["other".into()]).unwrap();
        assert!(other
            .unwrap_err()
            .contains("invalid for the target audiences"));
    }

    #[test]
    fn foreign_tokens_are_not_ours_and_forged_ones_fail() {
        let (iss, public) = issuer();
        let (stranger, _) = issuer();
        let v = TokenValidator::new(vec![ISS.into()], vec![public.clone()]);
        assert_eq!(v.verify("not-a-jwt", NOW, &[ISS.into()]), None);
        assert_eq!(v.verify("a.b.c", NOW, &[ISS.into()]), None);
        // Another issuer's token is someone else's to judge.
        let mut c = iss.claims(spec(600));
        c.iss = "https://elsewhere".into();
        assert_eq!(v.verify(&iss.sign(&c).unwrap(), NOW, &[ISS.into()]), None);
        // Our issuer, another key: refused, by kid or by signature.
        let forged = stranger.sign(&stranger.claims(spec(600))).unwrap();
        let e = v.verify(&forged, NOW, &[ISS.into()]).unwrap().unwrap_err();
        assert!(e.contains("does not have"), "{e}");
        let v_any_kid = TokenValidator::new(
            vec![ISS.into()],
            vec![VerifyingKey {
                kid: keys::key_id(b"x"),
                ..public
            }],
        );
        let mut parts: Vec<String> = forged.split('.').map(str::to_string).collect();
        // Drop the kid: every key of the algorithm is tried.
        parts[0] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256"}"#);
        let e = v_any_kid
            .verify(&parts.join("."), NOW, &[ISS.into()])
            .unwrap()
            .unwrap_err();
        assert!(e.contains("signature is invalid"), "{e}");
        // A tampered payload breaks the signature.
        let good = iss.sign(&iss.claims(spec(600))).unwrap();
        let mut parts: Vec<&str> = good.split('.').collect();
        let evil = iss.claims(TokenSpec {
            service_account: ObjectRef {
                name: "admin".into(),
                uid: "u1".into(),
            },
            ..spec(600)
        });
        let evil = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&evil).unwrap());
        parts[1] = &evil;
        let e = v
            .verify(&parts.join("."), NOW, &[ISS.into()])
            .unwrap()
            .unwrap_err();
        assert!(e.contains("signature is invalid"), "{e}");
    }

    #[test]
    fn claims_carry_the_binding_and_warn_after() {
        let (iss, _) = issuer();
        let pod = ObjectRef {
            name: "p".into(),
            uid: "pu".into(),
        };
        let c = iss.claims(TokenSpec {
            binding: Binding {
                pod: Some(pod.clone()),
                ..Default::default()
            },
            warn_after: Some(3607),
            ..spec(100)
        });
        assert_eq!(c.sub, "system:serviceaccount:ns:sa");
        assert_eq!((c.exp, c.iat, c.nbf), (NOW + 100, Some(NOW), Some(NOW)));
        assert_eq!(
            c.kubernetes,
            KubernetesClaims {
                namespace: "ns".into(),
                serviceaccount: ObjectRef {
                    name: "sa".into(),
                    uid: "u1".into()
                },
                pod: Some(pod),
                warnafter: Some(NOW + 3607),
                ..Default::default()
            }
        );
    }
}
