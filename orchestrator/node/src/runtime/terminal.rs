//! Pseudo-terminals for `exec -t`: a runtime gives the command the slave side and the
//! agent keeps the master, relaying keystrokes and output and resizing it as the
//! client's window changes.

use std::fs::File;

use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;

/// A new pseudo-terminal: its master and its slave side, both close-on-exec (a child
/// gets the slave as its stdio, which `Command` dups without the flag).
pub fn open_pty() -> std::io::Result<(File, File)> {
    let master = rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    let name = rustix::pty::ptsname(&master, Vec::new())?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok((File::from(master), File::from(slave)))
}

/// Sets the terminal's size in characters (the resize messages of `kubectl exec -t`).
pub fn resize_terminal(master: &File, width: u16, height: u16) -> std::io::Result<()> {
    let size = rustix::termios::Winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    rustix::termios::tcsetwinsize(master, size)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pty_carries_bytes_and_takes_a_size() {
        use std::io::{Read, Write};
        let (mut master, slave) = open_pty().expect("a pty");
        resize_terminal(&master, 100, 40).expect("resize");
        let size = rustix::termios::tcgetwinsize(&slave).expect("size");
        assert_eq!((size.ws_col, size.ws_row), (100, 40));
        (&slave).write_all(b"hello\n").expect("write the slave");
        // The terminal turns "\n" into "\r\n" on output; a read may return less
        // than was written.
        let mut seen = Vec::new();
        let mut buf = [0u8; 64];
        while seen.len() < b"hello\r\n".len() {
            let n = master.read(&mut buf).expect("read the master");
            assert!(n > 0, "the pty closed after {seen:?}");
            seen.extend_from_slice(&buf[..n]);
        }
        assert_eq!(seen, b"hello\r\n");
    }
}
