//! Cursor paging on one ordered column (an id, or a message's `seq`): `LIMIT limit + 1` in the cursor's
//! direction, then [`Page::from_probe`](chat_domain::Page::from_probe).

use chat_domain::PageRequest;

/// The row count to fetch for a page: one more than asked, to learn whether
/// more exist.
pub(crate) fn probe_limit<I>(page: &PageRequest<I>) -> i64 {
    i64::try_from(page.limit)
        .unwrap_or(i64::MAX - 1)
        .saturating_add(1)
}

/// Applies a page request to a boxed query ordered by one column:
/// newest first for `Latest`/`Before`, oldest first for `After`.
macro_rules! paged {
    ($query:expr, $column:expr, $page:expr, $to_uuid:expr) => {{
        let page = $page;
        let query = match page.cursor {
            chat_domain::Cursor::Latest => $query.order($column.desc()),
            chat_domain::Cursor::Before(id) => $query
                .filter($column.lt($to_uuid(id)))
                .order($column.desc()),
            chat_domain::Cursor::After(id) => {
                $query.filter($column.gt($to_uuid(id))).order($column.asc())
            }
        };
        query.limit($crate::paging::probe_limit(page))
    }};
}
pub(crate) use paged;
