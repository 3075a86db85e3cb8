//! Paged LIST: whole lists of the namespace's pods, `limit` at a time, each next page
//! asked with the previous page's `continue` token, as kubectl and client-go's pagers
//! do. One client, one keep-alive connection, one list after another.
//!
//! ```text
//!  GET …/pods?limit=500               ──► items, metadata.resourceVersion R, continue T1
//!  GET …/pods?limit=500&continue=T1   ──► items at R, continue T2
//!  …                                  ──► the last page has no continue
//! ```
//!
//! A page's latency runs from sending its request to the last byte of its body; a
//! whole list's time also covers decoding each page's JSON here (as any client must,
//! to read the token). Every list must hold every pod, once, at one resourceVersion.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde_json::Value;

use super::http::Connection;
use super::pods::collection_path;
use crate::budget::Budget;
use crate::driver::Outcome;
use crate::latency::LatencySummary;

/// What the lists did.
#[derive(Debug, Default)]
pub struct ListOutcome {
    /// Every page's latency; errors counted by message.
    pub pages: Outcome,
    /// Each complete list's time, first page sent to last page decoded.
    pub list_times: Vec<Duration>,
    pub objects: u64,
    pub body_bytes: u64,
}

impl ListOutcome {
    pub fn list_summary(&self) -> LatencySummary {
        LatencySummary::from_samples(self.list_times.clone())
    }
}

/// Lists every pod in pages of `limit`, whole lists until the budget (one ticket a
/// list) is spent. Each list must have `expected` items.
pub async fn run(connection: &mut Connection, limit: usize, expected: u64, budget: &Budget) -> ListOutcome {
    let mut outcome = ListOutcome::default();
    let mut pages = Outcome::default();
    while budget.next_ticket().is_some() {
        let started_at = Instant::now();
        match list_once(connection, limit, &mut pages.latencies, &mut outcome).await {
            Ok(items) if items == expected => outcome.list_times.push(started_at.elapsed()),
            Ok(items) => pages.record_error(format!("a list had {items} pods, not {expected}")),
            Err(error) => pages.record_error(format!("{error:#}")),
        }
        budget.mark_completed();
    }
    pages.elapsed = budget.started_at().elapsed();
    outcome.pages = pages;
    outcome
}

/// One whole list; returns how many items it had.
async fn list_once(
    connection: &mut Connection,
    limit: usize,
    page_latencies: &mut Vec<Duration>,
    outcome: &mut ListOutcome,
) -> anyhow::Result<u64> {
    let mut token: Option<String> = None;
    let mut resource_version: Option<String> = None;
    let mut items = 0u64;
    let mut names = HashSet::new();
    loop {
        let mut path = format!("{}?limit={limit}", collection_path());
        if let Some(token) = &token {
            path.push_str("&continue=");
            path.push_str(token);
        }
        let sent_at = Instant::now();
        let body = connection.get(&path).await?.expect(200)?;
        page_latencies.push(sent_at.elapsed());
        outcome.body_bytes += body.len() as u64;
        let page: Value = serde_json::from_slice(&body).context("a page is not JSON")?;
        let page_items = page["items"].as_array().context("a page has no items")?;
        ensure!(
            page_items.len() <= limit,
            "a page had {} items, more than the limit {limit}",
            page_items.len()
        );
        for item in page_items {
            let name = item["metadata"]["name"].as_str().context("an item has no name")?;
            if !names.insert(name.to_owned()) {
                bail!("pod {name} came twice in one list");
            }
        }
        items += page_items.len() as u64;
        outcome.objects += page_items.len() as u64;
        let page_version = page["metadata"]["resourceVersion"].as_str().unwrap_or_default();
        match &resource_version {
            None => resource_version = Some(page_version.to_owned()),
            Some(first) if first != page_version => {
                bail!("a list's pages came at resourceVersion {first} and {page_version}")
            }
            Some(_) => {}
        }
        match page["metadata"]["continue"].as_str() {
            Some(next) if !next.is_empty() => token = Some(next.to_owned()),
            _ => return Ok(items),
        }
    }
}
