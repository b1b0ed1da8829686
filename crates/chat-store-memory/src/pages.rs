//! Cutting pages out of ordered collections without reading all of them.

use std::ops::Bound;

use chat_domain::{Cursor, Page, PageRequest};

/// The range of ids on the cursor's side, for `BTreeSet::range` and
/// `BTreeMap::range`.
pub(crate) fn bounds<I: Copy>(cursor: Cursor<I>) -> (Bound<I>, Bound<I>) {
    match cursor {
        Cursor::Latest => (Bound::Unbounded, Bound::Unbounded),
        Cursor::Before(c) => (Bound::Unbounded, Bound::Excluded(c)),
        Cursor::After(c) => (Bound::Excluded(c), Bound::Unbounded),
    }
}

/// From ids already within [`bounds`] and in ascending order, the
/// `limit + 1` nearest to the cursor: enough to cut the page and to know
/// whether more lie beyond it.
pub(crate) fn window<I>(
    ids: impl DoubleEndedIterator<Item = I>,
    request: &PageRequest<I>,
) -> Vec<I> {
    let take = request.limit.saturating_add(1);
    match request.cursor {
        Cursor::Latest | Cursor::Before(_) => ids.rev().take(take).collect(),
        Cursor::After(_) => ids.take(take).collect(),
    }
}

/// Merges the windows of one or more sources into a page: sorts, drops
/// duplicates, keeps the `limit + 1` nearest to the cursor, looks the items
/// up and lets [`Page::slice_sorted`] cut the page and set its flags.
pub(crate) fn page_of<I: Ord + Copy, T>(
    mut ids: Vec<I>,
    request: &PageRequest<I>,
    fetch: impl FnMut(I) -> Option<T>,
) -> Page<T> {
    ids.sort_unstable();
    ids.dedup();
    let keep = request.limit.saturating_add(1);
    if ids.len() > keep {
        match request.cursor {
            Cursor::Latest | Cursor::Before(_) => {
                ids.drain(..ids.len() - keep);
            }
            Cursor::After(_) => ids.truncate(keep),
        }
    }
    let items: Vec<T> = ids.into_iter().filter_map(fetch).collect();
    Page::slice_sorted(items, request)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn request(limit: usize, cursor: Cursor<u32>) -> PageRequest<u32> {
        PageRequest { limit, cursor }
    }

    fn page(sources: &[&BTreeSet<u32>], req: PageRequest<u32>) -> Page<u32> {
        let ids = sources
            .iter()
            .flat_map(|s| window(s.range(bounds(req.cursor)).copied(), &req))
            .collect();
        page_of(ids, &req, Some)
    }

    #[test]
    fn merged_sources_page_like_one_sorted_list() {
        let odd: BTreeSet<u32> = (1..=20).filter(|n| n % 2 == 1).collect();
        let even: BTreeSet<u32> = (1..=20).filter(|n| n % 2 == 0).collect();
        let all: Vec<u32> = (1..=20).collect();
        for cursor in [
            Cursor::Latest,
            Cursor::Before(7),
            Cursor::Before(1),
            Cursor::After(0),
            Cursor::After(15),
            Cursor::After(20),
        ] {
            for limit in [1, 3, 25] {
                let req = request(limit, cursor);
                let candidates: Vec<u32> = all
                    .iter()
                    .copied()
                    .filter(|&n| match cursor {
                        Cursor::Latest => true,
                        Cursor::Before(c) => n < c,
                        Cursor::After(c) => n > c,
                    })
                    .collect();
                let expected = Page::slice_sorted(candidates, &req);
                assert_eq!(page(&[&odd, &even], req), expected, "{cursor:?} {limit}");
            }
        }
    }
}
