//! The host's say on a request: its access hook, asked once the request has passed the
//! server's own tokens (a request must pass both), and what the publish socket may serve.

use crate::conn::Conn;
use crate::event_loop::EventLoop;
use crate::hooks::AccessRequest;
use crate::http::{self, Request, Status};
use crate::publish_socket::{NOT_SERVED_LOCALLY, served_locally};
use crate::stats::Refusal;

impl EventLoop {
    /// Asks the access hook whether the stream (`publish` false) or the publish of `request`
    /// to `topics` may go on; refuses it when not. True when it may.
    pub(super) fn host_allows(
        &mut self,
        conn: &mut Conn,
        slot: u32,
        request: &Request,
        topics: &[String],
        publish: bool,
        cors: &str,
    ) -> bool {
        if !self.host.wants_heads() {
            return true;
        }
        let peer = if conn.is_local() {
            None
        } else {
            conn.stream.peer_addr().ok()
        };
        let asked = AccessRequest {
            method: http::method_name(request.method()),
            path: &request.path,
            query: &request.query,
            topics,
            peer,
            publish,
            head: request.head.as_deref().unwrap_or_default(),
        };
        let Err(refused) = self.host.access(&asked) else {
            return true;
        };
        let refusal = match refused.status {
            401 => Refusal::Unauthorized,
            400..=499 => Refusal::Forbidden,
            _ => Refusal::Storage,
        };
        let status = Status(refused.status);
        self.reject(conn, slot, status, cors, &refused.reason, refusal);
        false
    }

    /// Refuses what a connection of the publish socket may not ask for. True when refused.
    pub(super) fn refused_locally(
        &mut self,
        conn: &mut Conn,
        slot: u32,
        request: &Request,
    ) -> bool {
        if !cfg!(feature = "sockets")
            || !conn.is_local()
            || served_locally(request.method(), &request.path)
        {
            return false;
        }
        let status = Status::NOT_FOUND;
        self.reject(
            conn,
            slot,
            status,
            "",
            NOT_SERVED_LOCALLY,
            Refusal::NotFound,
        );
        true
    }
}
