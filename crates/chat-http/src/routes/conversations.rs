//! The caller's conversations with their unread counts, and read markers.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chat_domain::{Activity, Conversation, ConversationRef, MessageId, MessageWire};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::path_id;
use crate::auth::Authenticated;
use crate::error::{ApiError, ErrorBody};
use crate::state::ApiState;

/// One conversation of the caller's list.
#[derive(Serialize, ToSchema)]
pub struct ConversationWire {
    /// `global`, `direct` or `room`.
    #[schema(example = "direct")]
    pub kind: &'static str,
    /// `global`, the other user's name, or the room's id.
    #[schema(example = "bob")]
    pub id: String,
    /// What to call it: `Global`, the room's name, or the other user's
    /// name.
    pub name: String,
    /// Its latest message (a deleted one as a tombstone); `null` when it
    /// has none.
    #[schema(value_type = Option<MessageWire>)]
    pub last_message: Option<chat_domain::Message>,
    /// Messages after the caller's read marker that the caller did not
    /// send and that are not deleted.
    pub unread_count: u64,
    /// The last message the caller has read; `null` when none.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub last_read_id: Option<MessageId>,
    /// In a direct conversation, the last message the other user has read
    /// (for a "seen" receipt); `null` otherwise or when none.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub peer_last_read_id: Option<MessageId>,
    /// Its place in the list: `?before=` this for the conversations after
    /// it.
    pub cursor: String,
}

impl From<Conversation> for ConversationWire {
    fn from(c: Conversation) -> Self {
        Self {
            kind: c.conversation.kind(),
            id: c.conversation.id(),
            name: c.name,
            last_message: c.last_message,
            unread_count: c.unread_count,
            last_read_id: c.last_read_id,
            peer_last_read_id: c.peer_last_read_id,
            cursor: c.activity.to_string(),
        }
    }
}

/// The page of the conversation list a client asks for.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConversationParams {
    /// Conversations per page: default 50, at most 200 (larger values are
    /// capped).
    #[param(minimum = 1, example = 50)]
    pub limit: Option<usize>,
    /// Only conversations after this one in the list (less recent
    /// activity): the `cursor` of the last conversation of a page.
    pub before: Option<String>,
}

/// The caller's conversations, most recent activity first.
///
/// The global conversation, the rooms the caller belongs to, and the
/// direct conversations with at least one message, each with its latest
/// message, unread count and the caller's read marker. Paginated: the body
/// is a JSON array, most recent activity first; when more follow, the
/// `Link` header holds `rel="next"` (`?before=<cursor of the last>&limit=N`).
#[utoipa::path(
    get,
    path = "/api/conversations",
    tag = "conversations",
    params(ConversationParams),
    responses(
        (status = 200, description = "A page of conversations, most recent activity first", body = [ConversationWire]),
        (status = 400, description = "`validation_error`: a bad `limit` or `before`", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `token_revoked` or `invalid_token`", body = ErrorBody),
    ),
    security(("bearer_auth" = []), ("cookie_auth" = []))
)]
pub async fn list_conversations(
    req: HttpRequest,
    state: web::Data<ApiState>,
    caller: Authenticated,
    query: web::Query<ConversationParams>,
) -> Result<HttpResponse, ApiError> {
    let before = query
        .before
        .as_deref()
        .map(str::trim)
        .filter(|raw| !raw.is_empty())
        .map(str::parse::<Activity>)
        .transpose()?;
    let page = state
        .service()
        .conversations(&caller, query.limit, before)
        .await?;
    let limit = page.items.len();
    let mut res = HttpResponse::Ok();
    if let (true, Some(last)) = (page.has_more, page.items.last()) {
        let link = format!(
            "<{}?before={}&limit={}>; rel=\"next\"",
            req.path(),
            last.activity,
            limit
        );
        res.insert_header((header::LINK, link));
    }
    let items: Vec<ConversationWire> = page.items.into_iter().map(Into::into).collect();
    Ok(res.json(items))
}

/// How far the caller has read.
#[derive(Deserialize, ToSchema)]
pub struct MarkReadRequest {
    /// The last message read: a message of this conversation.
    #[schema(format = Uuid)]
    pub message_id: String,
}

/// Moves the caller's read marker.
///
/// The caller has read the conversation up to `message_id`. A marker only
/// moves forward: an older message changes nothing (200, the conversation
/// as it is). A move is told live as a `read` frame to the caller's other
/// connections and, in a direct conversation, to the other user.
#[utoipa::path(
    put,
    path = "/api/conversations/{kind}/{id}/read",
    tag = "conversations",
    params(
        ("kind" = String, Path, description = "`global`, `direct` or `room`"),
        ("id" = String, Path, description = "`global`, the other user's name, or the room's id"),
    ),
    request_body = MarkReadRequest,
    responses(
        (status = 200, description = "The conversation as it now is", body = ConversationWire),
        (status = 400, description = "`validation_error` (an unknown kind, a malformed id or message id) or `invalid_json`", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `token_revoked` or `invalid_token`", body = ErrorBody),
        (status = 403, description = "`not_a_member` of the room", body = ErrorBody),
        (status = 404, description = "`message_not_found` (not a message of this conversation), `user_not_found` or `room_not_found`", body = ErrorBody),
    ),
    security(("bearer_auth" = []), ("cookie_auth" = []))
)]
pub async fn mark_read(
    state: web::Data<ApiState>,
    caller: Authenticated,
    path: web::Path<(String, String)>,
    body: web::Json<MarkReadRequest>,
) -> Result<HttpResponse, ApiError> {
    let (kind, id) = path.into_inner();
    let conversation = ConversationRef::parse(&kind, &id)?;
    let message: MessageId = path_id(&body.message_id)?;
    let conversation = state
        .service()
        .mark_read(&caller, &conversation, message)
        .await?;
    Ok(HttpResponse::Ok().json(ConversationWire::from(conversation)))
}
