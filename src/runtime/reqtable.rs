//! The request handles the handler keeps up to date: only those someone
//! outside the handler may still hold.
//!
//! A handle is the user's object, so the handler writes every state change
//! into it for as long as the user might read it. Keeping one for every
//! request would cost a handle (and a map slot) per connection for
//! requests nobody holds: automatic ones, and those whose caller dropped
//! the handle after `connect`. So the table lets go of a handle once it is
//! the only holder — nobody else can then get a clone, since clones come
//! from holders — and mints a fresh one if an event needs it later. The
//! handles of the latest events stay a while longer, since under churn a
//! connection's close follows its open closely.

use std::collections::hash_map::Entry;
use std::collections::VecDeque;

use crate::core::{Changes, ReqSpec};
use crate::idmap::IdMap;
use crate::runtime::event::Event;
use crate::runtime::request::{ConnReq, ReqView};
use crate::types::ConnId;

/// How many of the latest handles lent to events stay kept whatever
/// happens: a request's next event (a connection's close soon after it
/// opened, under churn) then reuses its handle instead of minting one.
const RECENT: usize = 1_024;

/// The handles, and those lent to events.
pub(crate) struct ReqTable {
    held: IdMap<ConnId, ConnReq>,
    /// Handles lent to events, by the number the event has among all
    /// events sent: once that many are delivered, and [`RECENT`] newer
    /// ones were lent, the table looks again whether anyone kept the
    /// handle. At most one per event in flight, plus `recent`.
    lent: VecDeque<(u64, ConnId)>,
    /// Events sent to the notifier so far.
    sent: u64,
    recent: usize,
}

impl Default for ReqTable {
    fn default() -> Self {
        ReqTable {
            held: IdMap::default(),
            lent: VecDeque::new(),
            sent: 0,
            recent: RECENT,
        }
    }
}

impl ReqTable {
    /// A request the user submitted: kept only if they still hold it.
    pub(crate) fn submitted(&mut self, id: ConnId, req: ConnReq) {
        if !req.is_sole_holder() {
            self.held.insert(id, req);
        }
    }

    /// The handle for request `spec`, made now if none is kept.
    pub(crate) fn handle_for(&mut self, spec: &ReqSpec) -> ConnReq {
        let req = self
            .held
            .entry(spec.id)
            .or_insert_with(|| ConnReq::from_spec(spec));
        if let Some(addr) = &spec.addr {
            req.set_addr(addr.clone());
        }
        req.clone()
    }

    /// Notes the handles in `batch`, about to be sent to the notifier.
    pub(crate) fn lend(&mut self, batch: &[Event]) {
        for event in batch {
            self.sent += 1;
            if let Some(id) = event.req().and_then(ConnReq::id) {
                self.lent.push_back((self.sent, id));
            }
        }
    }

    /// Lets go of handles whose events are delivered (`undelivered` of
    /// those sent are not), that are not among the recent ones, and that
    /// nobody kept.
    pub(crate) fn release(&mut self, undelivered: usize) {
        let delivered = self.sent.saturating_sub(undelivered as u64);
        while let Some(&(number, id)) = self.lent.front() {
            if number > delivered || self.lent.len() <= self.recent {
                return;
            }
            self.lent.pop_front();
            if let Entry::Occupied(kept) = self.held.entry(id) {
                if kept.get().is_sole_holder() {
                    kept.remove();
                }
            }
        }
    }

    /// Writes the batch's changes into the handles kept, and lets go of
    /// those of finished requests.
    pub(crate) fn publish(&mut self, changes: &Changes) {
        for info in &changes.conns {
            if let Some(req) = self.held.get(&info.id) {
                req.publish(ReqView {
                    state: info.state,
                    retries: info.retries,
                });
                if let Some(addr) = &info.addr {
                    req.set_addr(addr.clone());
                }
            }
        }
        for f in &changes.finished {
            if let Some(req) = self.held.remove(&f.id) {
                req.publish(ReqView {
                    state: f.state,
                    retries: f.retries,
                });
            }
        }
    }

    /// How many handles are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::CloseReason;

    /// A table that keeps no recent handles, so each release shows.
    fn table() -> ReqTable {
        ReqTable {
            recent: 0,
            ..ReqTable::default()
        }
    }

    fn spec(id: u64) -> ReqSpec {
        ReqSpec::new(ConnId(id), "10.0.0.1:8333".parse().unwrap(), false)
    }

    fn disconnected(req: ConnReq) -> Event {
        Event::Disconnected {
            req,
            reason: CloseReason::Disconnect,
        }
    }

    #[test]
    fn a_dropped_submission_is_not_kept() {
        let mut table = ReqTable::default();
        let req = ConnReq::new("10.0.0.1:8333".parse().unwrap());
        table.submitted(ConnId(1), req.clone());
        assert_eq!(table.len(), 1, "the caller still holds it");
        table.submitted(ConnId(2), ConnReq::new("10.0.0.2:8333".parse().unwrap()));
        assert_eq!(table.len(), 1, "nobody else holds the second");
    }

    #[test]
    fn a_lent_handle_goes_once_delivered_and_dropped() {
        let mut table = table();
        let batch = vec![disconnected(table.handle_for(&spec(1)))];
        table.lend(&batch);
        table.release(1);
        assert_eq!(table.len(), 1, "the event is not delivered yet");
        drop(batch);
        table.release(0);
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn a_handle_the_user_kept_stays_and_sees_changes() {
        let mut table = table();
        let kept = table.handle_for(&spec(1));
        let batch = vec![disconnected(table.handle_for(&spec(1)))];
        table.lend(&batch);
        drop(batch);
        table.release(0);
        assert_eq!(table.len(), 1);
        let mut changes = Changes::default();
        changes.finished.push(crate::core::Finished {
            id: ConnId(1),
            state: crate::types::ConnState::Canceled,
            retries: 2,
        });
        table.publish(&changes);
        assert_eq!(table.len(), 0);
        assert_eq!(kept.state(), crate::types::ConnState::Canceled);
        assert_eq!(kept.retries(), 2);
    }

    #[test]
    fn a_later_event_for_the_same_request_keeps_the_handle_lent() {
        let mut table = table();
        let first = vec![disconnected(table.handle_for(&spec(1)))];
        table.lend(&first);
        let second = vec![disconnected(table.handle_for(&spec(1)))];
        table.lend(&second);
        drop(first);
        table.release(1);
        assert_eq!(table.len(), 1, "the second event still holds it");
        drop(second);
        table.release(0);
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn the_recent_handles_stay_for_the_next_event() {
        let mut table = ReqTable {
            recent: 2,
            ..ReqTable::default()
        };
        for id in 1..=3 {
            let batch = vec![disconnected(table.handle_for(&spec(id)))];
            table.lend(&batch);
        }
        table.release(0);
        assert_eq!(table.len(), 2, "only the oldest goes");
        assert_eq!(table.lent.len(), 2);
    }
}
