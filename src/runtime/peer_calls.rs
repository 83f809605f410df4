//! The policy half of [`Handle`]: tags, protection, peer identities and
//! trimming.

use std::time::Duration;

use super::handle::{Error, Handle};
use crate::core::{Input, TagChange};
use crate::types::ConnId;

use crate::policy::banlist::{BanEntry, Subnet};
use crate::policy::tags::{PeerId, TagInfo};

impl Handle {
    /// Sets tag `name` of `peer` to `value`. A peer's total tag value
    /// decides which of its connections a trim closes first.
    pub fn tag(&self, peer: impl Into<PeerId>, name: &str, value: i64) -> Result<(), Error> {
        self.change_tag(peer.into(), TagChange::Set(name.to_owned(), value))
    }

    /// Removes tag `name` from `peer`.
    pub fn untag(&self, peer: impl Into<PeerId>, name: &str) -> Result<(), Error> {
        self.change_tag(peer.into(), TagChange::Remove(name.to_owned()))
    }

    /// Replaces tag `name` of `peer` with `f(current)` (a missing tag is
    /// 0). `f` runs on the handler thread: keep it short and free of
    /// manager calls.
    pub fn upsert_tag(
        &self,
        peer: impl Into<PeerId>,
        name: &str,
        f: impl FnOnce(i64) -> i64 + Send + 'static,
    ) -> Result<(), Error> {
        self.change_tag(peer.into(), TagChange::Update(name.to_owned(), Box::new(f)))
    }

    /// Bumps decaying tag `name` (registered with
    /// [`ConfigBuilder::decaying_tag`](crate::ConfigBuilder::decaying_tag))
    /// for `peer` by `delta`.
    pub fn bump_decaying(
        &self,
        peer: impl Into<PeerId>,
        name: &str,
        delta: i64,
    ) -> Result<(), Error> {
        if !self.shared.store.lock().has_decaying(name) {
            return Err(Error::UnknownTag(name.to_owned()));
        }
        self.change_tag(peer.into(), TagChange::Bump(name.to_owned(), delta))
    }

    /// What the manager last published about `peer`: first seen, total
    /// value, tags, and its connections as `(connection id, opened)`.
    /// `None` once the peer has no connections, tags or protection left.
    pub fn tag_info(&self, peer: &PeerId) -> Option<TagInfo> {
        self.shared.store.lock().tag_info(peer)
    }

    /// Protects `peer` under `tag`: its connections are never trimmed or
    /// evicted while any tag protects it, even across reconnections.
    /// Protecting twice under one tag is the same as once. Like
    /// [`unprotect`](Self::unprotect), it returns once the handler has
    /// applied it, so [`is_protected`](Self::is_protected) agrees at once.
    pub fn protect(&self, peer: impl Into<PeerId>, tag: &str) -> Result<(), Error> {
        let peer = peer.into();
        let change = TagChange::Protect(tag.to_owned());
        self.call(Input::Tag { peer, change }, None).map(drop)
    }

    /// Removes `tag`'s protection from `peer`; returns whether another tag
    /// still protects it. Waits for the handler to apply it (and every
    /// earlier call), so it fails with [`Error::OnHandlerThread`] when
    /// called from code the handler runs.
    ///
    /// ```
    /// use connmgr::{Config, ConnManager, MemoryNetwork};
    ///
    /// let net = MemoryNetwork::new();
    /// let manager = ConnManager::new(Config::builder().dialer(net.dialer()).build()).unwrap();
    /// let h = manager.handle();
    /// h.protect("peer-a", "sync").unwrap();
    /// h.protect("peer-a", "relay").unwrap();
    /// assert_eq!(h.unprotect("peer-a", "sync"), Ok(true));
    /// assert_eq!(h.unprotect("peer-a", "relay"), Ok(false));
    /// assert!(!h.is_protected(&"peer-a".into(), None));
    /// ```
    pub fn unprotect(&self, peer: impl Into<PeerId>, tag: &str) -> Result<bool, Error> {
        let peer = peer.into();
        let change = TagChange::Unprotect(tag.to_owned());
        let ask = Some(peer.clone());
        self.call(Input::Tag { peer, change }, ask)
    }

    /// Whether `peer` is protected under `tag`, or under any tag if `tag`
    /// is `None`, as last published.
    pub fn is_protected(&self, peer: &PeerId, tag: Option<&str>) -> bool {
        self.shared.store.lock().is_protected(peer, tag)
    }

    /// Names the peer behind connection `id` (for example a node id learned
    /// in the handshake); tags and protection follow peers. By default a
    /// connection's peer is its remote address text.
    pub fn set_peer_id(&self, id: ConnId, peer: impl Into<PeerId>) -> Result<(), Error> {
        self.check_known(id)?;
        self.input(Input::SetPeer {
            id,
            peer: peer.into(),
        })
    }

    /// Trims now: closes unprotected connections outside the grace period,
    /// lowest value first, down to the low watermark — unless the count is
    /// already at or below it, or a trim ran within the silence period (so
    /// concurrent calls make one trim). Needs watermarks in the config.
    pub fn trim(&self) -> Result<(), Error> {
        self.check_open()?;
        self.input(Input::Trim)
    }

    /// Raises connection `id`'s ban score by a persistent part (never
    /// decays) and a transient part (halves every minute). At the warn
    /// threshold (default 50) the manager logs a warning; at the ban
    /// threshold (default 100) it disconnects the peer and bans its
    /// address for the ban duration (default 24 h).
    pub fn misbehaving(
        &self,
        id: ConnId,
        persistent: u32,
        transient: u32,
        reason: &str,
    ) -> Result<(), Error> {
        self.check_known(id)?;
        self.input(Input::Misbehaving {
            id,
            persistent,
            transient,
            reason: reason.to_owned(),
        })
    }

    /// Bans `subnet` (one address or a CIDR range, e.g.
    /// `"203.0.113.0/24".parse()`) for `duration`: live connections in it
    /// close, dials to it fail with `DialError::Rejected`, and inbound
    /// connections from it are closed before anyone sees them.
    pub fn ban(&self, subnet: Subnet, duration: Duration, reason: &str) -> Result<(), Error> {
        self.check_open()?;
        self.input(Input::Ban {
            subnet,
            duration,
            reason: reason.to_owned(),
        })
    }

    /// Lifts the ban on exactly `subnet`.
    pub fn unban(&self, subnet: Subnet) -> Result<(), Error> {
        self.check_open()?;
        self.input(Input::Unban(subnet))
    }

    /// The bans in force, as last published.
    pub fn bans(&self) -> Vec<BanEntry> {
        let now = self.shared.clock.now();
        self.shared.store.lock().bans(now)
    }

    fn change_tag(&self, peer: PeerId, change: TagChange) -> Result<(), Error> {
        self.check_open()?;
        self.input(Input::Tag { peer, change })
    }
}
