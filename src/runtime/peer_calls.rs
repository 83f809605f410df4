//! The policy half of [`Handle`]: tags, protection, peer identities and
//! trimming.

use std::time::Duration;

use super::handle::{Error, Handle};
use super::msg::Msg;
use crate::core::info::Trimmed;
use crate::core::{Input, TagChange};
use crate::types::ConnId;

use crate::policy::banlist::{BanEntry, Subnet};
use crate::policy::tags::{PeerId, TagInfo};

impl Handle {
    /// Sets tag `name` of `peer` to `value`. A peer's total tag value
    /// decides which of its connections a trim closes first.
    ///
    /// ```
    /// use connmgr::{Config, ConnManager, MemoryNetwork, PeerId};
    ///
    /// let net = MemoryNetwork::new();
    /// let manager = ConnManager::new(Config::builder().dialer(net.dialer()).build()).unwrap();
    /// let h = manager.handle();
    /// h.tag("peer-a", "relays-blocks", 10).unwrap();
    /// h.tag("peer-a", "answers-pings", 3).unwrap();
    /// h.untag("peer-a", "answers-pings").unwrap();
    /// h.barrier().unwrap();
    /// let info = h.tag_info(&PeerId::from("peer-a")).unwrap();
    /// assert_eq!((info.value, info.tags.len()), (10, 1));
    /// ```
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
    ///
    /// ```
    /// use connmgr::{Config, ConnManager, MemoryNetwork};
    ///
    /// let net = MemoryNetwork::new();
    /// let manager = ConnManager::new(Config::builder().dialer(net.dialer()).build()).unwrap();
    /// let h = manager.handle();
    /// h.upsert_tag("peer-a", "served", |v| v + 1).unwrap();
    /// h.upsert_tag("peer-a", "served", |v| v + 1).unwrap();
    /// h.barrier().unwrap();
    /// assert_eq!(h.tag_info(&"peer-a".into()).unwrap().tags["served"], 2);
    /// ```
    pub fn upsert_tag(
        &self,
        peer: impl Into<PeerId>,
        name: &str,
        f: impl FnOnce(i64) -> i64 + Send + 'static,
    ) -> Result<(), Error> {
        self.change_tag(peer.into(), TagChange::Update(name.to_owned(), Box::new(f)))
    }

    /// Bumps decaying tag `name` (registered with
    /// [`ConfigBuilder::decaying_tag`](crate::ConfigBuilder::decaying_tag)
    /// or [`register_decaying`](Self::register_decaying)) for `peer` by
    /// `delta`.
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
        let ask = Some(peer.clone());
        match self.call(Input::Tag { peer, change }, ask)? {
            true => Ok(()),
            false => Err(Error::PeerBookFull),
        }
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

    /// Trims now and waits until the trim is done: closes unprotected
    /// connections outside the grace period, lowest value first, down to
    /// the low watermark (nothing if the count is at or below it, or no
    /// watermarks are set), and returns what it closed. As with libp2p's
    /// `TrimOpenConns`, an explicit trim ignores the silence period, and
    /// callers that ask at the same time share one trim and its result.
    /// `snapshot()` and `counts()` show its effect once it returns.
    /// Fails with [`Error::OnHandlerThread`] on the handler thread; see
    /// [`trim_within`](Self::trim_within) for a deadline and
    /// [`request_trim`](Self::request_trim) for a call that does not wait.
    ///
    /// ```
    /// use connmgr::{Config, ConnManager, MemoryNetwork};
    /// use std::time::Duration;
    ///
    /// let net = MemoryNetwork::new();
    /// let config = Config::builder()
    ///     .dialer(net.dialer())
    ///     .watermarks(2, 4)
    ///     .trim_grace(Duration::ZERO)
    ///     .build();
    /// let manager = ConnManager::new(config).unwrap();
    /// manager.start().unwrap();
    /// let trimmed = manager.handle().trim().unwrap();
    /// assert!(trimmed.closed.is_empty()); // nothing to trim yet
    /// assert_eq!(manager.handle().snapshot().stats.trims, 0);
    /// ```
    pub fn trim(&self) -> Result<Trimmed, Error> {
        self.wait_for_trim(None)
    }

    /// [`trim`](Self::trim), waiting at most `timeout`: past it the call
    /// fails with [`Error::TimedOut`] (the trim still runs).
    pub fn trim_within(&self, timeout: Duration) -> Result<Trimmed, Error> {
        self.wait_for_trim(Some(timeout))
    }

    /// Asks for a trim like [`trim`](Self::trim) and returns at once; the
    /// trim runs when the handler gets to it. Callable from any thread,
    /// the handler's own included.
    pub fn request_trim(&self) -> Result<(), Error> {
        self.check_open()?;
        self.input(Input::Trim)
    }

    fn wait_for_trim(&self, timeout: Option<Duration>) -> Result<Trimmed, Error> {
        self.check_open()?;
        self.check_not_handler()?;
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.send(Msg::Trim(reply))?;
        match timeout {
            None => answer.recv().map_err(|_| Error::Stopped),
            Some(t) => answer.recv_timeout(t).map_err(|e| match e {
                crossbeam_channel::RecvTimeoutError::Timeout => Error::TimedOut,
                crossbeam_channel::RecvTimeoutError::Disconnected => Error::Stopped,
            }),
        }
    }

    /// Raises connection `id`'s ban score by a persistent part (never
    /// decays) and a transient part (halves every minute). At the warn
    /// threshold (default 50) the manager logs a warning; at the ban
    /// threshold (default 100) it disconnects the peer and bans its
    /// address for the ban duration (default 24 h).
    ///
    /// ```
    /// use connmgr::{Config, ConnManager, ConnReq, Event, MemoryNetwork};
    /// use std::time::Duration;
    ///
    /// let net = MemoryNetwork::new();
    /// let addr: connmgr::Addr = "127.0.0.1:8333".parse().unwrap();
    /// let _peer = net.listen(addr.clone()).unwrap();
    /// let manager = ConnManager::new(Config::builder().dialer(net.dialer()).build()).unwrap();
    /// let events = manager.handle().events();
    /// manager.start().unwrap();
    /// let id = manager.handle().connect(ConnReq::new(addr)).unwrap();
    /// let _connected = events.recv_timeout(Duration::from_secs(10)).unwrap(); // holds the conn
    /// manager.handle().misbehaving(id, 100, 0, "invalid block").unwrap();
    /// manager.handle().barrier().unwrap();
    /// assert_eq!(manager.handle().bans().len(), 1);
    /// assert!(manager.handle().conn_info(id).is_none());
    /// ```
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
    ///
    /// ```
    /// use connmgr::{Config, ConnManager, MemoryNetwork, Subnet};
    /// use std::time::Duration;
    ///
    /// let net = MemoryNetwork::new();
    /// let manager = ConnManager::new(Config::builder().dialer(net.dialer()).build()).unwrap();
    /// let h = manager.handle();
    /// let range: Subnet = "203.0.113.0/24".parse().unwrap();
    /// h.ban(range, Duration::from_secs(3600), "scanner").unwrap();
    /// h.barrier().unwrap();
    /// assert_eq!(h.bans()[0].subnet, range);
    /// h.unban(range).unwrap();
    /// h.barrier().unwrap();
    /// assert!(h.bans().is_empty());
    /// ```
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
