//! The Auth service's messages (berth answers most calls "not supported" for now,
//! but reads them as etcd does, so a bad request is still named).

use berth_proto::authpb::permission::Type as PermissionType;
use berth_proto::authpb::{Permission, UserAddOptions};
use berth_proto::etcdserverpb::{
    AuthDisableRequest, AuthDisableResponse, AuthEnableRequest, AuthEnableResponse, AuthRoleAddRequest,
    AuthRoleAddResponse, AuthRoleDeleteRequest, AuthRoleDeleteResponse, AuthRoleGetRequest, AuthRoleGetResponse,
    AuthRoleGrantPermissionRequest, AuthRoleGrantPermissionResponse, AuthRoleListRequest, AuthRoleListResponse,
    AuthRoleRevokePermissionRequest, AuthRoleRevokePermissionResponse, AuthStatusRequest, AuthStatusResponse,
    AuthUserAddRequest, AuthUserAddResponse, AuthUserChangePasswordRequest, AuthUserChangePasswordResponse,
    AuthUserDeleteRequest, AuthUserDeleteResponse, AuthUserGetRequest, AuthUserGetResponse, AuthUserGrantRoleRequest,
    AuthUserGrantRoleResponse, AuthUserListRequest, AuthUserListResponse, AuthUserRevokeRoleRequest,
    AuthUserRevokeRoleResponse, AuthenticateRequest, AuthenticateResponse,
};

use super::json_message;

json_message!(UserAddOptions {
    no_password: "no_password"
});

json_message!(Permission {
    perm_type: "permType" as enum PermissionType,
    key: "key",
    range_end: "range_end",
});

json_message!(AuthEnableRequest {});
json_message!(AuthEnableResponse { header: "header" });
json_message!(AuthDisableRequest {});
json_message!(AuthDisableResponse { header: "header" });
json_message!(AuthStatusRequest {});
json_message!(AuthStatusResponse {
    header: "header",
    enabled: "enabled",
    auth_revision: "authRevision",
});
json_message!(AuthenticateRequest {
    name: "name",
    password: "password",
});
json_message!(AuthenticateResponse {
    header: "header",
    token: "token",
});
json_message!(AuthUserAddRequest {
    name: "name",
    password: "password",
    options: "options",
    hashed_password: "hashedPassword",
});
json_message!(AuthUserAddResponse { header: "header" });
json_message!(AuthUserGetRequest { name: "name" });
json_message!(AuthUserGetResponse {
    header: "header",
    roles: "roles",
});
json_message!(AuthUserListRequest {});
json_message!(AuthUserListResponse {
    header: "header",
    users: "users",
});
json_message!(AuthUserDeleteRequest { name: "name" });
json_message!(AuthUserDeleteResponse { header: "header" });
json_message!(AuthUserChangePasswordRequest {
    name: "name",
    password: "password",
    hashed_password: "hashedPassword",
});
json_message!(AuthUserChangePasswordResponse { header: "header" });
json_message!(AuthUserGrantRoleRequest {
    user: "user",
    role: "role",
});
json_message!(AuthUserGrantRoleResponse { header: "header" });
json_message!(AuthUserRevokeRoleRequest {
    name: "name",
    role: "role",
});
json_message!(AuthUserRevokeRoleResponse { header: "header" });
json_message!(AuthRoleAddRequest { name: "name" });
json_message!(AuthRoleAddResponse { header: "header" });
json_message!(AuthRoleGetRequest { role: "role" });
json_message!(AuthRoleGetResponse {
    header: "header",
    perm: "perm",
});
json_message!(AuthRoleListRequest {});
json_message!(AuthRoleListResponse {
    header: "header",
    roles: "roles",
});
json_message!(AuthRoleDeleteRequest { role: "role" });
json_message!(AuthRoleDeleteResponse { header: "header" });
json_message!(AuthRoleGrantPermissionRequest {
    name: "name",
    perm: "perm",
});
json_message!(AuthRoleGrantPermissionResponse { header: "header" });
json_message!(AuthRoleRevokePermissionRequest {
    role: "role",
    key: "key",
    range_end: "range_end",
});
json_message!(AuthRoleRevokePermissionResponse { header: "header" });

#[cfg(test)]
mod tests {
    use super::super::{parse_request, to_string};
    use super::*;

    #[test]
    fn permissions_read_as_etcds() {
        let request: AuthRoleGrantPermissionRequest =
            parse_request(br#"{"name":"r1","perm":{"permType":"READWRITE","key":"YQ==","range_end":"Yg=="}}"#).unwrap();
        let perm = request.perm.clone().unwrap();
        assert_eq!(perm.perm_type, PermissionType::Readwrite as i32);
        assert_eq!(
            to_string(&perm),
            r#"{"permType":"READWRITE","key":"YQ==","range_end":"Yg=="}"#
        );
    }
}
