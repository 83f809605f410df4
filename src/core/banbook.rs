//! Misbehaviour scores and bans: who may be dialed or accepted, and what
//! happens to a peer that crosses the ban threshold.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use log::{info, warn};

use super::{Core, Effect, LOG};
use crate::policy::banlist::{BanEntry, BanList, Subnet};
use crate::policy::banscore::DynamicBanScore;
use crate::types::{ConnId, ConnState};

/// Adds to a score kept only for connections that misbehaved.
fn raise(score: &mut Option<Box<DynamicBanScore>>, p: u32, t: u32, now: Instant) -> u32 {
    score
        .get_or_insert_with(Box::default)
        .increase_at(p, t, now)
}

impl Core {
    /// Replaces the ban list with one loaded from disk (before start),
    /// keeping any bans already made.
    pub(super) fn on_load_bans(&mut self, now: Instant, loaded: BanList) {
        for entry in loaded.bans(now) {
            self.bans.ban(entry.subnet, entry.until, entry.reason);
        }
        self.bans_dirty = true;
    }

    /// Raises connection `id`'s ban score; bans and disconnects the peer
    /// once the score reaches the ban threshold.
    pub(super) fn on_misbehaving<C>(
        &mut self,
        now: Instant,
        id: ConnId,
        persistent: u32,
        transient: u32,
        reason: &str,
        out: &mut Vec<Effect<C>>,
    ) {
        let Some((score, ip)) = self.raise_score(now, id, persistent, transient) else {
            return;
        };
        self.mark(id);
        if score < self.cfg.warn_threshold {
            return;
        }
        if score < self.cfg.ban_threshold {
            warn!(target: LOG, "{id} misbehaving ({reason}): ban score {score}");
            return;
        }
        warn!(target: LOG, "{id} misbehaving ({reason}): ban score {score}, banning");
        match ip {
            Some(ip) => {
                let why = format!("ban score {score}: {reason}");
                self.ban(now, Subnet::host(ip), self.cfg.ban_duration, why, out);
            }
            // Nothing to ban by address (an onion or custom peer): drop it.
            None => self.close_for_policy(now, id, out),
        }
    }

    /// Adds to a live connection's score; returns the new score and the
    /// peer's IP, if the connection is live.
    fn raise_score(
        &mut self,
        now: Instant,
        id: ConnId,
        p: u32,
        t: u32,
    ) -> Option<(u32, Option<IpAddr>)> {
        if let Some(e) = self.outbound.get_mut(&id) {
            if e.state != ConnState::Established {
                return None;
            }
            let ip = e.addr.as_ref().and_then(|a| a.ip());
            return Some((raise(&mut e.score, p, t, now), ip));
        }
        let e = self.inbound.get_mut(&id)?;
        Some((raise(&mut e.score, p, t, now), e.addr.ip()))
    }

    /// Bans `subnet` for `duration` and closes every live connection in it.
    pub(super) fn ban<C>(
        &mut self,
        now: Instant,
        subnet: Subnet,
        duration: Duration,
        reason: String,
        out: &mut Vec<Effect<C>>,
    ) {
        info!(target: LOG, "banning {subnet} for {duration:?}: {reason}");
        self.bans.ban(subnet, now + duration, reason);
        self.bans_dirty = true;
        for id in self.live_in(&subnet) {
            self.close_for_policy(now, id, out);
        }
    }

    pub(super) fn unban(&mut self, subnet: &Subnet) {
        if self.bans.unban(subnet) {
            info!(target: LOG, "unbanned {subnet}");
            self.bans_dirty = true;
        }
    }

    /// Established connections whose peer address falls in `subnet`.
    fn live_in(&self, subnet: &Subnet) -> Vec<ConnId> {
        let inside = |ip: Option<IpAddr>| ip.is_some_and(|ip| subnet.contains(ip));
        let out = self.outbound.iter().filter(|(_, e)| {
            e.state == ConnState::Established && inside(e.addr.as_ref().and_then(|a| a.ip()))
        });
        let inb = self.inbound.iter().filter(|(_, e)| inside(e.addr.ip()));
        out.map(|(id, _)| *id)
            .chain(inb.map(|(id, _)| *id))
            .collect()
    }

    /// The ban in force for `ip`, if any.
    pub(super) fn ban_on(&self, ip: Option<IpAddr>, now: Instant) -> Option<BanEntry> {
        self.bans.ban_for(ip?, now)
    }

    /// Hands the ban list to the shell to save, once per change.
    pub(super) fn save_bans_if_changed<C>(&mut self, now: Instant, out: &mut Vec<Effect<C>>) {
        if std::mem::take(&mut self.bans_dirty) {
            self.bans.sweep(now);
            self.bans_published = Some(self.bans.bans(now));
            out.push(Effect::SaveBans(self.bans.clone()));
        }
    }
}
