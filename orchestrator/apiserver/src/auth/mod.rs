//! Who is asking and whether they may: authentication turns a request's credentials
//! (a client certificate, a bearer token, or none) into a [`UserInfo`], which travels
//! with the request in its extensions; authorization decides from the user and the
//! request's attributes (verb, group, resource, namespace, name) whether it goes on.

pub mod authn;
pub mod authz;
pub mod bootstrap;
pub mod impersonation;
pub mod jwt;
pub mod keys;
pub mod reviews;
pub mod service_accounts;
pub mod user;

pub use authn::Authenticator;
pub use user::UserInfo;
