//! A one-line progress indicator, shown only when stdout is a terminal.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use crate::budget::Budget;

/// Redraws `label: done/total` a few times a second until dropped.
pub struct Progress {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    pub fn start(label: &str, budget: Arc<Budget>) -> Self {
        if !std::io::stdout().is_terminal() {
            return Self { task: None };
        }
        let label = label.to_owned();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                let elapsed_s = budget.started_at().elapsed().as_secs_f64();
                print!(
                    "\r\x1b[K{label}: {}/{} ({elapsed_s:.1}s)",
                    budget.completed(),
                    budget.total()
                );
                let _ = std::io::stdout().flush();
            }
        });
        Self { task: Some(task) }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            print!("\r\x1b[K");
            let _ = std::io::stdout().flush();
        }
    }
}
