//! The leader's side of a batch a follower forwarded: each command is checked as the
//! client request it came from would be on this replica (etcd's rules and
//! `--max-request-bytes`, see `validate`), and only the ones that pass are written.
//! A refused command is answered with the error its client would have had from the
//! leader, and the others in the batch are written as if it had never been in it.
//!
//! ```text
//!  batch ──► validate::command each ──┬─ refused: its StoreError, in its place
//!                                     └─ passed: one entry, as before ──► outcomes
//!  outcomes merged back in the batch's order
//! ```

use berth_proto::berthpb::CommandBatch;

use super::*;

impl Store {
    /// Writes what passes the client rules in a forwarded batch; the answer has one
    /// outcome per command of `batch`, in order.
    pub async fn write_forwarded_checked(
        &self,
        batch: CommandBatch,
    ) -> std::result::Result<Vec<CommandOutcome>, ProposeError> {
        let max_request_bytes = self.inner.config.max_request_bytes;
        let checks: Vec<Result<()>> = batch
            .commands
            .iter()
            .map(|command| validate::command(command, max_request_bytes))
            .collect();
        if checks.iter().all(Result::is_ok) {
            return self.write_forwarded(batch).await;
        }
        let initial_revision = batch.initial_revision;
        let passed: Vec<Command> = batch
            .commands
            .into_iter()
            .zip(&checks)
            .filter(|(_, check)| check.is_ok())
            .map(|(command, _)| command)
            .collect();
        let written = if passed.is_empty() {
            Vec::new()
        } else {
            self.write_forwarded(CommandBatch {
                commands: passed,
                initial_revision,
            })
            .await?
        };
        merge(checks, written)
    }
}

/// Puts the outcomes of the written commands back between the refusals, in order.
fn merge(
    checks: Vec<Result<()>>,
    written: Vec<CommandOutcome>,
) -> std::result::Result<Vec<CommandOutcome>, ProposeError> {
    let expected = checks.iter().filter(|check| check.is_ok()).count();
    if written.len() != expected {
        return Err(ProposeError::Failed(StoreError::Internal(format!(
            "apply returned {} results for {expected} commands",
            written.len()
        ))));
    }
    let mut written = written.into_iter();
    Ok(checks
        .into_iter()
        .map(|check| match check {
            Ok(()) => written
                .next()
                .unwrap_or_else(|| Err(StoreError::Internal("missing result".into()))),
            Err(refused) => Err(refused),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use berth_proto::etcdserverpb::PutResponse;

    use super::*;

    fn put(revision: i64) -> CommandOutcome {
        Ok(command_result::Result::Put(PutResponse {
            header: Some(ResponseHeader {
                revision,
                ..Default::default()
            }),
            prev_kv: None,
        }))
    }

    #[test]
    fn refusals_keep_their_places_between_the_written_commands() {
        let checks = vec![Err(StoreError::EmptyKey), Ok(()), Err(StoreError::DuplicateKey), Ok(())];
        let merged = merge(checks, vec![put(7), put(8)]).unwrap();
        assert_eq!(
            merged,
            vec![Err(StoreError::EmptyKey), put(7), Err(StoreError::DuplicateKey), put(8)]
        );
    }

    #[test]
    fn a_result_count_that_does_not_match_is_an_error() {
        let checks = vec![Ok(()), Err(StoreError::EmptyKey)];
        assert!(matches!(
            merge(checks, vec![put(1), put(2)]),
            Err(ProposeError::Failed(StoreError::Internal(_)))
        ));
    }
}
