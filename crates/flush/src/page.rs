//! The input of a flush: dirty pages (offset and bytes), checked once so planners can trust them.

use crate::{FlushError, Result};

/// One dirty page: the bytes that must end up at `offset`.
#[derive(Debug, Clone, Copy)]
pub struct DirtyPage<'a> {
    /// Where the bytes go in the file.
    pub offset: u64,
    /// The bytes (a page, or several pages for a large value).
    pub data: &'a [u8],
}

impl<'a> DirtyPage<'a> {
    /// A page of `data` at `offset`.
    pub fn new(offset: u64, data: &'a [u8]) -> Self {
        Self { offset, data }
    }

    /// One past the page's last byte.
    pub fn end(&self) -> u64 {
        self.offset + self.data.len() as u64
    }
}

/// The dirty pages of one flush, in buffer order, with their order by offset. Construction
/// checks that no page is empty, none overflows the address space and no two overlap, so a
/// planner never has to.
#[derive(Debug, Clone, Default)]
pub struct DirtyPages<'a> {
    pages: Vec<DirtyPage<'a>>,
    by_offset: Vec<usize>,
    total_bytes: u64,
}

impl<'a> DirtyPages<'a> {
    /// Checks and indexes `pages` (kept in the order given).
    pub fn new(pages: Vec<DirtyPage<'a>>) -> Result<Self> {
        let mut total_bytes = 0u64;
        for p in &pages {
            if p.data.is_empty() {
                return Err(FlushError::EmptyPage { offset: p.offset });
            }
            crate::backend::checked_end(p.offset, p.data.len() as u64)?;
            total_bytes += p.data.len() as u64;
        }
        let mut by_offset: Vec<usize> = (0..pages.len()).collect();
        by_offset.sort_unstable_by_key(|&i| pages[i].offset);
        for w in by_offset.windows(2) {
            let (a, b) = (&pages[w[0]], &pages[w[1]]);
            if a.end() > b.offset {
                return Err(FlushError::OverlappingPages {
                    first_start: a.offset,
                    first_end: a.end(),
                    second_start: b.offset,
                    second_end: b.end(),
                });
            }
        }
        Ok(Self {
            pages,
            by_offset,
            total_bytes,
        })
    }

    /// How many pages.
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// True when there is nothing to flush.
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// The page at buffer position `index`.
    pub fn get(&self, index: usize) -> Option<&DirtyPage<'a>> {
        self.pages.get(index)
    }

    /// Pages in buffer order.
    pub fn in_buffer_order(&self) -> &[DirtyPage<'a>] {
        &self.pages
    }

    /// `(buffer position, page)` in ascending offset order.
    pub fn by_offset(&self) -> impl Iterator<Item = (usize, &DirtyPage<'a>)> + '_ {
        self.by_offset.iter().map(move |&i| (i, &self.pages[i]))
    }

    /// Sum of all pages' lengths.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_empty_overlapping_and_overflowing_pages() {
        let a = [1u8; 8];
        assert!(matches!(
            DirtyPages::new(vec![DirtyPage::new(0, &[])]),
            Err(FlushError::EmptyPage { offset: 0 })
        ));
        assert!(matches!(
            DirtyPages::new(vec![DirtyPage::new(16, &a), DirtyPage::new(10, &a)]),
            Err(FlushError::OverlappingPages {
                first_start: 10,
                first_end: 18,
                second_start: 16,
                ..
            })
        ));
        assert!(matches!(
            DirtyPages::new(vec![DirtyPage::new(u64::MAX - 2, &a)]),
            Err(FlushError::OffsetOverflow { .. })
        ));
        let ok = DirtyPages::new(vec![
            DirtyPage::new(16, &a),
            DirtyPage::new(8, &a),
            DirtyPage::new(0, &a),
        ])
        .unwrap();
        let order: Vec<usize> = ok.by_offset().map(|(i, _)| i).collect();
        assert_eq!(order, vec![2, 1, 0]);
        assert_eq!(ok.total_bytes(), 24);
    }
}
