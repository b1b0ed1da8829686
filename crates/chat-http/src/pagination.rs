//! Pagination on the wire: `?limit=&before=&after=` in, a JSON array of the
//! page's items out, and the cursors of the neighbouring pages in a `Link`
//! header (RFC 8288):
//!
//! ```text
//! Link: </api/messages?before=<first id>&limit=50>; rel="prev", </api/messages?after=<last id>&limit=50>; rel="next"
//! ```
//!
//! `prev` (older items) is present when older items exist, `next` (newer
//! items) when newer items existed at the time of the read. Links are paths
//! on the request's own path, so they keep any prefix the API is mounted
//! under. Items are oldest-first within a page.

use std::fmt::Display;
use std::str::FromStr;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use chat_domain::{DomainError, DomainResult, Page, PageRequest};
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

/// The page a client asks for.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page: default 50, at most 200 (larger values are capped).
    #[param(minimum = 1, example = 50)]
    pub limit: Option<usize>,
    /// Only items older than this id (walking back).
    #[param(format = Uuid)]
    pub before: Option<String>,
    /// Only items newer than this id (walking forward). Not with `before`.
    #[param(format = Uuid)]
    pub after: Option<String>,
}

impl PageParams {
    /// Validates the parameters into a page request over ids of type `I`.
    pub fn to_request<I>(&self) -> DomainResult<PageRequest<I>>
    where
        I: FromStr<Err = DomainError>,
    {
        let parse = |raw: &Option<String>| raw.as_deref().map(I::from_str).transpose();
        PageRequest::new(self.limit, parse(&self.before)?, parse(&self.after)?)
    }
}

/// `200 OK` with the page's items as a JSON array and the `Link` header.
pub fn page_response<T, I>(
    req: &HttpRequest,
    request: &PageRequest<I>,
    page: Page<T>,
    id_of: impl Fn(&T) -> I,
) -> HttpResponse
where
    T: Serialize,
    I: Display,
{
    let mut res = HttpResponse::Ok();
    if let Some(link) = link_header(req.path(), request.limit, &page, id_of) {
        res.insert_header((header::LINK, link));
    }
    res.json(page.items)
}

fn link_header<T, I: Display>(
    path: &str,
    limit: usize,
    page: &Page<T>,
    id_of: impl Fn(&T) -> I,
) -> Option<String> {
    let mut links = Vec::new();
    if let (true, Some(first)) = (page.has_older, page.items.first()) {
        let id = id_of(first);
        links.push(format!("<{path}?before={id}&limit={limit}>; rel=\"prev\""));
    }
    if let (true, Some(last)) = (page.has_newer, page.items.last()) {
        let id = id_of(last);
        links.push(format!("<{path}?after={id}&limit={limit}>; rel=\"next\""));
    }
    (!links.is_empty()).then(|| links.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_domain::{Cursor, MessageId};

    #[test]
    fn cursors_are_parsed_and_checked() {
        let id = MessageId::generate();
        let params = PageParams {
            limit: Some(500),
            before: Some(id.to_string()),
            after: None,
        };
        let req: PageRequest<MessageId> = params.to_request().expect("valid");
        assert_eq!(req.limit, 200);
        assert_eq!(req.cursor, Cursor::Before(id));
        let bad = PageParams {
            before: Some("nope".into()),
            ..PageParams::default()
        };
        assert_eq!(
            bad.to_request::<MessageId>().expect_err("bad id").code(),
            "validation_error"
        );
    }

    #[test]
    fn links_name_both_neighbours() {
        let page = Page {
            items: vec![3, 4],
            has_older: true,
            has_newer: true,
        };
        let link = link_header("/chat/api/messages", 2, &page, |i| *i).expect("links");
        assert_eq!(
            link,
            "</chat/api/messages?before=3&limit=2>; rel=\"prev\", \
             </chat/api/messages?after=4&limit=2>; rel=\"next\""
        );
        let last = Page {
            items: vec![1],
            has_older: false,
            has_newer: false,
        };
        assert_eq!(link_header("/x", 5, &last, |i| *i), None);
    }
}
