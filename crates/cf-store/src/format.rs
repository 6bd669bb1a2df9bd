//! The on-disk commit slot: one checksummed page naming a space's root, extents and txn.
//!
//! The superblock (pages 0 and 1 of the file) and every column family's two commit slots
//! (the first two pages of its first extent) share this layout, little-endian:
//!
//! | bytes        | field                                                             |
//! |--------------|-------------------------------------------------------------------|
//! | 0..8         | magic: `CFSTORE\0` (superblock) or `CFSLOT\0\0` (column family)     |
//! | 8..12        | format version: 3 (leaves of up to 16 pages); 1 and 2 read          |
//! | 12..16       | page size                                                         |
//! | 16..24       | owner: 0 for the superblock, the column family's id otherwise     |
//! | 24..32       | txn: commit counter of the owner; the newer valid slot wins       |
//! | 32..56       | root: `TreeRoot` of the catalog (superblock) or table directory   |
//! | 56..64       | aux: next column-family id (superblock); the catalog txn that     |
//! |              | created the column family (column-family slot)                    |
//! | 64..68       | extent count n                                                    |
//! | 68..72       | zero                                                              |
//! | 72..72+16n   | extents: (first page u64, page count u64)                         |
//! | ..page-4     | zero                                                              |
//! | page-4..page | crc32c of bytes 0..page-4                                         |
//!
//! A slot is written whole in one call, so a torn write fails its checksum and recovery
//! uses the other slot.

use crate::btree::{PageId, TreeRoot};

/// The format this build writes: 3, leaves of up to 16 pages (64 KiB at 4 KiB pages; see
/// `btree::node`'s "Leaf size").
pub const FORMAT_VERSION: u32 = 3;
/// The oldest format this build reads. Version 1 had one-page leaves only and version 2
/// leaves of up to four pages, each a valid version-3 leaf, so such a file opens; its later
/// commits write version-3 slots, which builds that know only an older version refuse.
pub const OLDEST_FORMAT_VERSION: u32 = 1;
/// Magic of a superblock slot.
pub const SUPERBLOCK_MAGIC: [u8; 8] = *b"CFSTORE\0";
/// Magic of a column family's commit slot.
pub const CF_SLOT_MAGIC: [u8; 8] = *b"CFSLOT\0\0";
const HEADER: usize = 72;
const EXTENT: usize = 16;

/// A contiguous range of pages owned by one space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Extent {
    /// First page.
    pub start: PageId,
    /// Number of pages.
    pub pages: u64,
}

impl Extent {
    /// One past the last page.
    pub fn end(&self) -> PageId {
        self.start + self.pages
    }
}

/// The decoded contents of a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// `SUPERBLOCK_MAGIC` or `CF_SLOT_MAGIC`.
    pub magic: [u8; 8],
    /// 0 for the superblock, else the column family id.
    pub owner: u64,
    /// Commit counter.
    pub txn: u64,
    /// Root of the catalog or the table directory.
    pub root: TreeRoot,
    /// Next column-family id (superblock only).
    pub aux: u64,
    /// Every extent the owner holds.
    pub extents: Vec<Extent>,
}

/// Why a slot page did not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotProblem {
    /// Not a slot of the expected kind at all.
    BadMagic,
    /// A slot of another format version.
    Version(u32),
    /// Written with another page size.
    PageSize(u32),
    /// The checksum does not match (torn or corrupt).
    Checksum,
    /// A field that cannot be right.
    Field(&'static str),
}

/// Most extents one slot can name at `page_size`.
pub fn max_extents(page_size: usize) -> usize {
    (page_size - HEADER - 4) / EXTENT
}

impl Slot {
    /// The superblock a new file's first commit writes into slot 0: txn 1, an empty catalog,
    /// next column-family id 1, no extents. The store writes nothing else before it, so a
    /// file that holds no more than parts of this page is a creation cut short
    /// (`db::is_unfinished_creation`).
    pub fn new_file_superblock() -> Slot {
        Slot {
            magic: SUPERBLOCK_MAGIC,
            owner: 0,
            txn: 1,
            root: TreeRoot::default(),
            aux: 1,
            extents: Vec::new(),
        }
    }

    /// Encodes into one page. `None` if the extents do not fit.
    pub fn encode(&self, page_size: usize) -> Option<Box<[u8]>> {
        if self.extents.len() > max_extents(page_size) {
            return None;
        }
        let mut p = vec![0u8; page_size].into_boxed_slice();
        p[0..8].copy_from_slice(&self.magic);
        p[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        p[12..16].copy_from_slice(&(page_size as u32).to_le_bytes());
        p[16..24].copy_from_slice(&self.owner.to_le_bytes());
        p[24..32].copy_from_slice(&self.txn.to_le_bytes());
        p[32..56].copy_from_slice(&self.root.encode());
        p[56..64].copy_from_slice(&self.aux.to_le_bytes());
        p[64..68].copy_from_slice(&(self.extents.len() as u32).to_le_bytes());
        for (i, e) in self.extents.iter().enumerate() {
            let at = HEADER + i * EXTENT;
            p[at..at + 8].copy_from_slice(&e.start.to_le_bytes());
            p[at + 8..at + 16].copy_from_slice(&e.pages.to_le_bytes());
        }
        let crc = crate::checksum::crc32c(&p[..page_size - 4]);
        p[page_size - 4..].copy_from_slice(&crc.to_le_bytes());
        Some(p)
    }

    /// Decodes a slot page of the kind `magic`. Never panics on any input.
    pub fn decode(page: &[u8], magic: [u8; 8], page_size: usize) -> Result<Slot, SlotProblem> {
        let u32_at = |at: usize| u32::from_le_bytes(page[at..at + 4].try_into().expect("4 bytes"));
        let u64_at = |at: usize| u64::from_le_bytes(page[at..at + 8].try_into().expect("8 bytes"));
        if page.len() != page_size || page_size < HEADER + 4 || page[0..8] != magic {
            return Err(SlotProblem::BadMagic);
        }
        let stored = u32::from_le_bytes(page[page_size - 4..].try_into().expect("4 bytes"));
        if crate::checksum::crc32c(&page[..page_size - 4]) != stored {
            return Err(SlotProblem::Checksum);
        }
        let version = u32_at(8);
        if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(SlotProblem::Version(version));
        }
        let ps = u32_at(12);
        if ps as usize != page_size {
            return Err(SlotProblem::PageSize(ps));
        }
        let root = TreeRoot::decode(&page[32..56]).ok_or(SlotProblem::Field("root"))?;
        // Counters this large cannot come from a real file and would overflow when advanced.
        if u64_at(24) >= 1 << 62 {
            return Err(SlotProblem::Field("txn"));
        }
        if u64_at(56) >= 1 << 62 {
            return Err(SlotProblem::Field("aux"));
        }
        let count = u32_at(64) as usize;
        if count > max_extents(page_size) {
            return Err(SlotProblem::Field("extent count"));
        }
        let mut extents = Vec::with_capacity(count);
        for i in 0..count {
            let at = HEADER + i * EXTENT;
            let e = Extent {
                start: u64_at(at),
                pages: u64_at(at + 8),
            };
            if e.pages == 0
                || e.start
                    .checked_add(e.pages)
                    .is_none_or(|end| end > u64::MAX / page_size as u64)
            {
                return Err(SlotProblem::Field("extent"));
            }
            extents.push(e);
        }
        Ok(Slot {
            magic,
            owner: u64_at(16),
            txn: u64_at(24),
            root,
            aux: u64_at(56),
            extents,
        })
    }
}

/// Reads the page size a superblock slot was written with (bytes 12..16), if the page starts
/// with the superblock magic; for opening a file without knowing its page size.
pub fn peek_page_size(first_bytes: &[u8]) -> Option<u32> {
    if first_bytes.len() < 16 || first_bytes[0..8] != SUPERBLOCK_MAGIC {
        return None;
    }
    Some(u32::from_le_bytes(first_bytes[12..16].try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btree::NodePtr;

    fn sample() -> Slot {
        Slot {
            magic: CF_SLOT_MAGIC,
            owner: 7,
            txn: 42,
            root: TreeRoot {
                root: Some(NodePtr {
                    page: 99,
                    crc: 0xdead_beef,
                }),
                len: 1234,
            },
            aux: 0,
            extents: vec![Extent { start: 16, pages: 16 }, Extent { start: 64, pages: 32 }],
        }
    }

    #[test]
    fn round_trip_and_every_rejection() {
        let s = sample();
        let page = s.encode(4096).unwrap();
        assert_eq!(Slot::decode(&page, CF_SLOT_MAGIC, 4096).unwrap(), s);
        assert_eq!(
            Slot::decode(&page, SUPERBLOCK_MAGIC, 4096),
            Err(SlotProblem::BadMagic)
        );
        assert_eq!(
            Slot::decode(&page[..100], CF_SLOT_MAGIC, 4096),
            Err(SlotProblem::BadMagic)
        );
        for at in [9usize, 20, 40, 80, 4000, 4095] {
            let mut bad = page.to_vec();
            bad[at] ^= 1;
            assert_eq!(
                Slot::decode(&bad, CF_SLOT_MAGIC, 4096),
                Err(SlotProblem::Checksum),
                "flip at {at}"
            );
        }
        let small = s.encode(512).unwrap();
        assert_eq!(Slot::decode(&small, CF_SLOT_MAGIC, 512).unwrap(), s);
        let too_many = Slot {
            extents: vec![Extent { start: 1, pages: 1 }; max_extents(512) + 1],
            ..s
        };
        assert!(too_many.encode(512).is_none());
        assert_eq!(peek_page_size(&page), None);
    }

    #[test]
    fn never_panics_on_arbitrary_bytes() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let valid = sample().encode(512).unwrap();
        for i in 0..20_000 {
            let mut p = if i % 2 == 0 {
                valid.to_vec()
            } else {
                (0..512).map(|_| rng.gen()).collect()
            };
            for _ in 0..rng.gen_range(0..4) {
                let at = rng.gen_range(0..512);
                p[at] = rng.gen();
            }
            let len = if i % 7 == 0 { rng.gen_range(0..512) } else { 512 };
            let _ = Slot::decode(&p[..len], CF_SLOT_MAGIC, 512);
        }
    }
}
