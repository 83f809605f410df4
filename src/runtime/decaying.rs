//! Decaying tags registered while the manager runs, as go-libp2p's
//! `Decayer.RegisterDecayingTag` does, and the handle each registration
//! gives back.

use std::time::Duration;

use super::handle::{Error, Handle};
use super::msg::Msg;
use crate::core::{DecayingSpec, Input};
use crate::limits;
use crate::policy::tags::{BumpFn, DecayFn, PeerId};

/// A decaying tag registered with [`Handle::register_decaying`]: bump a
/// peer's value, remove it, or close the tag. Cloning gives another handle
/// to the same tag.
#[derive(Debug, Clone)]
pub struct DecayingTag {
    name: String,
    handle: Handle,
}

impl DecayingTag {
    /// The tag's name, as [`tag_info`](Handle::tag_info) lists it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Bumps `peer`'s value by `delta` through the tag's bump function.
    pub fn bump(&self, peer: impl Into<PeerId>, delta: i64) -> Result<(), Error> {
        self.handle.bump_decaying(peer, &self.name, delta)
    }

    /// Removes `peer`'s value of this tag (as [`Handle::untag`] with the
    /// tag's name does).
    pub fn remove(&self, peer: impl Into<PeerId>) -> Result<(), Error> {
        self.handle.untag(peer, &self.name)
    }

    /// Closes the tag: it and every peer's value of it go. Returns once
    /// applied, so [`tag_info`](Handle::tag_info) agrees at once; the name
    /// may then be registered again.
    pub fn close(self) -> Result<(), Error> {
        self.handle.close_decaying(&self.name)
    }
}

impl Handle {
    /// Closes decaying tag `name` (registered in the config or at run
    /// time): see [`DecayingTag::close`]. [`Error::UnknownTag`] if no such
    /// tag is registered.
    pub fn close_decaying(&self, name: &str) -> Result<(), Error> {
        if !self.shared.store.lock().has_decaying(name) {
            return Err(Error::UnknownTag(name.to_owned()));
        }
        self.call(Input::UnregisterDecaying(name.to_owned()), None)
            .map(drop)
    }

    /// Registers decaying tag `name` while the manager runs (before or
    /// after `start`): every `interval` (at most a year; longer is a year)
    /// `decay` runs over each peer's value, and bumps combine through
    /// `bump`. Returns once registered. A name already registered (in the
    /// config or here) is [`Error::Tag`] with
    /// [`TagError::DuplicateDecayingTag`](crate::TagError::DuplicateDecayingTag);
    /// a zero interval or more than
    /// [`MAX_DECAYING_TAGS`](crate::limits::MAX_DECAYING_TAGS) tags is
    /// refused the same way.
    ///
    /// ```
    /// use connmgr::{BumpFn, Config, ConnManager, DecayFn, MemoryNetwork};
    /// use std::time::Duration;
    ///
    /// let net = MemoryNetwork::new();
    /// let manager = ConnManager::new(Config::builder().dialer(net.dialer()).build()).unwrap();
    /// let h = manager.handle();
    /// let tag = h
    ///     .register_decaying("relay", Duration::from_secs(60), DecayFn::linear(0.5), BumpFn::sum())
    ///     .unwrap();
    /// tag.bump("peer-a", 10).unwrap();
    /// h.barrier().unwrap();
    /// assert_eq!(h.tag_info(&"peer-a".into()).unwrap().tags["relay"], 10);
    /// assert!(h.register_decaying("relay", Duration::from_secs(1), DecayFn::fixed(1), BumpFn::sum()).is_err());
    /// tag.close().unwrap();
    /// assert!(h.tag_info(&"peer-a".into()).is_none());
    /// ```
    pub fn register_decaying(
        &self,
        name: &str,
        interval: Duration,
        decay: DecayFn,
        bump: BumpFn,
    ) -> Result<DecayingTag, Error> {
        self.check_open()?;
        self.check_not_handler()?;
        let spec = DecayingSpec {
            name: name.to_owned(),
            interval: interval.min(limits::MAX_DURATION),
            decay,
            bump,
        };
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.send(Msg::Register(spec, reply))?;
        match answer.recv() {
            Ok(Ok(())) => Ok(DecayingTag {
                name: name.to_owned(),
                handle: self.clone(),
            }),
            Ok(Err(e)) => Err(Error::Tag(e)),
            Err(_) => Err(Error::Stopped),
        }
    }
}
