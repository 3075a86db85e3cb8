//! etcdctl's `elect` and `lock`: etcd's client-side concurrency package (sessions on
//! leases, keys ordered by create revision, watches for the deletion of the key
//! ahead) against a berth cluster, as separate etcdctl processes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use berth_testkit::eventually_blocking;

use super::common::{etcdctl, start, stdout};

/// An etcdctl process in the background, its output going to a file.
struct Background {
    child: Child,
    output: PathBuf,
}

impl Background {
    fn spawn(dir: &Path, name: &str, endpoint: &str, args: &[&str]) -> Self {
        let output = dir.join(format!("{name}.out"));
        let file = std::fs::File::create(&output).unwrap();
        let child = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoint}"))
            .args(args)
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("running etcdctl (Debian package etcd-client)");
        Self { child, output }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    fn wait_for_output(&self, what: &str, needle: &str) {
        eventually_blocking(what, || self.output().contains(needle).then_some(()));
    }

    /// Sends SIGTERM, as `kill` does by default.
    fn terminate(&mut self) {
        let status = Command::new("kill").arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success());
        let _ = self.child.wait();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.kill();
    }
}

fn keys_under(endpoints: &[String], prefix: &str) -> usize {
    stdout(&etcdctl(endpoints, &["get", "--prefix", "--keys-only", prefix]))
        .lines()
        .filter(|l| !l.is_empty())
        .count()
}

/// Postmortem: on a fresh cluster the first candidate never won. berth's empty store
/// was at revision 0, so the candidate's key was created at revision 1 and it waited
/// for keys created at or before revision 0, which the concurrency package sends as
/// "no bound": the candidate waited for its own key to go. etcd's empty store is at
/// revision 1, and so is berth's now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_candidate_is_elected_when_the_first_is_killed() {
    let cluster = start(3, &[]).await;
    let all = cluster.endpoints();
    let dir = tempfile::tempdir().unwrap();
    let (first_endpoint, second_endpoint) = (cluster.replicas[1].endpoint(), cluster.replicas[2].endpoint());
    tokio::task::spawn_blocking(move || {
        let mut first = Background::spawn(dir.path(), "first", &first_endpoint, &["elect", "web", "first"]);
        first.wait_for_output("the first candidate to be elected", "first");
        let observer = Background::spawn(dir.path(), "observer", &second_endpoint, &["elect", "--listen", "web"]);
        observer.wait_for_output("the observer to see the first leader", "first");

        let second = Background::spawn(dir.path(), "second", &second_endpoint, &["elect", "web", "second"]);
        eventually_blocking("the second candidate's key", || {
            (keys_under(&all, "web/") == 2).then_some(())
        });
        assert!(
            !second.output().contains("second"),
            "elected while the first leader holds its key: {}",
            second.output()
        );

        first.terminate();
        second.wait_for_output("the second candidate to be elected", "second");
        observer.wait_for_output("the observer to see the second leader", "second");
        assert_eq!(keys_under(&all, "web/"), 1, "the first leader's key is gone");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_excludes_other_holders_until_released_or_its_holder_dies() {
    let cluster = start(3, &[]).await;
    let all = cluster.endpoints();
    let dir = tempfile::tempdir().unwrap();
    let endpoints: Vec<String> = cluster.replicas.iter().map(|r| r.endpoint()).collect();
    tokio::task::spawn_blocking(move || {
        // Two holders run a critical section that takes a while; each writes when it
        // enters and leaves. Without exclusion the lines interleave.
        let journal = dir.path().join("journal");
        let section = |name: &str| {
            format!(
                "echo enter-{name} >> {journal}; sleep 1; echo leave-{name} >> {journal}",
                journal = journal.display()
            )
        };
        let (section_a, section_b) = (section("a"), section("b"));
        let mut a = Background::spawn(
            dir.path(),
            "a",
            &endpoints[0],
            &["lock", "db", "--", "sh", "-c", &section_a],
        );
        let mut b = Background::spawn(
            dir.path(),
            "b",
            &endpoints[1],
            &["lock", "db", "--", "sh", "-c", &section_b],
        );
        assert!(a.child.wait().unwrap().success(), "{}", a.output());
        assert!(b.child.wait().unwrap().success(), "{}", b.output());
        let lines: Vec<String> = std::fs::read_to_string(&journal)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        assert_eq!(lines.len(), 4, "{lines:?}");
        for pair in lines.chunks(2) {
            let holder = pair[0].strip_prefix("enter-").expect("a section starts with enter");
            assert_eq!(pair[1], format!("leave-{holder}"), "sections overlap: {lines:?}");
        }
        assert_eq!(keys_under(&all, "db/"), 0, "both holders released the lock");

        // A holder killed outright keeps the lock until its session's lease expires.
        let holder = Background::spawn(dir.path(), "holder", &endpoints[2], &["lock", "--ttl=3", "db"]);
        holder.wait_for_output("the lock to be taken", "db/");
        let mut holder = holder;
        let waiter = Background::spawn(dir.path(), "waiter", &endpoints[0], &["lock", "--ttl=3", "db"]);
        eventually_blocking("the waiter's key", || (keys_under(&all, "db/") == 2).then_some(()));
        assert!(!waiter.output().contains("db/"), "locked twice: {}", waiter.output());
        holder.kill();
        waiter.wait_for_output("the waiter to take the lock after the holder died", "db/");
    })
    .await
    .unwrap();
}
