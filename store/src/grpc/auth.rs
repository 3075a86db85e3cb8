//! The etcd Auth service, and who a request comes from when auth is on.
//!
//! The caller is etcd's: the user a `token` (or `authorization`) metadata entry names,
//! else, with `--client-cert-auth` on an https client URL, the common name of the
//! client's certificate. With auth off nothing is looked at; with auth on and neither,
//! the request is refused ("user name is empty").
//!
//! While auth is on the Auth API's changes, lists and enable/disable are root's;
//! a user may get itself and the roles it holds; Authenticate and AuthStatus are
//! anyone's.

use berth_proto::berthpb::auth_command::Op;
use berth_proto::etcdserverpb::auth_server::Auth;
use berth_proto::etcdserverpb::{
    AuthDisableRequest, AuthDisableResponse, AuthEnableRequest, AuthEnableResponse, AuthRoleAddRequest,
    AuthRoleAddResponse, AuthRoleDeleteRequest, AuthRoleDeleteResponse, AuthRoleGetRequest, AuthRoleGetResponse,
    AuthRoleGrantPermissionRequest, AuthRoleGrantPermissionResponse, AuthRoleListRequest, AuthRoleListResponse,
    AuthRoleRevokePermissionRequest, AuthRoleRevokePermissionResponse, AuthStatusRequest, AuthStatusResponse,
    AuthUserAddRequest, AuthUserAddResponse, AuthUserChangePasswordRequest, AuthUserChangePasswordResponse,
    AuthUserDeleteRequest, AuthUserDeleteResponse, AuthUserGetRequest, AuthUserGetResponse, AuthUserGrantRoleRequest,
    AuthUserGrantRoleResponse, AuthUserListRequest, AuthUserListResponse, AuthUserRevokeRoleRequest,
    AuthUserRevokeRoleResponse, AuthenticateRequest, AuthenticateResponse, ResponseHeader,
};
use tonic::{Request, Response, Status};

use super::deadline;
use super::status::to_status;
use crate::auth::{AuthError, checks};
use crate::state_machine::AppliedState;
use crate::store::Store;
use crate::tls::ClientConnectInfo;

pub struct AuthService {
    pub store: Store,
}

/// The metadata keys a token travels in: gRPC clients' and the gateway's.
const TOKEN_KEYS: [&str; 2] = ["token", "authorization"];

/// Who makes `request`: None while auth is off (the only cost then is one atomic
/// load); the user otherwise, or etcd's refusal.
pub fn caller<T>(store: &Store, request: &Request<T>) -> Result<Option<String>, Status> {
    if !store.auth().is_enabled() {
        return Ok(None);
    }
    identify(store, request).map(Some).map_err(|e| to_status(e.into()))
}

fn identify<T>(store: &Store, request: &Request<T>) -> Result<String, AuthError> {
    let token = TOKEN_KEYS
        .iter()
        .find_map(|key| request.metadata().get(*key))
        .and_then(|value| value.to_str().ok());
    if let Some(token) = token {
        return store.auth().user_of(token).ok_or(AuthError::InvalidAuthToken);
    }
    if store.config().client_tls.client_cert_auth
        && let Some(name) = request
            .extensions()
            .get::<ClientConnectInfo>()
            .and_then(|info| info.common_name.clone())
    {
        return Ok(name);
    }
    Err(AuthError::UserEmpty)
}

/// Refuses `request` unless auth is off or its caller passes `check`. Answers with
/// the caller and the auth revision it passed at, for [`Store::acting_for`].
pub fn permit<T>(
    store: &Store,
    request: &Request<T>,
    check: impl FnOnce(&AppliedState, &str) -> Result<(), AuthError>,
) -> Result<Option<(String, u64)>, Status> {
    match caller(store, request)? {
        None => Ok(None),
        Some(user) => {
            let revision = store.check_auth(|state| check(state, &user)).map_err(to_status)?;
            Ok(Some((user, revision)))
        }
    }
}

/// Refuses `request` unless auth is off or its caller holds the root role.
pub fn permit_admin<T>(store: &Store, request: &Request<T>) -> Result<(), Status> {
    permit(store, request, |state, user| checks::admin(&state.auth, user)).map(drop)
}

/// Refuses `request` unless auth is off or its caller is a user the store knows.
pub fn permit_user<T>(store: &Store, request: &Request<T>) -> Result<Option<(String, u64)>, Status> {
    permit(store, request, |state, user| checks::known_user(&state.auth, user))
}

impl AuthService {
    fn header(&self) -> Option<ResponseHeader> {
        Some(self.store.header(self.store.current_revision()))
    }

    /// Proposes a change that only root may make while auth is on.
    async fn change<T>(&self, request: &Request<T>, op: Op) -> Result<Option<ResponseHeader>, Status> {
        permit_admin(&self.store, request)?;
        let store = deadline::store_for(&self.store, request).map_err(to_status)?;
        let response = store.auth_change(op).await.map_err(to_status)?;
        Ok(response.header)
    }

    async fn state<T>(&self, request: &Request<T>) -> Result<crate::auth::AuthState, Status> {
        deadline::store_for(&self.store, request)
            .map_err(to_status)?
            .auth_state_now()
            .await
            .map_err(to_status)
    }
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_status(&self, request: Request<AuthStatusRequest>) -> Result<Response<AuthStatusResponse>, Status> {
        let state = self.state(&request).await?;
        Ok(Response::new(AuthStatusResponse {
            header: self.header(),
            enabled: state.enabled,
            auth_revision: state.revision,
        }))
    }

    async fn auth_enable(&self, request: Request<AuthEnableRequest>) -> Result<Response<AuthEnableResponse>, Status> {
        let op = Op::Enable(*request.get_ref());
        let header = self.change(&request, op).await?;
        Ok(Response::new(AuthEnableResponse { header }))
    }

    async fn auth_disable(
        &self,
        request: Request<AuthDisableRequest>,
    ) -> Result<Response<AuthDisableResponse>, Status> {
        let op = Op::Disable(*request.get_ref());
        let header = self.change(&request, op).await?;
        Ok(Response::new(AuthDisableResponse { header }))
    }

    async fn authenticate(
        &self,
        request: Request<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        let store = deadline::store_for(&self.store, &request).map_err(to_status)?;
        let req = request.into_inner();
        let token = store.authenticate(&req.name, &req.password).await.map_err(to_status)?;
        Ok(Response::new(AuthenticateResponse {
            header: self.header(),
            token,
        }))
    }

    async fn user_add(&self, request: Request<AuthUserAddRequest>) -> Result<Response<AuthUserAddResponse>, Status> {
        let op = Op::UserAdd(request.get_ref().clone());
        let header = self.change(&request, op).await?;
        Ok(Response::new(AuthUserAddResponse { header }))
    }

    async fn user_get(&self, request: Request<AuthUserGetRequest>) -> Result<Response<AuthUserGetResponse>, Status> {
        let name = request.get_ref().name.clone();
        // A user may read itself.
        permit(&self.store, &request, |state, user| {
            if user == name {
                Ok(())
            } else {
                checks::admin(&state.auth, user)
            }
        })?;
        let state = self.state(&request).await?;
        let user = state
            .users
            .get(&name)
            .ok_or_else(|| to_status(AuthError::UserNotFound.into()))?;
        Ok(Response::new(AuthUserGetResponse {
            header: self.header(),
            roles: user.roles.iter().cloned().collect(),
        }))
    }

    async fn user_list(&self, request: Request<AuthUserListRequest>) -> Result<Response<AuthUserListResponse>, Status> {
        permit_admin(&self.store, &request)?;
        let state = self.state(&request).await?;
        Ok(Response::new(AuthUserListResponse {
            header: self.header(),
            users: state.users.keys().cloned().collect(),
        }))
    }

    async fn user_delete(
        &self,
        request: Request<AuthUserDeleteRequest>,
    ) -> Result<Response<AuthUserDeleteResponse>, Status> {
        let op = Op::UserDelete(request.get_ref().clone());
        let header = self.change(&request, op).await?;
        Ok(Response::new(AuthUserDeleteResponse { header }))
    }

    async fn user_change_password(
        &self,
        request: Request<AuthUserChangePasswordRequest>,
    ) -> Result<Response<AuthUserChangePasswordResponse>, Status> {
        let op = Op::UserChangePassword(request.get_ref().clone());
        let header = self.change(&request, op).await?;
        Ok(Response::new(AuthUserChangePasswordResponse { header }))
    }

    async fn user_grant_role(
        &self,
        request: Request<AuthUserGrantRoleRequest>,
    ) -> Result<Response<AuthUserGrantRoleResponse>, Status> {
        let op = Op::UserGrantRole(request.get_ref().clone());
        let header = self.change(&request, op).await?;
        Ok(Response::new(AuthUserGrantRoleResponse { header }))
    }

    async fn user_revoke_role(
        &self,
        request: Request<AuthUserRevokeRoleRequest>,
    ) -> Result<Response<AuthUserRevokeRoleResponse>, Status> {
        let op = Op::UserRevokeRole(request.get_ref().clone());
        let header = self.change(&request, op).await?;
        Ok(Response::new(AuthUserRevokeRoleResponse { header }))
    }

    async fn role_add(&self, request: Request<AuthRoleAddRequest>) -> Result<Response<AuthRoleAddResponse>, Status> {
        let op = Op::RoleAdd(request.get_ref().clone());
        let header = self.change(&request, op).await?;
        Ok(Response::new(AuthRoleAddResponse { header }))
    }

    async fn role_get(&self, request: Request<AuthRoleGetRequest>) -> Result<Response<AuthRoleGetResponse>, Status> {
        let role = request.get_ref().role.clone();
        // A user may read the roles it holds.
        permit(&self.store, &request, |state, user| {
            let holds = state.auth.users.get(user).is_some_and(|u| u.roles.contains(&role));
            if holds {
                Ok(())
            } else {
                checks::admin(&state.auth, user)
            }
        })?;
        let state = self.state(&request).await?;
        let perm = state.role_permissions(&role).map_err(|e| to_status(e.into()))?;
        Ok(Response::new(AuthRoleGetResponse {
            header: self.header(),
            perm,
        }))
    }

    async fn role_list(&self, request: Request<AuthRoleListRequest>) -> Result<Response<AuthRoleListResponse>, Status> {
        permit_admin(&self.store, &request)?;
        let state = self.state(&request).await?;
        Ok(Response::new(AuthRoleListResponse {
            header: self.header(),
            roles: state.roles.keys().cloned().collect(),
        }))
    }

    async fn role_delete(
        &self,
        request: Request<AuthRoleDeleteRequest>,
    ) -> Result<Response<AuthRoleDeleteResponse>, Status> {
        let op = Op::RoleDelete(request.get_ref().clone());
        let header = self.change(&request, op).await?;
        Ok(Response::new(AuthRoleDeleteResponse { header }))
    }

    async fn role_grant_permission(
        &self,
        request: Request<AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<AuthRoleGrantPermissionResponse>, Status> {
        let op = Op::RoleGrantPermission(request.get_ref().clone());
        let header = self.change(&request, op).await?;
        Ok(Response::new(AuthRoleGrantPermissionResponse { header }))
    }

    async fn role_revoke_permission(
        &self,
        request: Request<AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<AuthRoleRevokePermissionResponse>, Status> {
        let op = Op::RoleRevokePermission(request.get_ref().clone());
        let header = self.change(&request, op).await?;
        Ok(Response::new(AuthRoleRevokePermissionResponse { header }))
    }
}
