//! The compact form in which the snapshot store keeps each request and
//! connection: a [`ConnInfo`] without its id (the store's key) or its
//! wall-clock times (put on when it is read), with instants as offsets
//! from one base. 88 bytes instead of 144, for every entry of a store
//! that holds one per connection.

use std::time::{Duration, Instant};

use crate::addr::Addr;
use crate::core::default_peer_id;
use crate::core::info::{ConnInfo, CountKey};
use crate::policy::permissions::Permissions;
use crate::policy::tags::PeerId;
use crate::types::{ConnId, ConnState};

/// Instants as signed nanoseconds from one base instant: exact within
/// ±292 years of the base, saturating beyond.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimeBase(Instant);

/// The offset that stands for "no instant".
const NONE: i64 = i64::MIN;

impl TimeBase {
    pub(crate) fn new(base: Instant) -> Self {
        TimeBase(base)
    }

    fn offset(self, at: Instant) -> i64 {
        let clamp = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        match at.checked_duration_since(self.0) {
            Some(ahead) => clamp(ahead),
            // One above NONE, so a far-past instant stays an instant.
            None => clamp(self.0.duration_since(at))
                .saturating_neg()
                .max(NONE + 1),
        }
    }

    fn instant(self, offset: i64) -> Instant {
        let magnitude = Duration::from_nanos(offset.unsigned_abs());
        let at = if offset >= 0 {
            self.0.checked_add(magnitude)
        } else {
            self.0.checked_sub(magnitude)
        };
        // Offsets come from instants, so both directions are in range.
        at.unwrap_or(self.0)
    }

    fn offset_of(self, at: Option<Instant>) -> i64 {
        at.map_or(NONE, |at| self.offset(at))
    }

    fn instant_of(self, offset: i64) -> Option<Instant> {
        (offset != NONE).then(|| self.instant(offset))
    }
}

/// One published request or inbound connection.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    addr: Option<Addr>,
    peer: Option<PeerId>,
    since: i64,
    next_attempt: i64,
    retries: u32,
    permissions: Permissions,
    key: CountKey,
}

impl Entry {
    /// `info` in compact form; its id and wall-clock times are dropped.
    pub(crate) fn new(info: ConnInfo, base: TimeBase) -> Self {
        Entry {
            key: info.count_key(),
            since: base.offset(info.since),
            next_attempt: base.offset_of(info.next_attempt),
            retries: info.retries,
            permissions: info.permissions,
            addr: info.addr,
            peer: info.peer,
        }
    }

    /// The entry as the public type, under `id`, without wall-clock times.
    pub(crate) fn info(&self, id: ConnId, base: TimeBase) -> ConnInfo {
        ConnInfo {
            id,
            addr: self.addr.clone(),
            direction: self.key.direction,
            state: self.key.state,
            permanent: self.key.permanent,
            conn_type: self.key.conn_type,
            block_relay_only: self.key.block_relay_only,
            permissions: self.permissions,
            peer: self.peer.clone(),
            retries: self.retries,
            since: base.instant(self.since),
            next_attempt: base.instant_of(self.next_attempt),
            since_wall: None,
            next_attempt_wall: None,
        }
    }

    pub(crate) fn count_key(&self) -> CountKey {
        self.key
    }

    pub(crate) fn state(&self) -> ConnState {
        self.key.state
    }

    pub(crate) fn since(&self, base: TimeBase) -> Instant {
        base.instant(self.since)
    }

    /// Whether this is a connection of `peer`, by the Core's peer id rule.
    pub(crate) fn is_peer(&self, peer: &PeerId) -> bool {
        match (&self.peer, &self.addr) {
            (Some(p), _) => p == peer,
            (None, Some(addr)) => default_peer_id(addr) == *peer,
            (None, None) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ConnType, Direction};

    fn info(since: Instant, next_attempt: Option<Instant>) -> ConnInfo {
        ConnInfo {
            id: ConnId(7),
            addr: Some("10.0.0.1:8333".parse().unwrap()),
            direction: Direction::Outbound,
            state: ConnState::Failing,
            permanent: true,
            conn_type: ConnType::Manual,
            block_relay_only: true,
            permissions: Permissions::NOBAN,
            peer: Some(PeerId::from("p")),
            retries: 3,
            since,
            next_attempt,
            since_wall: None,
            next_attempt_wall: None,
        }
    }

    #[test]
    fn entries_give_back_what_they_were_made_from() {
        let base = Instant::now();
        let tb = TimeBase::new(base);
        let later = base + Duration::from_secs(3600);
        let earlier = base
            .checked_sub(Duration::from_millis(1500))
            .unwrap_or(base);
        for (since, next) in [(base, None), (later, Some(earlier)), (earlier, Some(later))] {
            let original = info(since, next);
            let entry = Entry::new(original.clone(), tb);
            assert_eq!(entry.info(ConnId(7), tb), original);
            assert_eq!(entry.since(tb), since);
        }
    }

    #[test]
    fn entries_stay_small() {
        assert!(std::mem::size_of::<Entry>() <= 88);
    }

    #[test]
    fn far_instants_saturate_instead_of_wrapping() {
        let base = Instant::now();
        let tb = TimeBase::new(base);
        if let Some(far) = base.checked_add(Duration::from_secs(400 * 365 * 86_400)) {
            let off = tb.offset(far);
            assert_eq!(off, i64::MAX);
            assert!(tb.instant(off) > base);
        }
        assert_eq!(tb.offset_of(None), NONE);
        assert_eq!(tb.instant_of(NONE), None);
    }
}
