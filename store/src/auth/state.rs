//! The replicated auth state and its pure apply. It changes only through the log
//! (`Command::Auth`), every change bumps the auth revision, and it is stored as one
//! record in the State tree beside the data (`m/auth`), so that it survives restarts,
//! travels in snapshots and is restored with them.

use std::collections::{BTreeMap, BTreeSet};

use berth_proto::authpb::Permission;
use berth_proto::berthpb::auth_command::Op;
use berth_proto::etcdserverpb::AuthRoleGrantPermissionRequest;
use serde::{Deserialize, Serialize};

use super::permissions::{self, Access, Span};
use super::{AuthError, ROOT};
use crate::backend::{BackendError, SharedBackend, Tree, WriteBatch};
use crate::raft::{decode, encode};

pub(crate) const AUTH_RECORD: &[u8] = b"m/auth";

/// One user. `password` is the hash `password::hash` made, None for a user added
/// with `--no-password` (certificate auth only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredUser {
    pub password: Option<String>,
    pub roles: BTreeSet<String>,
}

/// One permission of a role (etcd's `authpb.Permission`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPermission {
    pub perm_type: i32,
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
}

impl StoredPermission {
    pub fn to_proto(&self) -> Permission {
        Permission {
            perm_type: self.perm_type,
            key: self.key.clone(),
            range_end: self.range_end.clone(),
        }
    }
}

/// Users, roles, whether auth is on, and the auth revision.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthState {
    pub enabled: bool,
    pub revision: u64,
    pub users: BTreeMap<String, StoredUser>,
    /// Each role's permissions, in key order (as etcd lists them).
    pub roles: BTreeMap<String, Vec<StoredPermission>>,
}

/// What applying an auth command did, for the member's runtime (tokens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthEffect {
    None,
    /// Tokens of this user are void (deleted, new password).
    UserChanged(String),
    Enabled(bool),
    Token {
        name: String,
        token: String,
    },
}

impl AuthState {
    pub fn load(backend: &SharedBackend) -> Result<Self, BackendError> {
        match backend.get(Tree::State, AUTH_RECORD)? {
            None => Ok(Self::default()),
            Some(bytes) => decode(&bytes).map_err(|e| BackendError::Corrupt {
                path: String::new(),
                reason: format!("auth record: {e}"),
            }),
        }
    }

    fn save(&self, batch: &mut WriteBatch) {
        // The record is plain data; encoding it cannot fail.
        let bytes = encode(self).expect("the auth state encodes");
        batch.put(AUTH_RECORD.to_vec(), bytes);
    }

    /// Whether `name` holds the root role (may do anything).
    pub fn is_root(&self, name: &str) -> bool {
        self.users.get(name).is_some_and(|user| user.roles.contains(ROOT))
    }

    /// Whether `name` may do `access` on the keys `key`..`range_end` (see
    /// `permissions`): an unknown user may do nothing.
    pub fn check(&self, name: &str, key: &[u8], range_end: &[u8], access: Access) -> Result<(), AuthError> {
        let Some(user) = self.users.get(name) else {
            return Err(AuthError::PermissionDenied);
        };
        if user.roles.contains(ROOT) {
            return Ok(());
        }
        let perms: Vec<Permission> = user
            .roles
            .iter()
            .filter_map(|role| self.roles.get(role))
            .flatten()
            .map(StoredPermission::to_proto)
            .collect();
        let mut granted = permissions::spans_for(&perms, access);
        if permissions::covers(&mut granted, &Span::of(key, range_end)) {
            Ok(())
        } else {
            Err(AuthError::PermissionDenied)
        }
    }

    /// The permissions `etcdctl role get` lists: root's is every key, read and write.
    pub fn role_permissions(&self, role: &str) -> Result<Vec<Permission>, AuthError> {
        match self.roles.get(role) {
            Some(perms) => Ok(perms.iter().map(StoredPermission::to_proto).collect()),
            None if role == ROOT => Ok(vec![Permission {
                perm_type: berth_proto::authpb::permission::Type::Readwrite as i32,
                key: Vec::new(),
                range_end: vec![0],
            }]),
            None => Err(AuthError::RoleNotFound),
        }
    }

    /// Applies one auth command: deterministic, the same on every replica. A refused
    /// command changes nothing; every change bumps the revision and is staged in `batch`.
    pub fn apply(&mut self, op: &Op, batch: &mut WriteBatch) -> Result<AuthEffect, AuthError> {
        if let Op::AssignToken(req) = op {
            // No change to the state, so no revision: each member remembers the token.
            if !self.enabled {
                return Err(AuthError::AuthNotEnabled);
            }
            if !self.users.contains_key(&req.name) {
                return Err(AuthError::AuthFailed);
            }
            return Ok(AuthEffect::Token {
                name: req.name.clone(),
                token: req.token.clone(),
            });
        }
        let effect = self.change(op)?;
        if let Some(effect) = effect {
            self.revision += 1;
            self.save(batch);
            Ok(effect)
        } else {
            Ok(AuthEffect::None)
        }
    }

    /// The change an op makes: Some(effect) when the state changed.
    fn change(&mut self, op: &Op) -> Result<Option<AuthEffect>, AuthError> {
        match op {
            Op::Enable(_) => {
                if self.enabled {
                    return Ok(None);
                }
                let root = self.users.get(ROOT).ok_or(AuthError::RootUserNotExist)?;
                if !root.roles.contains(ROOT) {
                    return Err(AuthError::RootRoleNotExist);
                }
                self.enabled = true;
                Ok(Some(AuthEffect::Enabled(true)))
            }
            Op::Disable(_) => {
                if !self.enabled {
                    return Ok(None);
                }
                self.enabled = false;
                Ok(Some(AuthEffect::Enabled(false)))
            }
            Op::UserAdd(req) => {
                if req.name.is_empty() {
                    return Err(AuthError::UserEmpty);
                }
                if self.users.contains_key(&req.name) {
                    return Err(AuthError::UserAlreadyExists);
                }
                let no_password = req.options.as_ref().is_some_and(|o| o.no_password);
                let password = if no_password {
                    None
                } else {
                    Some(req.hashed_password.clone())
                };
                self.users.insert(
                    req.name.clone(),
                    StoredUser {
                        password,
                        roles: BTreeSet::new(),
                    },
                );
                Ok(Some(AuthEffect::None))
            }
            Op::UserDelete(req) => {
                if self.enabled && req.name == ROOT {
                    return Err(AuthError::InvalidAuthMgmt);
                }
                self.users.remove(&req.name).ok_or(AuthError::UserNotFound)?;
                Ok(Some(AuthEffect::UserChanged(req.name.clone())))
            }
            Op::UserChangePassword(req) => {
                let user = self.users.get_mut(&req.name).ok_or(AuthError::UserNotFound)?;
                user.password = Some(req.hashed_password.clone());
                Ok(Some(AuthEffect::UserChanged(req.name.clone())))
            }
            Op::UserGrantRole(req) => {
                if req.role != ROOT && !self.roles.contains_key(&req.role) {
                    if !self.users.contains_key(&req.user) {
                        return Err(AuthError::UserNotFound);
                    }
                    return Err(AuthError::RoleNotFound);
                }
                let user = self.users.get_mut(&req.user).ok_or(AuthError::UserNotFound)?;
                // Granting a role the user has is a success that changes nothing.
                Ok(user.roles.insert(req.role.clone()).then_some(AuthEffect::None))
            }
            Op::UserRevokeRole(req) => {
                if self.enabled && req.name == ROOT && req.role == ROOT {
                    return Err(AuthError::InvalidAuthMgmt);
                }
                let user = self.users.get_mut(&req.name).ok_or(AuthError::UserNotFound)?;
                if !user.roles.remove(&req.role) {
                    return Err(AuthError::RoleNotGranted);
                }
                Ok(Some(AuthEffect::None))
            }
            Op::RoleAdd(req) => {
                if req.name.is_empty() {
                    return Err(AuthError::RoleEmpty);
                }
                if self.roles.contains_key(&req.name) {
                    return Err(AuthError::RoleAlreadyExists);
                }
                self.roles.insert(req.name.clone(), Vec::new());
                Ok(Some(AuthEffect::None))
            }
            Op::RoleDelete(req) => {
                if self.enabled && req.role == ROOT {
                    return Err(AuthError::InvalidAuthMgmt);
                }
                self.roles.remove(&req.role).ok_or(AuthError::RoleNotFound)?;
                for user in self.users.values_mut() {
                    user.roles.remove(&req.role);
                }
                Ok(Some(AuthEffect::None))
            }
            Op::RoleGrantPermission(req) => self.grant(req).map(Some),
            Op::RoleRevokePermission(req) => {
                let perms = self.roles.get_mut(&req.role).ok_or(AuthError::RoleNotFound)?;
                let before = perms.len();
                perms.retain(|p| !(p.key == req.key && p.range_end == req.range_end));
                if perms.len() == before {
                    return Err(AuthError::PermissionNotGranted);
                }
                Ok(Some(AuthEffect::None))
            }
            // A token is the member's memory, not the replicated state (see `apply`).
            Op::AssignToken(_) => Ok(None),
        }
    }

    fn grant(&mut self, req: &AuthRoleGrantPermissionRequest) -> Result<AuthEffect, AuthError> {
        let perms = self.roles.get_mut(&req.name).ok_or(AuthError::RoleNotFound)?;
        let perm = req.perm.as_ref().ok_or(AuthError::PermissionNotGiven)?;
        let stored = StoredPermission {
            perm_type: perm.perm_type,
            key: perm.key.clone(),
            range_end: perm.range_end.clone(),
        };
        // The same key and range end again: its type is replaced.
        match perms
            .iter_mut()
            .find(|p| p.key == stored.key && p.range_end == stored.range_end)
        {
            Some(existing) => existing.perm_type = stored.perm_type,
            None => {
                let at = perms.partition_point(|p| p.key <= stored.key);
                perms.insert(at, stored);
            }
        }
        Ok(AuthEffect::None)
    }
}
