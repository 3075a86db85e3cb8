//! `/v3/auth/*`: enable, disable, status, authenticate, and users' and roles' calls.

use berth_proto::etcdserverpb::auth_server::Auth;
use bytes::Bytes;

use super::{Credentials, Rpc, unary};
use crate::grpc::auth::AuthService;
use crate::http::response::HttpResponse;
use crate::store::Store;

/// The method an auth path names (after `/v3/auth/`).
pub(super) fn method_of(path: &str) -> Option<Rpc> {
    Some(match path {
        "enable" => Rpc::AuthEnable,
        "disable" => Rpc::AuthDisable,
        "status" => Rpc::AuthStatus,
        "authenticate" => Rpc::Authenticate,
        "user/add" => Rpc::UserAdd,
        "user/get" => Rpc::UserGet,
        "user/list" => Rpc::UserList,
        "user/delete" => Rpc::UserDelete,
        "user/changepw" => Rpc::UserChangePassword,
        "user/grant" => Rpc::UserGrantRole,
        "user/revoke" => Rpc::UserRevokeRole,
        "role/add" => Rpc::RoleAdd,
        "role/get" => Rpc::RoleGet,
        "role/list" => Rpc::RoleList,
        "role/delete" => Rpc::RoleDelete,
        "role/grant" => Rpc::RoleGrantPermission,
        "role/revoke" => Rpc::RoleRevokePermission,
        _ => return None,
    })
}

pub(super) async fn serve(rpc: Rpc, body: &Bytes, store: &Store, credentials: &Credentials) -> HttpResponse {
    let auth = AuthService { store: store.clone() };
    match rpc {
        Rpc::AuthEnable => unary(body, |r| auth.auth_enable(credentials.request(r))).await,
        Rpc::AuthDisable => unary(body, |r| auth.auth_disable(credentials.request(r))).await,
        Rpc::Authenticate => unary(body, |r| auth.authenticate(credentials.request(r))).await,
        Rpc::UserAdd => unary(body, |r| auth.user_add(credentials.request(r))).await,
        Rpc::UserGet => unary(body, |r| auth.user_get(credentials.request(r))).await,
        Rpc::UserList => unary(body, |r| auth.user_list(credentials.request(r))).await,
        Rpc::UserDelete => unary(body, |r| auth.user_delete(credentials.request(r))).await,
        Rpc::UserChangePassword => unary(body, |r| auth.user_change_password(credentials.request(r))).await,
        Rpc::UserGrantRole => unary(body, |r| auth.user_grant_role(credentials.request(r))).await,
        Rpc::UserRevokeRole => unary(body, |r| auth.user_revoke_role(credentials.request(r))).await,
        Rpc::RoleAdd => unary(body, |r| auth.role_add(credentials.request(r))).await,
        Rpc::RoleGet => unary(body, |r| auth.role_get(credentials.request(r))).await,
        Rpc::RoleList => unary(body, |r| auth.role_list(credentials.request(r))).await,
        Rpc::RoleDelete => unary(body, |r| auth.role_delete(credentials.request(r))).await,
        Rpc::RoleGrantPermission => unary(body, |r| auth.role_grant_permission(credentials.request(r))).await,
        Rpc::RoleRevokePermission => unary(body, |r| auth.role_revoke_permission(credentials.request(r))).await,
        _ => unary(body, |r| auth.auth_status(credentials.request(r))).await,
    }
}
