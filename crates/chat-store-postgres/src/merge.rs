//! Merging several paged message queries into one page, in the database.
//!
//! A viewer's visible messages come from several sources (global, direct
//! sent, direct received, each joined room), each with its own index ending
//! in `seq` (the commit-order position). Diesel's `union_all` cannot take a number of branches known only
//! at run time, nor order and limit the union, so this is a small
//! [`QueryFragment`] of the kind Diesel's guide uses for pagination:
//!
//! ```sql
//! SELECT * FROM ((branch 1) UNION ALL (branch 2) ...) AS merged
//! ORDER BY merged.seq DESC LIMIT $n
//! ```
//!
//! Every branch is a builder query already ordered and limited the same
//! way, so PostgreSQL answers with a Merge Append of backward index scans
//! that stops after `$n` rows: cost proportional to the page, not to the
//! history (see docs/postgres.md).

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::BigInt;
use diesel::QueryResult;

/// `(b1) UNION ALL (b2) …`, ordered by `seq` and limited.
pub(crate) struct MergedPages<Q> {
    branches: Vec<Q>,
    newest_first: bool,
    limit: i64,
}

impl<Q> MergedPages<Q> {
    /// Merges `branches` (at least one), each selecting the same columns,
    /// including `seq`, already ordered in the same direction.
    pub fn new(branches: Vec<Q>, newest_first: bool, limit: i64) -> Self {
        Self {
            branches,
            newest_first,
            limit,
        }
    }
}

impl<Q: Query> Query for MergedPages<Q> {
    type SqlType = Q::SqlType;
}

impl<Q> QueryId for MergedPages<Q> {
    type QueryId = ();
    // The SQL depends on the number of branches: cache by text, not by type.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for MergedPages<Q> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("SELECT * FROM (");
        for (i, branch) in self.branches.iter().enumerate() {
            if i > 0 {
                out.push_sql(" UNION ALL ");
            }
            out.push_sql("(");
            branch.walk_ast(out.reborrow())?;
            out.push_sql(")");
        }
        out.push_sql(") AS merged ORDER BY merged.seq ");
        out.push_sql(if self.newest_first { "DESC" } else { "ASC" });
        out.push_sql(" LIMIT ");
        out.push_bind_param::<BigInt, _>(&self.limit)
    }
}
