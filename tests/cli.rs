// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Command-line behaviour of the `verityfsd` binary: help text, capabilities, refused
//! arguments, and a full start / frontend disconnect / clean exit cycle.

use std::fs;
use std::os::unix::io::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_verityfsd");
/// Upper bound for any wait on the daemon.
const TIMEOUT: Duration = Duration::from_secs(30);

fn run(args: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_timeout(&mut child);
    child.wait_with_output().unwrap()
}

/// Waits for `child` to exit; kills it and fails the test after [`TIMEOUT`].
fn wait_timeout(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("verityfsd did not exit within {TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn wait_for_path(path: &Path) {
    let deadline = Instant::now() + TIMEOUT;
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Spawns the daemon serving `share` on `sock` with `args` (stderr captured) and waits for
/// the socket to appear.
fn spawn_serving(sock: &Path, share: &Path, args: &[&str]) -> Child {
    let child = Command::new(BIN)
        .arg(format!("--socket-path={}", sock.display()))
        .arg(format!("--shared-dir={}", share.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_path(sock);
    child
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn help_lists_every_option() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for opt in [
        "--socket-path",
        "--fd",
        "--socket-group",
        "--shared-dir",
        "--tag",
        "--cache",
        "--thread-pool-size",
        "--readonly",
        "--xattr",
        "--announce-submounts",
        "--no-announce-submounts",
        "--log-level",
        "--syslog",
        "--rlimit-nofile",
        "--print-capabilities",
        "--sandbox",
        "--seccomp",
    ] {
        assert!(help.contains(opt), "--help does not mention {opt}:\n{help}");
    }
}

#[test]
fn print_capabilities_is_json() {
    let out = run(&["--print-capabilities"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    json::validate(&text).unwrap_or_else(|e| panic!("invalid JSON ({e}): {text}"));
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(compact.contains(r#""type":"fs""#), "{text}");
}

#[test]
fn duplicate_shared_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = format!("--shared-dir={}", dir.path().display());
    let out = run(&["--socket-path=/nonexistent/s", &a, "--shared-dir=/"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("--shared-dir"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn compat_o_syntax_is_refused() {
    let out = run(&[
        "--socket-path=/nonexistent/s",
        "--shared-dir=/tmp",
        "-o",
        "source=/",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn missing_shared_dir_is_named() {
    let out = run(&[
        "--socket-path=/nonexistent/s",
        "--shared-dir=/no/such/share/dir",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(err.contains("/no/such/share/dir"), "{err}");
    assert!(err.contains("--shared-dir"), "{err}");
}

#[test]
fn unusable_socket_path_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let shared = format!("--shared-dir={}", dir.path().display());
    let sock = dir.path().join("missing-dir").join("vfs.sock");
    let out = run(&[&format!("--socket-path={}", sock.display()), &shared]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("missing-dir"),
        "{}",
        stderr_of(&out)
    );
    // An inherited fd that is not a listening socket.
    let out = run(&["--fd=0", &shared]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("--fd=0"), "{}", stderr_of(&out));
}

#[test]
fn chroot_sandbox_with_xattr_is_refused_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share");
    fs::create_dir(&share).unwrap();
    let sock = dir.path().join("vfs.sock");
    let out = run(&[
        &format!("--socket-path={}", sock.display()),
        &format!("--shared-dir={}", share.display()),
        "--sandbox=chroot",
        "--xattr",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(err.contains("--sandbox=namespace"), "{err}");
    assert!(!sock.exists(), "socket left behind");
}

/// Spawns verityfsd with `listener` as its fd 3, the way Kata passes it.
fn spawn_with_fd3(listener: &UnixListener, args: &[&str]) -> Child {
    let fd: RawFd = listener.as_raw_fd();
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: the closure runs in the forked child before exec and only calls dup2(2) and
    // fcntl(2), which are async-signal-safe; `fd` is open in the parent (and thus in the
    // child) for the whole spawn because `listener` outlives this function's use of it.
    // dup2 clears CLOEXEC on a new fd 3; when `fd` already is 3, fcntl clears it instead, so
    // the daemon inherits the socket either way.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(move || {
            let ret = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 3)
            };
            if ret < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().unwrap()
}

#[test]
fn kata_launch_line_serves_and_exits_cleanly_on_disconnect() {
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share");
    fs::create_dir(&share).unwrap();
    let sock_path = dir.path().join("kata.sock");
    let listener = UnixListener::bind(&sock_path).unwrap();
    let shared = format!("--shared-dir={}", share.display());
    let mut child = spawn_with_fd3(
        &listener,
        &[
            "--syslog",
            "--cache=auto",
            &shared,
            "--fd=3",
            "--thread-pool-size=1",
            "--announce-submounts",
        ],
    );
    // Connect as a frontend, then hang up: the daemon must exit 0.
    let stream = UnixStream::connect(&sock_path).unwrap();
    drop(stream);
    let status = wait_timeout(&mut child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(status.code(), Some(0), "stderr: {}", stderr_of(&out));
}

#[test]
fn socket_and_pid_file_are_removed_after_disconnect() {
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share");
    fs::create_dir(&share).unwrap();
    let sock = dir.path().join("vfs.sock");
    let pid = dir.path().join("vfs.sock.pid");
    let mut child = spawn_serving(
        &sock,
        &share,
        &["--sandbox=none", "--seccomp=none", "--log-level=debug"],
    );
    assert_eq!(
        fs::read_to_string(&pid).unwrap().trim(),
        child.id().to_string()
    );
    drop(UnixStream::connect(&sock).unwrap());
    let status = wait_timeout(&mut child);
    let out = child.wait_with_output().unwrap();
    let err = stderr_of(&out);
    assert_eq!(status.code(), Some(0), "stderr: {err}");
    assert!(!sock.exists(), "socket left behind");
    assert!(!pid.exists(), "pid file left behind");
}

/// Starts the daemon on `share` with `args`, hangs up at once, and returns its stderr.
fn start_and_disconnect(share: &Path, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("vfs.sock");
    let mut child = spawn_serving(&sock, share, args);
    drop(UnixStream::connect(&sock).unwrap());
    let status = wait_timeout(&mut child);
    let err = stderr_of(&child.wait_with_output().unwrap());
    assert_eq!(status.code(), Some(0), "stderr: {err}");
    err
}

/// security.md case 35: `none` modes are accepted like virtiofsd's (launchers that confine
/// the daemon themselves pass them) but never silently; a shared directory any local user
/// may change is named too. A symlinked shared directory is served as its target.
#[test]
fn insecure_settings_are_logged_as_warnings() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share");
    fs::create_dir(&share).unwrap();
    fs::set_permissions(&share, fs::Permissions::from_mode(0o755)).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&share, &link).unwrap();
    let err = start_and_disconnect(&link, &["--sandbox=none", "--seccomp=none"]);
    let warned = |text: &str| err.lines().any(|l| l.contains("WARN") && l.contains(text));
    assert!(
        warned("--sandbox=none: the daemon runs WITHOUT a sandbox"),
        "{err}"
    );
    assert!(warned("--seccomp=none: NO system-call filter"), "{err}");
    assert!(!err.contains("writable by every local user"), "{err}");
    fs::set_permissions(&share, fs::Permissions::from_mode(0o777)).unwrap();
    let err = start_and_disconnect(&share, &["--sandbox=none", "--seccomp=none"]);
    let canonical = fs::canonicalize(&share).unwrap();
    assert!(
        err.lines().any(|l| l.contains("WARN")
            && l.contains(&format!(
                "--shared-dir {} is writable by every local user",
                canonical.display()
            ))
            && l.contains("WITHOUT verification")),
        "{err}"
    );
    // The sticky bit (as on /tmp) keeps entries to their owners: no warning.
    fs::set_permissions(&share, fs::Permissions::from_mode(0o1777)).unwrap();
    let err = start_and_disconnect(&share, &["--sandbox=none", "--seccomp=none"]);
    assert!(!err.contains("writable by every local user"), "{err}");
}

#[test]
fn sigterm_removes_socket_and_pid_file() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("vfs.sock");
    let pid = dir.path().join("vfs.sock.pid");
    let mut child = spawn_serving(&sock, dir.path(), &[]);
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = wait_timeout(&mut child);
    let out = child.wait_with_output().unwrap();
    let err = stderr_of(&out);
    assert_eq!(status.code(), Some(0), "stderr: {err}");
    // Defaults were used: the outer process forwarded the signal to the sandboxed one.
    assert!(err.contains("entered the namespace sandbox"), "{err}");
    assert!(!sock.exists() && !pid.exists());
}

/// A minimal JSON syntax checker (RFC 8259 grammar, no semantic checks).
mod json {
    pub fn validate(text: &str) -> Result<(), String> {
        let b = text.as_bytes();
        let mut i = 0;
        value(b, &mut i)?;
        ws(b, &mut i);
        if i == b.len() {
            Ok(())
        } else {
            Err(format!("trailing data at {i}"))
        }
    }

    fn ws(b: &[u8], i: &mut usize) {
        while *i < b.len() && b" \t\r\n".contains(&b[*i]) {
            *i += 1;
        }
    }

    fn expect(b: &[u8], i: &mut usize, c: u8) -> Result<(), String> {
        ws(b, i);
        if b.get(*i) == Some(&c) {
            *i += 1;
            Ok(())
        } else {
            Err(format!("expected '{}' at {}", c as char, *i))
        }
    }

    fn value(b: &[u8], i: &mut usize) -> Result<(), String> {
        ws(b, i);
        match b.get(*i) {
            Some(b'{') => seq(b, i, b'}', true),
            Some(b'[') => seq(b, i, b']', false),
            Some(b'"') => string(b, i),
            Some(_) => {
                for lit in [&b"true"[..], b"false", b"null"] {
                    if b[*i..].starts_with(lit) {
                        *i += lit.len();
                        return Ok(());
                    }
                }
                let start = *i;
                while *i < b.len() && b"+-.eE0123456789".contains(&b[*i]) {
                    *i += 1;
                }
                if *i > start {
                    Ok(())
                } else {
                    Err(format!("unexpected byte at {start}"))
                }
            }
            None => Err("unexpected end".into()),
        }
    }

    fn seq(b: &[u8], i: &mut usize, close: u8, object: bool) -> Result<(), String> {
        *i += 1;
        ws(b, i);
        if b.get(*i) == Some(&close) {
            *i += 1;
            return Ok(());
        }
        loop {
            if object {
                ws(b, i);
                string(b, i)?;
                expect(b, i, b':')?;
            }
            value(b, i)?;
            ws(b, i);
            match b.get(*i) {
                Some(b',') => *i += 1,
                Some(c) if *c == close => {
                    *i += 1;
                    return Ok(());
                }
                _ => return Err(format!("expected ',' or '{}' at {}", close as char, *i)),
            }
        }
    }

    fn string(b: &[u8], i: &mut usize) -> Result<(), String> {
        if b.get(*i) != Some(&b'"') {
            return Err(format!("expected string at {}", *i));
        }
        *i += 1;
        while let Some(&c) = b.get(*i) {
            *i += 1;
            match c {
                b'"' => return Ok(()),
                b'\\' => *i += 1,
                c if c < 0x20 => return Err("control character in string".into()),
                _ => {}
            }
        }
        Err("unterminated string".into())
    }

    #[test]
    fn checker_works() {
        assert!(validate(r#"{"a":[1,"x",true,null],"b":{}}"#).is_ok());
        assert!(validate(r#"{"a":}"#).is_err());
        assert!(validate(r#"{"a":1"#).is_err());
        assert!(validate("[1,]").is_err());
    }
}
