//! The Kubernetes REST API on etcd: storage, one registry per resource,
//! watch, patch, validation and defaulting. It trusts the `auth::User` that
//! the server's authentication layer put in the request's extensions and
//! asks an `auth::Authorizer` before every verb; it never parses credentials.
