//! The Auth API's side of the store: changes go through the log as `Command::Auth`
//! (the password hashed first, here, so only the hash is replicated); lists and gets
//! read the applied state after a read barrier, as etcd serves them linearizably;
//! Authenticate checks the password here and proposes the new token, so every member
//! knows it (see `auth::runtime`).

use berth_proto::berthpb::{AuthResponse, AuthToken, auth_command};

use super::*;
use crate::auth::{AuthError, AuthState, password};

impl Store {
    /// Proposes an auth change; answers with the auth revision after it.
    pub async fn auth_change(&self, mut op: auth_command::Op) -> Result<AuthResponse> {
        match &mut op {
            auth_command::Op::UserAdd(req) => {
                let no_password = req.options.as_ref().is_some_and(|o| o.no_password);
                if !no_password && req.hashed_password.is_empty() {
                    req.hashed_password = hash_off_the_runtime(std::mem::take(&mut req.password)).await?;
                }
                req.password.clear();
            }
            auth_command::Op::UserChangePassword(req) => {
                if req.hashed_password.is_empty() {
                    req.hashed_password = hash_off_the_runtime(std::mem::take(&mut req.password)).await?;
                }
                req.password.clear();
            }
            _ => {}
        }
        let command = berth_proto::berthpb::AuthCommand { op: Some(op) };
        self.write(command::Command::Auth(command), |r| match r {
            command_result::Result::Auth(resp) => Some(resp),
            _ => None,
        })
        .await
    }

    /// The applied auth state after a read barrier (what a linearizable read sees).
    pub async fn auth_state_now(&self) -> Result<AuthState> {
        self.read_barrier().await?;
        Ok(self.inner.state.read().auth.clone())
    }

    /// Runs `check` on the applied state (the permission checks of `auth::checks`);
    /// answers with the auth revision it checked at.
    pub fn check_auth(&self, check: impl FnOnce(&AppliedState) -> std::result::Result<(), AuthError>) -> Result<u64> {
        let state = self.inner.state.read();
        check(&state).map_err(StoreError::from)?;
        Ok(state.auth.revision)
    }

    /// This handle with its writes made for `caller` (user, auth revision checked
    /// at): each goes into the log as an `AuthorizedCommand`, so that apply refuses
    /// it if a change of the auth state since has taken its permission away.
    pub fn acting_for(mut self, caller: Option<(String, u64)>) -> Store {
        self.caller = caller.map(Arc::new);
        self
    }

    /// A token for `name`, once its password checks out; known to every member that
    /// applies it.
    pub async fn authenticate(&self, name: &str, password: &str) -> Result<String> {
        self.read_barrier().await?;
        let stored = {
            let state = self.inner.state.read();
            if !state.auth.enabled {
                return Err(AuthError::AuthNotEnabled.into());
            }
            state.auth.users.get(name).and_then(|user| user.password.clone())
        };
        // A user without a password (certificate auth only) never authenticates.
        let Some(stored) = stored else {
            return Err(AuthError::AuthFailed.into());
        };
        let password = password.to_string();
        let matches = tokio::task::spawn_blocking(move || password::verify(&stored, &password))
            .await
            .map_err(|e| StoreError::Internal(format!("checking a password: {e}")))?;
        if !matches {
            return Err(AuthError::AuthFailed.into());
        }
        let token = self.inner.auth.new_token();
        self.auth_change(auth_command::Op::AssignToken(AuthToken {
            name: name.to_string(),
            token: token.clone(),
        }))
        .await?;
        Ok(token)
    }
}

/// PBKDF2 on the blocking pool, not on a runtime thread.
async fn hash_off_the_runtime(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(|e| StoreError::Internal(format!("hashing a password: {e}")))
}
