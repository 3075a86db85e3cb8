//! Leases: grant, revoke, and a keep-alive that says when the lease is lost.

use std::time::Duration;

use berth_proto::etcdserverpb::{LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest};

use super::{AbortOnDrop, Kv, KvError, Result, status_error};

/// Keeps a lease alive until dropped; `lost` resolves when a keep-alive says the
/// lease is gone (TTL 0) or no keep-alive succeeded within the TTL.
pub struct KeepAlive {
    lost: tokio::sync::watch::Receiver<bool>,
    _task: AbortOnDrop,
}

impl KeepAlive {
    pub async fn lost(&mut self) {
        let _ = self.lost.wait_for(|lost| *lost).await;
    }
}

impl Kv {
    /// Grants a lease of `ttl` seconds; returns its ID.
    pub async fn grant(&self, ttl: i64) -> Result<i64> {
        let (i, mut c) = self.clients();
        match c
            .lease
            .lease_grant(Self::request(LeaseGrantRequest { ttl, id: 0 }))
            .await
        {
            Ok(r) => {
                let r = r.into_inner();
                if r.error.is_empty() {
                    Ok(r.id)
                } else {
                    Err(KvError::Other(r.error))
                }
            }
            Err(s) => {
                let e = status_error(s);
                self.failed(i, &e);
                Err(e)
            }
        }
    }

    pub async fn revoke(&self, id: i64) -> Result<()> {
        let (i, mut c) = self.clients();
        match c.lease.lease_revoke(Self::request(LeaseRevokeRequest { id })).await {
            Ok(_) => Ok(()),
            Err(s) => {
                let e = status_error(s);
                self.failed(i, &e);
                Err(e)
            }
        }
    }

    /// Keeps lease `id` (of `ttl` seconds) alive, renewing every third of the TTL
    /// over whichever endpoint answers.
    pub fn keep_alive(&self, id: i64, ttl: i64) -> KeepAlive {
        let (lost_tx, lost) = tokio::sync::watch::channel(false);
        let kv = self.clone();
        let ttl = Duration::from_secs(ttl.max(1) as u64);
        let task = tokio::spawn(async move {
            let mut last_renewed = tokio::time::Instant::now();
            loop {
                match kv.keep_alive_once(id).await {
                    Ok(remaining) if remaining > 0 => last_renewed = tokio::time::Instant::now(),
                    Ok(_) => {
                        tracing::warn!(lease = format!("{id:x}"), "the lease has expired");
                        let _ = lost_tx.send(true);
                        return;
                    }
                    Err(e) => {
                        tracing::debug!(lease = format!("{id:x}"), error = %e, "lease keep-alive failed");
                        if last_renewed.elapsed() >= ttl {
                            tracing::warn!(lease = format!("{id:x}"), "no keep-alive succeeded within the TTL");
                            let _ = lost_tx.send(true);
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                }
                tokio::time::sleep(ttl / 3).await;
            }
        });
        KeepAlive {
            lost,
            _task: AbortOnDrop(task),
        }
    }

    async fn keep_alive_once(&self, id: i64) -> Result<i64> {
        let (i, mut c) = self.clients();
        let request = tokio_stream::once(LeaseKeepAliveRequest { id });
        let result = async {
            let mut stream = c.lease.lease_keep_alive(request).await?.into_inner();
            match stream.message().await? {
                Some(r) => Ok(r.ttl),
                None => Err(tonic::Status::unavailable("keep-alive stream closed")),
            }
        };
        match tokio::time::timeout(Duration::from_secs(2), result).await {
            Ok(Ok(ttl)) => Ok(ttl),
            Ok(Err(s)) => {
                let e = status_error(s);
                self.failed(i, &e);
                Err(e)
            }
            Err(_) => {
                let e = KvError::Unavailable("keep-alive timed out".into());
                self.failed(i, &e);
                Err(e)
            }
        }
    }
}
