//! Cursor pagination, shared by every list.
//!
//! A page is asked for by a limit and at most one cursor: the newest page
//! (no cursor), the page just before an id, or the page just after an id.
//! Items come oldest-first within a page whatever the direction.

use crate::error::{DomainError, DomainResult};

/// Which slice of a list to read. `I` is the id type of the list's items,
/// which cursors name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cursor<I> {
    /// The newest items.
    Latest,
    /// The items just older than this id (walking back).
    Before(I),
    /// The items just newer than this id (walking forward).
    After(I),
}

/// A validated page request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest<I> {
    /// How many items at most (1..=[`PageRequest::MAX_LIMIT`]).
    pub limit: usize,
    /// Where the page starts.
    pub cursor: Cursor<I>,
}

impl<I> PageRequest<I> {
    /// Items per page when the client does not say.
    pub const DEFAULT_LIMIT: usize = 50;
    /// Most items per page.
    pub const MAX_LIMIT: usize = 200;

    /// Builds a request from the optional query parameters; more than one
    /// cursor, or a limit of 0, is a validation error; a limit above the
    /// maximum is capped.
    pub fn new(limit: Option<usize>, before: Option<I>, after: Option<I>) -> DomainResult<Self> {
        let limit = match limit {
            None => Self::DEFAULT_LIMIT,
            Some(0) => return Err(DomainError::invalid("limit", "must be at least 1")),
            Some(n) => n.min(Self::MAX_LIMIT),
        };
        let cursor = match (before, after) {
            (None, None) => Cursor::Latest,
            (Some(id), None) => Cursor::Before(id),
            (None, Some(id)) => Cursor::After(id),
            (Some(_), Some(_)) => {
                return Err(DomainError::invalid(
                    "before",
                    "and after cannot be used together",
                ))
            }
        };
        Ok(Self { limit, cursor })
    }

    /// The newest page of the default size.
    pub fn latest() -> Self {
        Self {
            limit: Self::DEFAULT_LIMIT,
            cursor: Cursor::Latest,
        }
    }
}

/// One page of a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, oldest first.
    pub items: Vec<T>,
    /// Whether older items exist before the first one.
    pub has_older: bool,
    /// Whether newer items exist after the last one (as of the read).
    pub has_newer: bool,
}

impl<T> Page<T> {
    /// Cuts a page out of a list that is sorted oldest-first and holds every
    /// candidate on the cursor's side (already filtered by the cursor). Used
    /// by stores that can hold the whole list in hand; databases should
    /// query with `LIMIT limit + 1` instead and call [`Page::from_probe`].
    pub fn slice_sorted<I>(mut sorted: Vec<T>, request: &PageRequest<I>) -> Self {
        let total = sorted.len();
        match request.cursor {
            Cursor::Latest | Cursor::Before(_) => {
                let start = total.saturating_sub(request.limit);
                let items = sorted.split_off(start);
                Self {
                    items,
                    has_older: start > 0,
                    has_newer: matches!(request.cursor, Cursor::Before(_)),
                }
            }
            Cursor::After(_) => {
                sorted.truncate(request.limit);
                Self {
                    items: sorted,
                    has_older: true,
                    has_newer: total > request.limit,
                }
            }
        }
    }

    /// Builds a page from a query that fetched up to `limit + 1` rows in the
    /// cursor's direction: newest-first for `Latest`/`Before`, oldest-first
    /// for `After`. The extra row, if present, only says there is more.
    pub fn from_probe<I>(mut rows: Vec<T>, request: &PageRequest<I>) -> Self {
        let more = rows.len() > request.limit;
        rows.truncate(request.limit);
        match request.cursor {
            Cursor::Latest | Cursor::Before(_) => {
                rows.reverse();
                Self {
                    items: rows,
                    has_older: more,
                    has_newer: matches!(request.cursor, Cursor::Before(_)),
                }
            }
            Cursor::After(_) => Self {
                items: rows,
                has_older: true,
                has_newer: more,
            },
        }
    }

    /// Applies `f` to every item, keeping the page's bounds.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            has_older: self.has_older,
            has_newer: self.has_newer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_caps() {
        let r = PageRequest::<u32>::new(None, None, None).expect("valid");
        assert_eq!(r.limit, 50);
        assert_eq!(r.cursor, Cursor::Latest);
        assert_eq!(
            PageRequest::<u32>::new(Some(1000), None, None)
                .expect("valid")
                .limit,
            200
        );
        assert!(PageRequest::<u32>::new(Some(0), None, None).is_err());
        assert!(PageRequest::new(None, Some(1), Some(2)).is_err());
    }

    #[test]
    fn latest_takes_the_newest_oldest_first() {
        let req = PageRequest::new(Some(2), None::<u32>, None).expect("valid");
        let page = Page::slice_sorted(vec![1, 2, 3, 4], &req);
        assert_eq!(page.items, vec![3, 4]);
        assert!(page.has_older);
        assert!(!page.has_newer);
    }

    #[test]
    fn after_takes_the_oldest_following() {
        let req = PageRequest::new(Some(2), None, Some(1u32)).expect("valid");
        let page = Page::slice_sorted(vec![2, 3, 4], &req);
        assert_eq!(page.items, vec![2, 3]);
        assert!(page.has_newer);
    }

    #[test]
    fn a_probe_page_matches_a_sliced_one() {
        let req = PageRequest::new(Some(2), Some(9u32), None).expect("valid");
        let sliced = Page::slice_sorted(vec![1, 2, 3], &req);
        let probed = Page::from_probe(vec![3, 2, 1], &req);
        assert_eq!(sliced, probed);
    }
}
