// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Control-plane abuse (security.md §7(a) cases 54-57), driven through
//! `vhost-user-harness`: malformed framing, wrong file descriptors, bad queue
//! sizes, ring addresses and memory tables on a raw socket or through the
//! vhost frontend API, and guest memory replaced or removed under in-flight
//! requests. Expected: a NACK and a dropped connection, or the change taken
//! in stride; a defined exit code, socket and pid file removed, never a
//! panic or a fault. Every wait is bounded.

mod common;

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::stress::{check_clean_exit, Contents, Fixture, Load};
use common::{spawn_unconfined, Failures};
use vhost::vhost_user::message::{
    FrontendReq, VhostUserMemory, VhostUserMemoryRegion, VhostUserVringState,
};
use vhost::vhost_user::VhostUserFrontend;
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use vhost_user_harness::memory::GuestMemory;
use vhost_user_harness::raw_control::{self, PeerState, RawControl};
use vhost_user_harness::{DaemonProcess, VirtioFsClient};
use vm_memory::ByteValued;

/// How long a control-plane reply or hang-up may take.
const CONTROL_BOUND: Duration = Duration::from_secs(5);

/// A daemon on a small unverified share, for control-plane abuse.
fn small_daemon() -> (tempfile::TempDir, DaemonProcess) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), b"still here\n").unwrap();
    let daemon = spawn_unconfined(dir.path(), []);
    (dir, daemon)
}

/// A hostile control-plane exchange sent on a raw connection to a fresh daemon.
struct RawCase {
    what: &'static str,
    /// Exit code the daemon must end with: 0 for a frontend hang-up, 1 for a
    /// protocol violation (README: "1 for a runtime failure").
    code: i32,
    /// Whether the test hangs up itself after sending (else the daemon must).
    hang_up: bool,
    /// The bytes and file descriptors to send.
    send: Box<dyn Fn(&RawControl)>,
    /// A line the daemon must log, if any.
    log: Option<&'static str>,
}

fn raw_case(
    what: &'static str,
    code: i32,
    hang_up: bool,
    send: impl Fn(&RawControl) + 'static,
) -> RawCase {
    RawCase {
        what,
        code,
        hang_up,
        send: Box::new(send),
        log: None,
    }
}

/// Log line of a memory table refused because a region lies past the end of its file.
const SHORT_FILE_LOG: &str = "refusing the frontend's memory table";

/// `SET_MEM_TABLE` with `regions`, as one message with `fds` attached.
fn mem_table(raw: &RawControl, regions: &[VhostUserMemoryRegion], fds: &[i32]) {
    let count = u32::try_from(regions.len()).unwrap();
    let mut payload = VhostUserMemory::new(count).as_slice().to_vec();
    for r in regions {
        payload.extend_from_slice(r.as_slice());
    }
    let msg = raw_control::message(FrontendReq::SET_MEM_TABLE as u32, &payload);
    raw.send(&msg, fds).unwrap();
}

/// A memory region at guest address `gpa` backed by `mem`'s memfd from offset 0.
fn region(mem: &GuestMemory, gpa: u64, size: u64) -> VhostUserMemoryRegion {
    let info = &mem.region_infos().unwrap()[0];
    VhostUserMemoryRegion::new(gpa, size, info.userspace_addr, 0)
}

fn vring_state(request: FrontendReq, index: u32, num: u32) -> Vec<u8> {
    raw_control::message(
        request as u32,
        VhostUserVringState::new(index, num).as_slice(),
    )
}

/// Malformed framing, wrong file descriptors and invalid values (cases
/// 54-56), each on a fresh daemon: the daemon drops the connection, exits
/// with the expected code, cleans up and never panics.
#[test]
fn malformed_control_messages_drop_the_connection_cleanly() {
    use FrontendReq as R;
    let mem = Arc::new(GuestMemory::new(1 << 20).unwrap());
    let memfd = mem.region_infos().unwrap()[0].mmap_handle;
    let short = tempfile::tempfile().unwrap();
    short.set_len(4096).unwrap();
    let short_fd = short.as_raw_fd();
    let m = |req: R| raw_control::message(req as u32, &[]);
    let cases = vec![
        raw_case("hang-up right after connecting", 0, true, |_| {}),
        raw_case("half a header, then hang-up", 0, true, |raw| {
            raw.send(&raw_control::header(R::GET_FEATURES as u32, 1, 0)[..5], &[])
                .unwrap()
        }),
        raw_case("header size over 4096", 1, false, |raw| {
            raw.send(&raw_control::header(R::GET_FEATURES as u32, 1, 4097), &[])
                .unwrap()
        }),
        raw_case("header size u32::MAX", 1, false, |raw| {
            raw.send(
                &raw_control::header(R::SET_MEM_TABLE as u32, 1, u32::MAX),
                &[],
            )
            .unwrap()
        }),
        raw_case("unknown request code", 1, false, move |raw| {
            raw.send(&raw_control::message(9999, &[]), &[]).unwrap()
        }),
        raw_case("reserved header flag bits", 1, false, |raw| {
            raw.send(&raw_control::header(R::GET_FEATURES as u32, 0x101, 0), &[])
                .unwrap()
        }),
        raw_case("payload shorter than announced", 1, false, |raw| {
            let mut msg = vring_state(R::SET_VRING_NUM, 1, 256);
            msg.truncate(raw_control::HEADER_SIZE + 4);
            raw.send(&msg, &[]).unwrap()
        }),
        raw_case(
            "payload shorter than announced, then hang-up",
            1,
            true,
            |raw| {
                let mut msg = vring_state(R::SET_VRING_ADDR, 1, 0);
                msg.truncate(raw_control::HEADER_SIZE + 3);
                raw.send(&msg, &[]).unwrap()
            },
        ),
        raw_case("payload longer than the request takes", 1, false, |raw| {
            let mut msg = raw_control::message(R::SET_VRING_NUM as u32, &[0; 12]);
            msg[8..12].copy_from_slice(&12u32.to_ne_bytes());
            raw.send(&msg, &[]).unwrap()
        }),
        raw_case("a file descriptor on GET_FEATURES", 1, false, move |raw| {
            raw.send(&m(R::GET_FEATURES), &[short_fd]).unwrap()
        }),
        raw_case("SET_MEM_TABLE with no fd", 1, false, {
            let mem = mem.clone();
            move |raw| mem_table(raw, &[region(&mem, 0, 1 << 20)], &[])
        }),
        raw_case("SET_MEM_TABLE with two fds for one region", 1, false, {
            let mem = mem.clone();
            move |raw| mem_table(raw, &[region(&mem, 0, 1 << 20)], &[memfd, memfd])
        }),
        raw_case("SET_MEM_TABLE with 0 regions", 1, false, |raw| {
            mem_table(raw, &[], &[])
        }),
        raw_case("SET_MEM_TABLE with 33 regions", 1, false, {
            let mem = mem.clone();
            move |raw| {
                let regions: Vec<_> = (0..33).map(|i| region(&mem, i << 20, 1 << 20)).collect();
                mem_table(raw, &regions, &[memfd; 33])
            }
        }),
        raw_case("SET_MEM_TABLE with gpa + size overflowing", 1, false, {
            let mem = mem.clone();
            move |raw| mem_table(raw, &[region(&mem, u64::MAX - 0xfff, 1 << 20)], &[memfd])
        }),
        raw_case("SET_MEM_TABLE with overlapping regions", 1, false, {
            let mem = mem.clone();
            move |raw| {
                let regions = [region(&mem, 0, 1 << 20), region(&mem, 1 << 19, 1 << 19)];
                mem_table(raw, &regions, &[memfd, memfd])
            }
        }),
        RawCase {
            log: Some(SHORT_FILE_LOG),
            ..raw_case(
                "SET_MEM_TABLE with a file shorter than the region",
                1,
                false,
                {
                    let mem = mem.clone();
                    move |raw| mem_table(raw, &[region(&mem, 0, 1 << 20)], &[short_fd])
                },
            )
        },
        RawCase {
            log: Some(SHORT_FILE_LOG),
            ..raw_case(
                "SET_MEM_TABLE with a short file, then rings past its end",
                1,
                false,
                {
                    let mem = mem.clone();
                    move |raw| {
                        let r = region(&mem, 0, 1 << 20);
                        mem_table(raw, &[r], &[short_fd]);
                        // Rings 64 KiB into the region, 60 KiB past the end of the file: reading
                        // them would fault (SIGBUS) if the table had been accepted.
                        let base = r.user_addr + 0x10000;
                        let mut payload = 1u32.to_ne_bytes().to_vec(); // index
                        payload.extend_from_slice(&0u32.to_ne_bytes()); // flags
                        for addr in [base, base + 0x2000, base + 0x1000, 0] {
                            payload.extend_from_slice(&addr.to_ne_bytes()); // desc, used, avail, log
                        }
                        let msg = raw_control::message(R::SET_VRING_ADDR as u32, &payload);
                        // The daemon may already have closed the connection.
                        let _ = raw.send(&msg, &[]);
                    }
                },
            )
        },
        raw_case("SET_VRING_NUM 0", 1, false, |raw| {
            raw.send(&vring_state(R::SET_VRING_NUM, 1, 0), &[]).unwrap()
        }),
        raw_case("SET_VRING_NUM 65536", 1, false, |raw| {
            raw.send(&vring_state(R::SET_VRING_NUM, 1, 65536), &[])
                .unwrap()
        }),
        raw_case(
            "SET_VRING_NUM of a queue that does not exist",
            1,
            false,
            |raw| {
                raw.send(&vring_state(R::SET_VRING_NUM, 9, 256), &[])
                    .unwrap()
            },
        ),
        raw_case("SET_VRING_ADDR before any memory table", 1, false, |raw| {
            let mut payload = vec![0u8; 40];
            payload[0..4].copy_from_slice(&1u32.to_ne_bytes());
            raw.send(
                &raw_control::message(R::SET_VRING_ADDR as u32, &payload),
                &[],
            )
            .unwrap()
        }),
        raw_case("SET_VRING_KICK with two fds", 1, false, move |raw| {
            let msg = raw_control::message(R::SET_VRING_KICK as u32, &1u64.to_ne_bytes());
            raw.send(&msg, &[short_fd, short_fd]).unwrap()
        }),
    ];
    let mut f = Failures::default();
    for case in cases {
        let (_share, mut daemon) = small_daemon();
        let mut raw = RawControl::connect(daemon.socket_path()).unwrap();
        (case.send)(&raw);
        if case.hang_up {
            raw.shutdown().unwrap();
        } else {
            let state = raw.wait_closed(CONTROL_BOUND).unwrap();
            f.check(
                state == PeerState::Closed,
                format!(
                    "{}: connection still open after {CONTROL_BOUND:?}",
                    case.what
                ),
            );
        }
        drop(raw);
        check_clean_exit(&mut f, &mut daemon, case.code, case.what);
        if let Some(line) = case.log {
            f.check(
                daemon.stderr().contains(line),
                format!("{}: no \"{line}\" in the log", case.what),
            );
        }
    }
    f.assert_none();
}

/// A daemon on the unverified test share and a client connected to it and
/// initialised, for one bad request through the vhost frontend API.
fn connected() -> (Fixture, DaemonProcess, VirtioFsClient) {
    let fixture = Fixture::new(&Contents::new(), false);
    let daemon = fixture.start(&[]);
    let fs = VirtioFsClient::connect_and_init(daemon.socket_path()).unwrap();
    (fixture, daemon, fs)
}

/// SET_VRING_NUM 3 (not a power of two) on a running queue is ignored:
/// the queue keeps its size and serves on (case 55). Reading the file takes
/// more than 3 chains, so a ring of 3 would hand the daemon wrong heads.
#[test]
fn vring_num_not_a_power_of_two_is_ignored() {
    let (fixture, mut daemon, mut fs) = connected();
    fs.harness_mut()
        .connection_mut()
        .with_frontend(|fr| fr.set_vring_num(1, 3))
        .unwrap();
    let x = std::fs::read(fixture.root().join("x")).unwrap();
    assert_eq!(fs.read_file("x").unwrap(), x);
    assert!(daemon.is_running().unwrap());
    drop(fs);
    let mut f = Failures::default();
    check_clean_exit(&mut f, &mut daemon, 0, "after SET_VRING_NUM 3");
    f.assert_none();
}

/// SET_VRING_ADDR with rings outside every memory region is refused (NACK)
/// and the connection dropped, exit 1 (case 55).
#[test]
fn vring_addr_outside_memory_is_refused() {
    let (_fixture, mut daemon, mut fs) = connected();
    let outside = VringConfigData {
        queue_max_size: 256,
        queue_size: 256,
        flags: 0,
        desc_table_addr: 0x7f00_dead_0000,
        used_ring_addr: 0x7f00_dead_2000,
        avail_ring_addr: 0x7f00_dead_1000,
        log_addr: None,
    };
    let result = fs
        .harness_mut()
        .connection_mut()
        .with_frontend(|fr| fr.set_vring_addr(1, &outside));
    assert!(result.is_err(), "SET_VRING_ADDR outside memory was acked");
    drop(fs);
    let mut f = Failures::default();
    check_clean_exit(
        &mut f,
        &mut daemon,
        1,
        "after SET_VRING_ADDR outside memory",
    );
    f.assert_none();
}

/// ADD_MEM_REG of a file shorter than the region is refused (NACK), the
/// connection dropped, exit 1, no SIGBUS (case 54).
#[test]
fn added_region_past_the_end_of_its_file_is_refused() {
    let (_fixture, mut daemon, mut fs) = connected();
    let short = tempfile::tempfile().unwrap();
    short.set_len(4096).unwrap();
    let region = VhostUserMemoryRegionInfo {
        guest_phys_addr: 1 << 32,
        memory_size: 1 << 20,
        userspace_addr: 1 << 40,
        mmap_offset: 0,
        mmap_handle: short.as_raw_fd(),
    };
    let result = fs
        .harness_mut()
        .connection_mut()
        .with_frontend(|fr| fr.add_mem_region(&region));
    assert!(result.is_err(), "ADD_MEM_REG of a short file was acked");
    drop(fs);
    let mut f = Failures::default();
    check_clean_exit(&mut f, &mut daemon, 1, "after ADD_MEM_REG of a short file");
    f.check(
        daemon.stderr().contains(SHORT_FILE_LOG),
        "the refusal was not logged",
    );
    f.assert_none();
}

/// Starts a daemon on a 2-thread pool, puts 96 READs in flight, runs
/// `change` on the control connection (with the current memory regions),
/// then collects: every reply that arrives must be correct, and none may be
/// missing unless `may_drop`. Another 96 READs afterwards must all be
/// correct, and the daemon must exit cleanly after the hang-up.
fn memory_change_under_load(
    what: &str,
    may_drop: bool,
    change: impl FnOnce(&mut VirtioFsClient, &[VhostUserMemoryRegionInfo], &mut Failures),
) {
    let fixture = Fixture::new(&Contents::new(), false);
    let mut daemon = fixture.start(&["--thread-pool-size=2"]);
    let data = std::fs::read(fixture.root().join("load.bin")).unwrap();
    let mut load = Load::start(&daemon);
    let regions = load.fs.harness().memory().region_infos().unwrap();
    let mut f = Failures::default();
    change(&mut load.fs, &regions, &mut f);
    let (good, bad, lost) = load.collect(&data, Instant::now() + CONTROL_BOUND);
    eprintln!("{what}: {good} replies, {lost} dropped chains");
    f.check(
        bad == 0 && (may_drop || lost == 0),
        format!("{what}: {good} good, {bad} wrong, {lost} lost replies"),
    );
    // Kick again: chains published while memory was gone are picked up now.
    for queue in [1, 2] {
        load.fs.harness().kick(queue).unwrap();
    }
    load.publish();
    let (good, bad, lost) = load.collect(&data, Instant::now() + CONTROL_BOUND);
    f.check(
        bad == 0 && lost == 0,
        format!("after {what}: {good} good, {bad} wrong, {lost} lost"),
    );
    drop(load);
    check_clean_exit(&mut f, &mut daemon, 0, what);
    f.assert_none();
}

/// The memory table replaced (same memfd, new mapping) while 96 READs are in
/// flight on a worker pool: every reply is correct and the daemon serves on (case 57).
#[test]
fn memory_table_replaced_under_reads_in_flight() {
    memory_change_under_load("SET_MEM_TABLE under load", false, |fs, regions, f| {
        let conn = fs.harness_mut().connection_mut();
        let replaced = conn.with_frontend(|fr| fr.set_mem_table(regions));
        f.check(replaced.is_ok(), format!("SET_MEM_TABLE: {replaced:?}"));
    });
}

/// The only memory region removed (REM_MEM_REG) while 96 READs are in flight,
/// then added back: replies that arrive are correct, the rest are dropped,
/// nothing panics, and requests made afterwards are served (case 57).
#[test]
fn memory_region_removed_under_reads_in_flight() {
    memory_change_under_load("REM_MEM_REG under load", true, |fs, regions, f| {
        let conn = fs.harness_mut().connection_mut();
        let removed = conn.with_frontend(|fr| fr.remove_mem_region(&regions[0]));
        let added = conn.with_frontend(|fr| fr.add_mem_region(&regions[0]));
        f.check(removed.is_ok(), format!("REM_MEM_REG: {removed:?}"));
        f.check(added.is_ok(), format!("ADD_MEM_REG: {added:?}"));
    });
}
