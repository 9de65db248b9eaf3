//! What a socket sends besides stats and acks, by unit of the campaign's org (spec v1.2,
//! "The organisation → Live"): an operator's `watch` and its `units` frames, and a viewer's
//! `unit` frame where the broadcaster does not write it (sockets other than plain TCP).

use std::sync::Arc;

use super::{send_err, Closing, Conn};
use crate::protocol::{self, ErrorCode};
use crate::ws::transport::{Io, Transport};

/// What an operator watches: a unit's children (`None`: the top level), and the last
/// `units` frame sent, without its time, so an unchanged tick sends nothing.
pub(super) struct Watching {
    unit: Option<String>,
    last: Option<serde_json::Value>,
    pub(super) due: bool,
}

/// Rows of a `units` frame: the route's default page.
const WATCH_LIMIT: usize = 100;

impl Conn<'_> {
    /// A message that is not an `interact`: an operator's `watch`, else refused.
    pub(super) fn on_other(
        &mut self,
        text: &str,
        bad: protocol::client::BadMessage,
    ) -> Result<Option<String>, Closing> {
        if self.slot.is_some() || self.claim.is_some() {
            return self.refuse(bad.into());
        }
        match protocol::client::parse_watch(text) {
            Some(Ok(unit)) => {
                self.watching = Some(Box::new(Watching {
                    unit,
                    last: None,
                    due: true,
                }));
                Ok(None)
            }
            Some(Err(bad)) => self.refuse(bad.into()),
            None => self.refuse(bad.into()),
        }
    }

    /// After a stats frame: an operator's `units` frame, a viewer's new `unit` frame
    /// (sockets whose stats frames the broadcaster does not write).
    pub(super) async fn after_frame<S: Io>(&mut self, transport: &mut Transport<S>) -> Option<Closing> {
        if let Some(w) = self.watching.as_mut() {
            w.due = true;
            return self.send_units(transport).await;
        }
        let place = self.slot.as_ref()?.unit.as_ref()?;
        let frame = place.frame()?;
        if self.unit_sent.as_ref().is_some_and(|s| Arc::ptr_eq(s, &frame)) {
            return None;
        }
        let text = frame.text.clone();
        self.unit_sent = Some(frame);
        transport.send(text).await.err().map(send_err)
    }

    /// Sends the watched listing when due and changed (an `error` when the unit is not
    /// the campaign's). Boxed: only operators get here, and the read is a large future.
    pub(super) async fn send_units<S: Io>(&mut self, transport: &mut Transport<S>) -> Option<Closing> {
        let w = self.watching.as_mut().filter(|w| w.due)?;
        w.due = false;
        let views = self.env.units.as_ref()?;
        let page = Box::pin(views.page(&self.tally.campaign.id, w.unit.as_deref(), None, WATCH_LIMIT)).await;
        let text = match page {
            Ok(mut page) => {
                let at = page.as_object_mut().and_then(|o| o.remove("at"));
                if w.last.as_ref() == Some(&page) {
                    return None;
                }
                let mut frame = page.clone();
                if let Some(o) = frame.as_object_mut() {
                    o.insert("at".into(), at.unwrap_or_default());
                }
                w.last = Some(page);
                // `type` first, as in every server message.
                let body = frame.to_string();
                format!(r#"{{"type":"units",{}"#, body.strip_prefix('{').unwrap_or(&body))
            }
            Err(crate::error::ApiError::NotFound(_)) => {
                self.watching = None;
                self.current_seq = None;
                self.env.metrics.rejected(ErrorCode::UnknownUnit.code());
                protocol::error(ErrorCode::UnknownUnit, None)
            }
            // The store is down: the next frame tries again.
            Err(_) => {
                w.due = false;
                return None;
            }
        };
        transport.send(text).await.err().map(send_err)
    }
}
