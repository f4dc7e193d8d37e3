//! Bearer tokens, whatever their kind: the static token file, then
//! service-account JWTs. One entry point for the serving edge (every
//! request's `Authorization` header) and for TokenReview, so a review
//! answers exactly what a request with the token would get.

use super::service_account::{ServiceAccountAuthenticator, ServiceAccountInfo};
use super::token_file::TokenFile;
use super::{User, AUTHENTICATED_GROUP};

/// A token that authenticated: the user, the audiences it is valid for
/// among those asked, and (for a service-account token) what it names.
#[derive(Clone, Debug)]
pub struct Authenticated {
    pub user: User,
    pub audiences: Vec<String>,
    pub service_account: Option<ServiceAccountInfo>,
}

pub struct BearerAuthenticator {
    file: TokenFile,
    service_accounts: Option<ServiceAccountAuthenticator>,
    /// `--api-audiences`: the audiences of an ordinary request.
    api_audiences: Vec<String>,
}

impl BearerAuthenticator {
    pub fn new(
        file: TokenFile,
        service_accounts: Option<ServiceAccountAuthenticator>,
        api_audiences: Vec<String>,
    ) -> Self {
        BearerAuthenticator {
            file,
            service_accounts,
            api_audiences,
        }
    }

    /// Only the token file (no service-account tokens).
    pub fn file_only(file: TokenFile) -> Self {
        Self::new(
            file,
            None,
            vec![super::service_account::DEFAULT_ISSUER.into()],
        )
    }

    pub fn api_audiences(&self) -> &[String] {
        &self.api_audiences
    }

    /// Who `token` is for `audiences` (None: the API audiences), or why
    /// it is refused.
    pub async fn authenticate(
        &self,
        token: &str,
        audiences: Option<&[String]>,
    ) -> Result<Authenticated, String> {
        let target = audiences.unwrap_or(&self.api_audiences);
        if let Some(u) = self.file.user(token) {
            // The token file knows no audiences: its tokens are good for
            // the API's own (Kubernetes' audience-agnostic wrapper).
            let audiences: Vec<String> = target
                .iter()
                .filter(|a| self.api_audiences.contains(a))
                .cloned()
                .collect();
            if audiences.is_empty() {
                return Err(format!(
                    "token audiences {:?} is invalid for the target audiences {target:?}",
                    self.api_audiences
                ));
            }
            return Ok(Authenticated {
                user: with_authenticated(u.clone()),
                audiences,
                service_account: None,
            });
        }
        let now = super::service_account::now();
        match &self.service_accounts {
            Some(sa) => match sa.authenticate(token, now, target).await {
                Some(Ok(info)) => Ok(Authenticated {
                    user: info.user(),
                    audiences: info.audiences.clone(),
                    service_account: Some(info),
                }),
                Some(Err(e)) => Err(e),
                None => Err("invalid bearer token".into()),
            },
            None => Err("invalid bearer token".into()),
        }
    }
}

pub fn with_authenticated(mut u: User) -> User {
    if !u.groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
        u.groups.push(AUTHENTICATED_GROUP.into());
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> TokenFile {
        TokenFile::parse("tok,alice,1,\"dev\"\n").unwrap()
    }

    #[tokio::test]
    async fn file_tokens_are_good_for_the_api_audiences_only() {
        let b = BearerAuthenticator::new(file(), None, vec!["api".into()]);
        let a = b.authenticate("tok", None).await.unwrap();
        assert_eq!(a.user.name, "alice");
        assert_eq!(a.user.groups, vec!["dev", AUTHENTICATED_GROUP]);
        assert_eq!(a.audiences, vec!["api"]);
        let both = ["x".to_string(), "api".to_string()];
        assert_eq!(
            b.authenticate("tok", Some(&both)).await.unwrap().audiences,
            vec!["api"]
        );
        assert!(b.authenticate("tok", Some(&["x".into()])).await.is_err());
        assert_eq!(
            b.authenticate("nope", None).await.unwrap_err(),
            "invalid bearer token"
        );
    }
}
