//! `exec` into a running container, with pipes and with a terminal.

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::super::super::{ExecSpec, Runtime};
use super::fixture::{APP_UID, DEADLINE, Fixture};

fn exec_spec(argv: &[&str], tty: bool) -> ExecSpec {
    ExecSpec {
        argv: argv.iter().map(|s| (*s).to_owned()).collect(),
        tty,
    }
}

/// Waits for the child with a deadline (a hung exec fails instead of hanging).
fn wait_with_deadline(child: &mut std::process::Child) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("exec still running after {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn exec_runs_as_the_containers_user_in_its_directory_and_environment() {
    let Some(fixture) = Fixture::new() else { return };
    let mut spec = fixture.spec("exec", &["sleep", "1000"]);
    spec.working_dir = Some(PathBuf::from("/tmp"));
    spec.env = vec![("GREETING".into(), "hello".into())];
    spec.security.run_as_user = Some(APP_UID);
    let id = fixture.runtime().start(&spec).unwrap();

    let mut session = fixture
        .runtime()
        .exec(
            &id,
            &exec_spec(
                &[
                    "sh",
                    "-c",
                    "read line; echo got $line; id -u; pwd; echo $GREETING; readlink /proc/1/exe; exit 4",
                ],
                false,
            ),
        )
        .unwrap();
    assert!(session.pty.is_none());
    session.child.stdin.take().unwrap().write_all(b"input\n").unwrap();
    let mut out = String::new();
    session.child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let status = wait_with_deadline(&mut session.child);
    assert_eq!(status.code(), Some(4), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        ["got input", &APP_UID.to_string(), "/tmp", "hello", "/bin/busybox"]
    );

    let mut missing = fixture
        .runtime()
        .exec(&id, &exec_spec(&["no-such-command"], false))
        .unwrap();
    assert_ne!(wait_with_deadline(&mut missing.child).code(), Some(0));
}

#[test]
fn exec_with_a_tty_gives_a_terminal_and_the_exit_code() {
    let Some(fixture) = Fixture::new() else { return };
    let id = fixture
        .runtime()
        .start(&fixture.spec("exectty", &["sleep", "1000"]))
        .unwrap();
    let session = fixture
        .runtime()
        .exec(
            &id,
            &exec_spec(&["sh", "-c", "tty; read line; echo got $line; exit 6"], true),
        )
        .unwrap();
    let mut child = session.child;
    let mut pty = session.pty.expect("a pty");
    let mut reader = pty.try_clone().unwrap();
    // The master reads until every slave side is closed (EIO): in a thread, so a
    // hang fails the test at the deadline rather than blocking it.
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            let _ = sender.send(String::from_utf8_lossy(&seen).into_owned());
        }
    });
    let wait_for = |text: &str| {
        let start = Instant::now();
        loop {
            let seen = receiver.recv_timeout(DEADLINE).unwrap_or_default();
            if seen.contains(text) {
                return seen;
            }
            assert!(start.elapsed() < DEADLINE, "never saw {text:?} in {seen:?}");
        }
    };
    let seen = wait_for("/dev/pts/");
    assert!(seen.contains("/dev/pts/0"), "the container's own terminal: {seen}");
    pty.write_all(b"typed\r").unwrap();
    wait_for("got typed");
    assert_eq!(wait_with_deadline(&mut child).code(), Some(6));
}

#[test]
fn a_resize_of_the_exec_terminal_reaches_the_container() {
    let Some(fixture) = Fixture::new() else { return };
    let id = fixture
        .runtime()
        .start(&fixture.spec("resize", &["sleep", "1000"]))
        .unwrap();
    let session = fixture
        .runtime()
        .exec(
            &id,
            &exec_spec(&["sh", "-c", "while read line; do stty size; done"], true),
        )
        .unwrap();
    let mut child = session.child;
    let mut pty = session.pty.expect("a pty");
    let mut reader = pty.try_clone().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            let _ = sender.send(String::from_utf8_lossy(&seen).into_owned());
        }
    });
    // The first size may be read by runc as it starts; the second comes while it
    // runs, as SIGWINCH. runc may handle the signal after a line it has already
    // forwarded: ask again until the size shows.
    for (rows, columns) in [(33, 77), (44, 88)] {
        let size = rustix::termios::Winsize {
            ws_row: rows,
            ws_col: columns,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(&pty, size).unwrap();
        let want = format!("{rows} {columns}");
        let start = Instant::now();
        loop {
            pty.write_all(b"\r").unwrap();
            let seen = receiver.recv_timeout(Duration::from_millis(200)).unwrap_or_default();
            if seen.contains(&want) {
                break;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "{want} never reached the container: {seen:?}"
            );
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}
