//! The impersonation middleware: a request carrying `Impersonate-*`
//! headers runs as the identity they name, once the authorizer allows the
//! caller to `impersonate` it (`auth::impersonate`); else 403 (400 for
//! headers that make no sense, 401 without credentials).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::{impersonate, User};
use crate::status::ApiError;
use crate::ApiServer;

pub async fn layer(State(api): State<Arc<ApiServer>>, mut req: Request, next: Next) -> Response {
    let asked = {
        let headers = req
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)));
        impersonate::parse(headers)
    };
    let asked = match asked {
        Ok(r) if r.is_empty() => return next.run(req).await,
        Ok(r) => r,
        Err(why) => return ApiError::BadRequest(why).into_response(),
    };
    let Some(requester) = req.extensions().get::<User>().cloned() else {
        return ApiError::Unauthorized.into_response();
    };
    match impersonate::impersonate(&*api.authorizer, &requester, &asked) {
        Ok(user) => {
            tracing::debug!(requester = %requester.name, as_user = %user.name, "impersonating");
            req.extensions_mut().insert(user);
            next.run(req).await
        }
        Err(why) => ApiError::Forbidden(why).into_response(),
    }
}
