// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Encoding, strict decoding and lookup of a manifest (`docs/manifest.md`).

use std::io::Write as _;

use sha2::{Digest, Sha256};
use verity_merkle::{FileDigest, HashAlgorithm, MerkleParams};

use crate::entry::{is_normal_path, parent_of, Entry, EntryKind};
use crate::escape::{escape_bytes, escape_into, unescape_bytes};

/// First line of every manifest; the number is the format version.
pub const FORMAT_HEADER: &str = "verityfsd-manifest 1";

/// Errors decoding or building a manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not UTF-8 text (the format is ASCII).
    #[error("manifest is not ASCII text")]
    NotText,
    /// The first line is not the format header.
    #[error("not a verityfsd manifest, or an unsupported version (first line must be {FORMAT_HEADER:?})")]
    BadHeader,
    /// A line could not be decoded.
    #[error("manifest line {line}: {reason}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The bytes are valid but not in canonical form (order, spacing, escaping).
    #[error("manifest is not in canonical form (entries must be sorted, unique and encoded exactly as verityctl seal writes them)")]
    NotCanonical,
    /// Two entries share a path.
    #[error("manifest lists {0:?} twice")]
    DuplicatePath(String),
    /// An entry's parent is missing or not a directory.
    #[error("manifest entry {0:?} has no parent directory entry")]
    MissingParent(String),
    /// There is no root directory entry.
    #[error("manifest has no root directory entry \"/\"")]
    MissingRoot,
    /// A file digest uses another algorithm than the manifest's parameters.
    #[error(
        "manifest entry {0:?} has a digest of another hash algorithm than the manifest parameters"
    )]
    AlgorithmMismatch(String),
}

/// A decoded manifest: parameters, entries sorted by path, and its digest.
///
/// Lookups are binary searches over the sorted entries: no index besides
/// them, so memory grows only with the entries themselves.
#[derive(Debug, Clone)]
pub struct Manifest {
    params: MerkleParams,
    entries: Vec<Entry>,
    digest: FileDigest,
    bytes_len: usize,
}

fn bad(line: usize, reason: impl Into<String>) -> ManifestError {
    ManifestError::BadLine {
        line,
        reason: reason.into(),
    }
}

impl Manifest {
    /// Builds a manifest from entries in any order; they are sorted here.
    ///
    /// The entries are checked as [`Manifest::parse`] checks decoded ones
    /// (normalised unique paths, the root, parents, digest algorithm);
    /// permission bits are masked to `0o7777`.
    pub fn new(params: MerkleParams, mut entries: Vec<Entry>) -> Result<Self, ManifestError> {
        entries.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        for (i, e) in entries.iter_mut().enumerate() {
            if !is_normal_path(&e.path) {
                return Err(bad(i + 4, "path must be absolute and normalised"));
            }
            if e.digest()
                .is_some_and(|d| d.algorithm() != params.algorithm())
            {
                return Err(ManifestError::AlgorithmMismatch(escape_bytes(&e.path)));
            }
            e.mode &= 0o7777;
        }
        if let Some(w) = entries.windows(2).find(|w| w[0].path == w[1].path) {
            return Err(ManifestError::DuplicatePath(escape_bytes(&w[0].path)));
        }
        check_tree(&entries)?;
        let bytes = encode(&params, &entries);
        Ok(Manifest {
            digest: digest_of(&bytes),
            bytes_len: bytes.len(),
            params,
            entries,
        })
    }

    /// The canonical bytes of this manifest.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(&self.params, &self.entries)
    }

    /// Decodes a manifest, accepting only its canonical form.
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        let text = std::str::from_utf8(bytes).map_err(|_| ManifestError::NotText)?;
        if !text.is_ascii() {
            return Err(ManifestError::NotText);
        }
        let mut lines = text.split_terminator('\n');
        if lines.next() != Some(FORMAT_HEADER) {
            return Err(ManifestError::BadHeader);
        }
        let params = parse_params(lines.next().unwrap_or(""), 2)?;
        let count_line = lines.next().unwrap_or("");
        let count: usize = count_line
            .strip_prefix("entries ")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| bad(3, "expected \"entries N\""))?;
        // Each part is re-encoded and compared with the input as it is
        // decoded: only the canonical form is accepted.
        let mut expect = Vec::with_capacity(256);
        encode_header(&params, count, &mut expect);
        if !bytes.starts_with(&expect) {
            return Err(ManifestError::NotCanonical);
        }
        let mut at = expect.len();
        let mut entries: Vec<Entry> = Vec::with_capacity(count.min(bytes.len() / 16));
        for (i, line) in lines.enumerate() {
            let e = parse_entry(line, i + 4, &params)?;
            expect.clear();
            encode_entry(&e, &mut expect);
            if bytes.get(at..at + expect.len()) != Some(expect.as_slice()) {
                return Err(ManifestError::NotCanonical);
            }
            at += expect.len();
            if entries.last().is_some_and(|last| last.path >= e.path) {
                return Err(ManifestError::NotCanonical);
            }
            entries.push(e);
        }
        if entries.len() != count {
            return Err(bad(
                3,
                format!("says {count} entries, found {}", entries.len()),
            ));
        }
        if at != bytes.len() {
            return Err(ManifestError::NotCanonical);
        }
        check_tree(&entries)?;
        entries.shrink_to_fit();
        Ok(Manifest {
            params,
            entries,
            digest: digest_of(bytes),
            bytes_len: bytes.len(),
        })
    }

    /// The manifest digest: SHA-256 of the canonical bytes, as `sha256:HEX`.
    pub fn digest(&self) -> &FileDigest {
        &self.digest
    }

    /// The Merkle parameters every file digest was computed with.
    pub fn params(&self) -> &MerkleParams {
        &self.params
    }

    /// All entries, sorted by path (the root first).
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Size of the canonical encoding in bytes.
    pub fn encoded_len(&self) -> usize {
        self.bytes_len
    }

    /// The entry at `path` (absolute, raw bytes, `/` for the root).
    pub fn get(&self, path: &[u8]) -> Option<&Entry> {
        self.position(path).map(|i| &self.entries[i])
    }

    /// Index of the entry at `path` in [`Manifest::entries`].
    pub fn position(&self, path: &[u8]) -> Option<usize> {
        find(&self.entries, path)
    }

    /// The entry named `name` in directory `dir`.
    pub fn child(&self, dir: &[u8], name: &[u8]) -> Option<&Entry> {
        self.get(&join(dir, name))
    }

    /// The direct children of directory `dir`, in path order.
    pub fn children<'a>(&'a self, dir: &'a [u8]) -> impl Iterator<Item = &'a Entry> + 'a {
        let prefix = if dir == b"/" {
            b"/".to_vec()
        } else {
            join(dir, b"")
        };
        let start = self
            .entries
            .partition_point(|e| e.path.as_slice() < prefix.as_slice());
        self.entries[start..]
            .iter()
            .take_while(move |e| e.path.starts_with(&prefix))
            .filter(move |e| e.path != b"/" && parent_of(&e.path) == Some(dir))
    }
}

/// The manifest digest of canonical bytes.
fn digest_of(bytes: &[u8]) -> FileDigest {
    FileDigest::new(HashAlgorithm::Sha256, &Sha256::digest(bytes))
        .expect("SHA-256 output is 32 bytes")
}

/// Checks entries sorted by unique path: the root directory comes first and
/// every other entry's parent is a directory entry.
fn check_tree(entries: &[Entry]) -> Result<(), ManifestError> {
    match entries.first() {
        Some(e) if e.path == b"/" && e.kind == EntryKind::Directory => {}
        _ => return Err(ManifestError::MissingRoot),
    }
    // The parent checked last: most entries share it with the one before.
    let mut checked: &[u8] = b"/";
    for (i, e) in entries.iter().enumerate().skip(1) {
        let parent = parent_of(&e.path).unwrap_or_default();
        if parent == checked {
            continue;
        }
        // The parent sorts before its children: search only there.
        match find(&entries[..i], parent).map(|j| &entries[j].kind) {
            Some(EntryKind::Directory) => checked = parent,
            _ => return Err(ManifestError::MissingParent(escape_bytes(&e.path))),
        }
    }
    Ok(())
}

/// Index of the entry at `path` in `entries` (sorted by path).
fn find(entries: &[Entry], path: &[u8]) -> Option<usize> {
    entries
        .binary_search_by(|e| e.path.as_slice().cmp(path))
        .ok()
}

/// `dir` + `/` + `name` for an absolute manifest path.
pub fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(dir.len() + 1 + name.len());
    p.extend_from_slice(dir);
    if dir != b"/" {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

fn parse_params(line: &str, no: usize) -> Result<MerkleParams, ManifestError> {
    let f: Vec<&str> = line.split(' ').collect();
    if f.len() != 4 || f[0] != "params" {
        return Err(bad(no, "expected \"params ALG BLOCK_SIZE SALT\""));
    }
    let alg: HashAlgorithm = f[1].parse().map_err(|e| bad(no, format!("{e}")))?;
    let bs: u64 = f[2]
        .parse()
        .map_err(|_| bad(no, "block size is not a number"))?;
    let salt = if f[3] == "-" {
        Vec::new()
    } else {
        hex::decode(f[3]).map_err(|_| bad(no, "salt is not hex"))?
    };
    MerkleParams::new(alg, bs, &salt).map_err(|e| bad(no, format!("{e}")))
}

fn parse_entry(line: &str, no: usize, params: &MerkleParams) -> Result<Entry, ManifestError> {
    let mut f = [""; 7];
    let mut n = 0;
    for field in line.split(' ') {
        if let Some(slot) = f.get_mut(n) {
            *slot = field;
        }
        n += 1;
    }
    if n != 7 {
        return Err(bad(
            no,
            "expected 7 fields: TYPE MODE UID GID SIZE VALUE PATH",
        ));
    }
    let num = |s: &str, what: &str| {
        s.parse::<u64>()
            .map_err(|_| bad(no, format!("{what} is not a number")))
    };
    let mode = u32::from_str_radix(f[1], 8)
        .ok()
        .filter(|m| *m <= 0o7777 && f[1].len() == 4)
        .ok_or_else(|| bad(no, "mode must be 4 octal digits"))?;
    let uid = u32::try_from(num(f[2], "uid")?).map_err(|_| bad(no, "uid out of range"))?;
    let gid = u32::try_from(num(f[3], "gid")?).map_err(|_| bad(no, "gid out of range"))?;
    let path = unescape_bytes(f[6]).ok_or_else(|| bad(no, "path is not escaped canonically"))?;
    if !is_normal_path(&path) {
        return Err(bad(no, "path must be absolute and normalised"));
    }
    let none = |s: &str, what: &str| {
        if s == "-" {
            Ok(())
        } else {
            Err(bad(no, format!("{what} must be \"-\"")))
        }
    };
    let kind = match f[0] {
        "d" | "p" | "s" => {
            none(f[4], "size")?;
            none(f[5], "value")?;
            match f[0] {
                "d" => EntryKind::Directory,
                "p" => EntryKind::Fifo,
                _ => EntryKind::Socket,
            }
        }
        "f" => {
            let size = num(f[4], "size")?;
            let digest: FileDigest = f[5].parse().map_err(|e| bad(no, format!("{e}")))?;
            if digest.algorithm() != params.algorithm() {
                return Err(ManifestError::AlgorithmMismatch(escape_bytes(&path)));
            }
            EntryKind::File { size, digest }
        }
        "l" => {
            let target = unescape_bytes(f[5])
                .ok_or_else(|| bad(no, "symlink target is not escaped canonically"))?;
            if num(f[4], "size")? != target.len() as u64 {
                return Err(bad(no, "symlink size differs from the target length"));
            }
            EntryKind::Symlink { target }
        }
        "c" | "b" => {
            none(f[4], "size")?;
            let rdev = num(f[5], "device number")?;
            if f[0] == "c" {
                EntryKind::CharDevice { rdev }
            } else {
                EntryKind::BlockDevice { rdev }
            }
        }
        other => return Err(bad(no, format!("unknown entry type {other:?}"))),
    };
    Ok(Entry {
        path,
        kind,
        mode,
        uid,
        gid,
    })
}

fn encode(params: &MerkleParams, entries: &[Entry]) -> Vec<u8> {
    // About 110 bytes per file entry with a SHA-256 digest and a short path.
    let mut out = Vec::with_capacity(64 + entries.len() * 112);
    encode_header(params, entries.len(), &mut out);
    for e in entries {
        encode_entry(e, &mut out);
    }
    out
}

/// The three header lines. Writing to a `Vec` cannot fail.
fn encode_header(params: &MerkleParams, count: usize, out: &mut Vec<u8>) {
    let salt = if params.salt().is_empty() {
        "-".to_owned()
    } else {
        hex::encode(params.salt())
    };
    let _ = write!(
        out,
        "{FORMAT_HEADER}\nparams {} {} {salt}\nentries {count}\n",
        params.algorithm(),
        params.block_size()
    );
}

/// One entry line, `\n` included. Writing to a `Vec` cannot fail.
fn encode_entry(e: &Entry, out: &mut Vec<u8>) {
    let m = e.mode & 0o7777;
    let octal = |shift: u32| b'0' + ((m >> shift) & 7) as u8;
    // Type codes are ASCII letters.
    out.extend_from_slice(&[e.kind.code() as u8, b' ']);
    out.extend_from_slice(&[octal(9), octal(6), octal(3), octal(0)]);
    let _ = write!(out, " {} {} ", e.uid, e.gid);
    match &e.kind {
        EntryKind::Directory | EntryKind::Fifo | EntryKind::Socket => {
            out.extend_from_slice(b"- -");
        }
        EntryKind::File { size, digest } => {
            let _ = write!(out, "{size} {}:", digest.algorithm());
            let raw = digest.as_bytes();
            let mut hex_buf = [0u8; 2 * verity_merkle::MAX_DIGEST_SIZE];
            let hex_out = &mut hex_buf[..2 * raw.len()];
            // The buffer is exactly twice the digest length.
            let _ = hex::encode_to_slice(raw, hex_out);
            out.extend_from_slice(hex_out);
        }
        EntryKind::Symlink { target } => {
            let _ = write!(out, "{} ", target.len());
            escape_into(target, out);
        }
        EntryKind::CharDevice { rdev } | EntryKind::BlockDevice { rdev } => {
            let _ = write!(out, "- {rdev}");
        }
    }
    out.push(b' ');
    escape_into(&e.path, out);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: EntryKind) -> Entry {
        Entry {
            path: path.as_bytes().to_vec(),
            kind,
            mode: 0o755,
            uid: 0,
            gid: 0,
        }
    }

    fn sample() -> Manifest {
        let d: FileDigest =
            "sha256:3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95"
                .parse()
                .unwrap();
        Manifest::new(
            MerkleParams::default(),
            vec![
                entry("/etc/passwd", EntryKind::File { size: 0, digest: d }),
                entry("/", EntryKind::Directory),
                entry("/etc", EntryKind::Directory),
                entry("/bin", EntryKind::Directory),
                entry(
                    "/bin/sh",
                    EntryKind::Symlink {
                        target: b"busy box".to_vec(),
                    },
                ),
                entry("/dev", EntryKind::Directory),
                entry("/dev/null", EntryKind::CharDevice { rdev: 259 }),
                entry("/etc/a b\n", EntryKind::Fifo),
            ],
        )
        .unwrap()
    }

    #[test]
    fn encodes_canonically_and_round_trips() {
        let m = sample();
        let bytes = m.to_bytes();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with(
            "verityfsd-manifest 1\nparams sha256 4096 -\nentries 8\nd 0755 0 0 - - /\n"
        ));
        assert!(
            text.contains("\nl 0755 0 0 8 busy%20box /bin/sh\n"),
            "{text}"
        );
        assert!(text.contains("\np 0755 0 0 - - /etc/a%20b%0a\n"), "{text}");
        let again = Manifest::parse(&bytes).unwrap();
        assert_eq!(again.digest(), m.digest());
        assert_eq!(again.entries(), m.entries());
        assert_eq!(
            m.digest().to_string(),
            format!("sha256:{}", hex::encode(Sha256::digest(&bytes)))
        );
    }

    #[test]
    fn lookups() {
        let m = sample();
        assert_eq!(m.get(b"/bin/sh").unwrap().size(), 8);
        assert!(m.child(b"/", b"etc").is_some());
        assert!(m.child(b"/etc", b"passwd").unwrap().digest().is_some());
        let names: Vec<&[u8]> = m.children(b"/").map(|e| e.name()).collect();
        assert_eq!(names, vec![&b"bin"[..], b"dev", b"etc"]);
        let names: Vec<&[u8]> = m.children(b"/etc").map(|e| e.name()).collect();
        assert_eq!(names, vec![&b"a b\n"[..], b"passwd"]);
    }

    #[test]
    fn new_checks_entries_like_parse() {
        let root = entry("/", EntryKind::Directory);
        let p = MerkleParams::default();
        let with = |extra: Vec<Entry>| {
            let mut all = vec![root.clone()];
            all.extend(extra);
            Manifest::new(p.clone(), all)
        };
        assert_eq!(
            with(vec![
                entry("/a", EntryKind::Fifo),
                entry("/a", EntryKind::Fifo)
            ])
            .unwrap_err(),
            ManifestError::DuplicatePath("/a".into())
        );
        assert_eq!(
            with(vec![entry("/a/b", EntryKind::Fifo)]).unwrap_err(),
            ManifestError::MissingParent("/a/b".into())
        );
        assert_eq!(
            with(vec![
                entry("/a", EntryKind::Fifo),
                entry("/a/b", EntryKind::Fifo)
            ])
            .unwrap_err(),
            ManifestError::MissingParent("/a/b".into())
        );
        assert!(with(vec![entry("/a/../b", EntryKind::Fifo)]).is_err());
        assert_eq!(
            Manifest::new(p.clone(), vec![entry("/a", EntryKind::Directory)]).unwrap_err(),
            ManifestError::MissingRoot
        );
        let sha512: FileDigest = format!("sha512:{}", "ab".repeat(64)).parse().unwrap();
        assert_eq!(
            with(vec![entry(
                "/f",
                EntryKind::File {
                    size: 1,
                    digest: sha512
                }
            )])
            .unwrap_err(),
            ManifestError::AlgorithmMismatch("/f".into())
        );
        let mut odd = entry("/x", EntryKind::Socket);
        odd.mode = 0o170644;
        let m = with(vec![odd]).unwrap();
        assert_eq!(m.get(b"/x").unwrap().mode, 0o644);
        let again = Manifest::parse(&m.to_bytes()).unwrap();
        assert_eq!(again.entries(), m.entries());
        assert_eq!(again.digest(), m.digest());
    }

    #[test]
    fn rejects_altered_manifests() {
        let good = String::from_utf8(sample().to_bytes()).unwrap();
        let cases = [
            good.replacen("verityfsd-manifest 1", "verityfsd-manifest 2", 1),
            good.replacen("entries 8", "entries 9", 1),
            good.replacen("d 0755 0 0 - - /etc\n", "", 1), // orphaned children
            good.replacen("d 0755 0 0 - - /bin\n", "", 1) + "d 0755 0 0 - - /bin\n", // order
            good.replacen(" /bin/sh", " /bin//sh", 1),
            good.replacen("0755 0 0 - - /dev\n", "755 0 0 - - /dev\n", 1),
            good.replacen("busy%20box", "busy%20boxx", 1),
            good.replacen("sha256:3d", "sha512:3d", 1),
            good.replacen("\n", "\r\n", 1),
            good.clone() + "\n",
            good.replacen("/etc/a%20b%0a", "/etc/a b", 1),
            good[..good.len() - 1].to_owned(),
            good.replacen("sha256:3d248ca5", "sha256:3D248CA5", 1),
            good.replacen(" /dev/null\n", " /dev/null\n\n", 1),
        ];
        for (i, bad) in cases.iter().enumerate() {
            assert!(Manifest::parse(bad.as_bytes()).is_err(), "case {i}: {bad}");
        }
        assert!(Manifest::parse(good.as_bytes()).is_ok());
    }
}
