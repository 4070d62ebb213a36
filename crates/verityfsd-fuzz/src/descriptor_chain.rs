// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Target `descriptor_chain`: hostile descriptor tables, available rings and guest memory
//! layouts through the daemon's queue worker.
//!
//! The input describes guest memory (a fixed first region holding the rings and data, up to
//! two more anywhere in the 64-bit space), the queue size and ring addresses, a descriptor
//! table (addresses inside, across and outside the regions, any lengths, any NEXT / WRITE /
//! INDIRECT flags, `next` loops), indirect tables, raw bytes written anywhere in the first
//! region, and the available ring (any index, any heads). A FUSE request lies in the data area
//! for descriptors to point at.
//!
//! Checked: nothing panics and the kick returns (libFuzzer's timeout catches a hang); every
//! chain virtio-queue hands out is completed once, in order, with a used length no larger than
//! the chain's writable bytes (checked when no reply can overwrite the rings or the
//! tables, which would change what the daemon reads); and afterwards the same daemon still
//! answers a well-formed request on a clean queue.

use std::mem::size_of;

use arbitrary::Unstructured;
use fuse_backend_rs::abi::fuse_abi::{GetattrIn, InitIn, Opcode, OutHeader, ReadIn};
use verityfsd::request_check::opcode;
use vhost_user_backend::VringT;
use virtio_bindings::bindings::virtio_ring::{
    VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE,
};
use virtio_queue::{QueueOwnedT, QueueT};
use vm_memory::{ByteValued, Bytes, GuestAddress, GuestAddressSpace, GuestMemoryMmap};

use crate::fuse_requests::encode_request;
use crate::input::num;
use crate::mock_queue::{
    guest_memory, read_u16, read_u32, vring, write_desc, MockQueue, DESC_SIZE, MAX_QUEUE_SIZE,
};
use crate::share::{share, ShareOptions};
use verityfsd::queue_worker::Vring;

/// The first region: rings at fixed addresses, then the data area.
const REGION0: usize = 0x1_0000;
const DESC: u64 = 0x1000;
const AVAIL: u64 = 0x2000;
const USED: u64 = 0x3000;
const DATA: u64 = 0x4000;
/// Where the FUSE request lies.
const REQUEST: u64 = DATA;
const GETATTR: u32 = Opcode::Getattr as u32;
const READDIR: u32 = Opcode::Readdir as u32;
const OUT_HEADER: u32 = size_of::<OutHeader>() as u32;

fn request(op: u32, nodeid: u64, body: &[u8]) -> Vec<u8> {
    encode_request(op, 0x5eed, nodeid, body, None)
}

fn init_request() -> Vec<u8> {
    let init = InitIn {
        major: 7,
        minor: 31,
        max_readahead: 0x2_0000,
        flags: 0,
    };
    request(opcode::INIT, 0, init.as_slice())
}

/// The FUSE request the data area carries.
fn template(u: &mut Unstructured<'_>) -> Vec<u8> {
    match num::<u8>(u) % 6 {
        0 => init_request(),
        1 => request(GETATTR, 1, GetattrIn::default().as_slice()),
        2 => request(opcode::LOOKUP, 1, b"hello.txt\0"),
        3 => request(
            READDIR,
            1,
            ReadIn {
                size: 4096,
                ..Default::default()
            }
            .as_slice(),
        ),
        4 => request(opcode::FORGET, 1, &1u64.to_le_bytes()),
        _ => {
            let len = usize::from(num::<u8>(u));
            u.bytes(len.min(u.len())).unwrap_or_default().to_vec()
        }
    }
}

/// One descriptor of the input: (addr, len, flags, next).
fn descriptor(
    u: &mut Unstructured<'_>,
    regions: &[(u64, usize)],
    request_len: u32,
    size: u16,
) -> (u64, u32, u16, u16) {
    let addr = match num::<u8>(u) % 8 {
        0..=2 => DATA + u64::from(num::<u16>(u)) % (REGION0 as u64 - DATA),
        3 => REQUEST,
        4 => {
            let (base, len) = crate::input::pick(u, regions);
            base.wrapping_add(u64::from(num::<u16>(u)) % (len as u64 + 16))
        }
        5 => {
            // Just before the end of a region: descriptors that cross into the next one or out.
            let (base, len) = crate::input::pick(u, regions);
            base.wrapping_add(len as u64)
                .wrapping_sub(u64::from(num::<u8>(u)))
        }
        _ => num(u),
    };
    let len = pick!(
        u,
        [
            request_len,
            request_len,
            0x1000,
            OUT_HEADER,
            0,
            1,
            u32::from(num::<u16>(u)),
            num(u),
        ],
    );
    let flags = match num::<u8>(u) {
        0xff => num(u),
        b => u16::from(b & 7),
    };
    let next = match num::<u8>(u) {
        0xff => num(u),
        b => u16::from(b) % size.saturating_add(2),
    };
    (addr, len, flags, next)
}

fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    let (a0, a1) = (a.0, a.0.saturating_add(a.1));
    let (b0, b1) = (b.0, b.0.saturating_add(b.1));
    a0 < b1 && b0 < a1
}

/// A chain as virtio-queue hands it out: its head and its writable (address, length) ranges.
type Offered = (u16, Vec<(u64, u64)>);

/// The chains virtio-queue hands out for the current rings: (head, writable ranges), or
/// `None` when the available ring itself is refused.
fn chains(vring: &Vring, mem: &GuestMemoryMmap<()>) -> Option<Vec<Offered>> {
    // A second queue over the same rings, so the daemon's own queue state is not touched.
    let state = vring.get_ref();
    let live = state.get_queue();
    let mut queue = virtio_queue::Queue::new(MAX_QUEUE_SIZE).ok()?;
    queue.set_size(live.size());
    queue.set_desc_table_address(
        Some(live.desc_table() as u32),
        Some((live.desc_table() >> 32) as u32),
    );
    queue.set_avail_ring_address(
        Some(live.avail_ring() as u32),
        Some((live.avail_ring() >> 32) as u32),
    );
    queue.set_used_ring_address(
        Some(live.used_ring() as u32),
        Some((live.used_ring() >> 32) as u32),
    );
    queue.set_next_avail(live.next_avail());
    queue.set_event_idx(live.event_idx_enabled());
    queue.set_ready(true);
    drop(state);
    let iter = queue.iter(mem).ok()?;
    Some(
        iter.map(|chain| {
            let head = chain.head_index();
            let writable = chain
                .writable()
                .map(|d| (d.addr().0, u64::from(d.len())))
                .collect();
            (head, writable)
        })
        .collect(),
    )
}

/// Fuzz target: hostile descriptor chains (see the module docs).
pub fn descriptor_chain(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let worker = share().worker(ShareOptions::from_byte(0));
    let mut control = MockQueue::new();
    if num::<u8>(&mut u) & 1 == 0 {
        let done = control.serve(&worker, &init_request(), 0x1000);
        assert!(done.used_len > OUT_HEADER, "INIT failed on a clean queue");
    }

    // Guest memory.
    let mut regions = vec![(0u64, REGION0)];
    for _ in 0..num::<u8>(&mut u) % 3 {
        let base = pick!(
            &mut u,
            [
                0x1_0000,
                0x1_1000,
                0x2_0000,
                0x10_0000,
                0xffff_f000,
                1 << 40,
                u64::MAX - 0xfff,
                u64::MAX - 0x2fff,
            ],
        );
        regions.push((base, (1 + usize::from(num::<u8>(&mut u) % 8)) * 0x1000));
    }
    regions.sort_unstable();
    let Some(mem) = guest_memory(&regions) else {
        return;
    };

    // The vring.
    let size = pick!(&mut u, [1u16, 2, 4, 8, 8, 16, 16, 32, 256, 0, 3, 1024]);
    let (desc, avail, used) = if num::<u8>(&mut u) == 0xff {
        (num(&mut u), num(&mut u), num(&mut u))
    } else {
        (DESC, AVAIL, USED)
    };
    let Some(vring) = vring(&mem, size, desc, avail, used) else {
        return;
    };
    vring.set_queue_event_idx(num::<u8>(&mut u) & 1 == 1);
    let next_avail: u16 = pick!(&mut u, [0, 0, 0, u16::MAX, num(&mut u)]);
    vring.set_queue_next_avail(next_avail);
    let size = vring.get_ref().get_queue().size();

    let m = mem.memory();
    let req = template(&mut u);
    let _ = m.write_slice(&req, GuestAddress(REQUEST));
    let request_len = req.len() as u32;

    // The descriptor table, and an indirect table behind some INDIRECT descriptors.
    let count = usize::from(num::<u8>(&mut u)) % (usize::from(size) + 1);
    for i in 0..count {
        let (addr, len, flags, next) = descriptor(&mut u, &regions, request_len, size);
        write_desc(
            &m,
            desc.wrapping_add(i as u64 * DESC_SIZE),
            addr,
            len,
            flags,
            next,
        );
        if u32::from(flags) & VRING_DESC_F_INDIRECT != 0 && num::<u8>(&mut u) < 0xc0 {
            let entries = num::<u8>(&mut u) % 6;
            for j in 0..u64::from(entries) {
                let (a, l, mut f, n) = descriptor(&mut u, &regions, request_len, size);
                if num::<u8>(&mut u) < 0xf0 {
                    f &= !(VRING_DESC_F_INDIRECT as u16);
                    f |= if j + 1 < u64::from(entries) {
                        VRING_DESC_F_NEXT as u16
                    } else {
                        0
                    };
                    if j > 0 {
                        f |= VRING_DESC_F_WRITE as u16;
                    }
                }
                let n = if num::<u8>(&mut u) < 0xf0 {
                    (j + 1) as u16
                } else {
                    n
                };
                write_desc(&m, addr.wrapping_add(j * DESC_SIZE), a, l, f, n);
            }
        }
    }
    // Raw bytes anywhere in the first region.
    for _ in 0..num::<u8>(&mut u) % 3 {
        let at = u64::from(num::<u16>(&mut u)) % REGION0 as u64;
        let len = usize::from(num::<u8>(&mut u) % 64);
        let bytes = u.bytes(len.min(u.len())).unwrap_or_default();
        let _ = m.write_slice(bytes, GuestAddress(at));
    }
    // The available ring.
    let offered: u16 = match num::<u8>(&mut u) {
        0xff => num(&mut u),
        b => u16::from(b) % size.saturating_add(2),
    };
    for i in 0..offered.min(size) {
        let head: u16 = match num::<u8>(&mut u) {
            0xff => num(&mut u),
            b => u16::from(b) % size.max(1),
        };
        let slot = next_avail.wrapping_add(i) % size.max(1);
        let _ = m.write_slice(
            &head.to_le_bytes(),
            GuestAddress(avail.wrapping_add(4 + 2 * u64::from(slot))),
        );
    }
    let _ = m.write_slice(
        &next_avail.wrapping_add(offered).to_le_bytes(),
        GuestAddress(avail.wrapping_add(2)),
    );

    // What virtio-queue will hand out, and whether replies can overwrite what it reads.
    let expected = chains(&vring, &m);
    let ring_bytes = 6 + 8 * u64::from(size);
    let mut protected = vec![
        (desc, DESC_SIZE * u64::from(size)),
        (avail, ring_bytes),
        (used, ring_bytes),
    ];
    for i in 0..u64::from(size) {
        let at = desc.wrapping_add(i * DESC_SIZE);
        if let (Some(flags), Some(len)) = (
            read_u16(&m, at.wrapping_add(12)),
            read_u32(&m, at.wrapping_add(8)),
        ) {
            if u32::from(flags) & VRING_DESC_F_INDIRECT != 0 {
                let mut addr = [0u8; 8];
                if m.read_slice(&mut addr, GuestAddress(at)).is_ok() {
                    protected.push((u64::from_le_bytes(addr), u64::from(len)));
                }
            }
        }
    }
    let used_before = read_u16(&m, used.wrapping_add(2));
    drop(m);

    worker.process_queue(&vring, &mem, 0);

    let m = mem.memory();
    // A head outside the table cannot be returned (virtio-queue refuses the used entry).
    let expected = expected.map(|c| c.into_iter().filter(|(h, _)| *h < size).collect::<Vec<_>>());
    if let (Some(chains), Some(before)) = (&expected, used_before) {
        let stable = chains
            .iter()
            .flat_map(|(_, w)| w.iter())
            .all(|w| protected.iter().all(|p| !overlaps(*w, *p)));
        let entries: Option<Vec<(u32, u32)>> = (0..chains.len() as u64)
            .map(|i| {
                let at = used.wrapping_add(4 + 8 * (i % u64::from(size)));
                Some((read_u32(&m, at)?, read_u32(&m, at.wrapping_add(4))?))
            })
            .collect();
        if let (true, Some(entries), Some(after)) =
            (stable, entries, read_u16(&m, used.wrapping_add(2)))
        {
            assert_eq!(
                after,
                if chains.is_empty() {
                    before
                } else {
                    chains.len() as u16
                },
                "used index after {} chains",
                chains.len()
            );
            for ((head, writable), (id, len)) in chains.iter().zip(entries) {
                assert_eq!(id, u32::from(*head), "used entries out of order");
                let capacity: u64 = writable.iter().map(|w| w.1).sum();
                assert!(
                    u64::from(len) <= capacity,
                    "used length {len} of chain {head} exceeds its {capacity} writable bytes"
                );
                assert!(
                    len == 0 || len >= OUT_HEADER,
                    "used length {len} shorter than a header"
                );
            }
        }
    }
    drop(m);

    // The daemon still serves a well-formed request on a clean queue.
    let getattr = request(GETATTR, 1, GetattrIn::default().as_slice());
    let done = control.serve(&worker, &getattr, 0x1000);
    let mut out = OutHeader::default();
    out.as_mut_slice()
        .copy_from_slice(&done.reply[..size_of::<OutHeader>()]);
    assert_eq!(out.len, done.used_len, "reply length after hostile chains");
    assert_eq!(out.unique, 0x5eed);
    assert!(
        out.error == 0 || out.error == -libc::EIO,
        "GETATTR after hostile chains: errno {}",
        -out.error
    );
}
