//! The ban book: who may be dialed or accepted, misbehaviour scores, and
//! what happens to a peer that crosses the ban threshold.

use std::time::{Duration, Instant};

use log::{info, warn};

use super::{later, Core, CoreConfig, Effect, LOG};
use crate::addr::Addr;
use crate::policy::banlist::{BanEntry, BanList, Subnet, MAX_BAN_DURATION};
use crate::policy::permissions::Permissions;
use crate::types::{CloseReason, ConnId};

/// The ban list, the thresholds that fill it, and whether it changed
/// since it was last saved and published.
pub(super) struct BanBook {
    list: BanList,
    ban_threshold: u32,
    warn_threshold: u32,
    ban_duration: Duration,
    changed: bool,
    published: Option<Vec<BanEntry>>,
    max_bans: usize,
}

impl BanBook {
    pub(super) fn new(cfg: &CoreConfig) -> Self {
        BanBook {
            list: BanList::new(),
            ban_threshold: cfg.ban_threshold.max(1),
            warn_threshold: cfg.warn_threshold,
            ban_duration: cfg.ban_duration,
            changed: false,
            published: None,
            max_bans: cfg.max_bans.max(1),
        }
    }

    /// Merges bans loaded from disk with the bans already made.
    pub(super) fn load(&mut self, loaded: BanList, now: Instant) {
        for entry in loaded.bans(now) {
            self.list.ban(entry.subnet, entry.until, entry.reason);
        }
        self.changed = true;
    }

    pub(super) fn ban_for_addr(&self, addr: &Addr, now: Instant) -> Option<BanEntry> {
        self.list.ban_for_addr(addr, now)
    }

    pub(super) fn ban_for_ip(&self, ip: std::net::IpAddr, now: Instant) -> Option<BanEntry> {
        self.list.ban_for(ip, now)
    }

    pub(super) fn list(&self, now: Instant) -> Vec<BanEntry> {
        self.list.bans(now)
    }

    fn add(&mut self, now: Instant, subnet: Subnet, duration: Duration, reason: String) {
        // At the bound a new ban first drops expired ones, then the one
        // that would end soonest, so the list (and each lookup) stays
        // bounded however many peers misbehave.
        if !self.list.has(&subnet) && self.list.len() >= self.max_bans {
            self.list.sweep(now);
            if self.list.len() >= self.max_bans {
                if let Some(old) = self.list.evict_soonest() {
                    warn!(target: LOG, "ban list full ({}): dropped the ban on {old}", self.max_bans);
                }
            }
        }
        let until = later(now, duration.min(MAX_BAN_DURATION));
        self.list.ban(subnet, until, reason);
        self.changed = true;
    }

    pub(super) fn unban(&mut self, subnet: &Subnet) {
        if self.list.unban(subnet) {
            info!(target: LOG, "unbanned {subnet}");
            self.changed = true;
        }
    }

    /// The list to save, once per change; the same change is published
    /// with the next change set.
    pub(super) fn take_save(&mut self, now: Instant) -> Option<BanList> {
        if !std::mem::take(&mut self.changed) {
            return None;
        }
        self.list.sweep(now);
        self.published = Some(self.list.bans(now));
        Some(self.list.clone())
    }

    pub(super) fn take_published(&mut self) -> Option<Vec<BanEntry>> {
        self.published.take()
    }
}

impl Core {
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
        let Some(r) = self.records.get_mut(&id).filter(|r| r.is_live()) else {
            return;
        };
        let score = r
            .score
            .get_or_insert_with(Box::default)
            .increase_at(persistent, transient, now);
        let ip = r.addr.as_ref().and_then(Addr::ip);
        let noban = r.perms.contains(Permissions::NOBAN);
        self.mark(id);
        if score < self.bans.warn_threshold {
            return;
        }
        if score < self.bans.ban_threshold || noban {
            let note = if noban { " (noban: kept)" } else { "" };
            warn!(target: LOG, "{id} misbehaving ({reason}): ban score {score}{note}");
            return;
        }
        warn!(target: LOG, "{id} misbehaving ({reason}): ban score {score}, banning");
        match ip {
            Some(ip) => {
                let why = format!("ban score {score}: {reason}");
                let duration = self.bans.ban_duration;
                self.ban_for(
                    now,
                    Subnet::host(ip),
                    duration,
                    why,
                    CloseReason::Misbehaving,
                    out,
                );
            }
            // Nothing to ban by address (an onion or custom peer): drop it.
            None => self.close_for_policy(now, id, CloseReason::Misbehaving, out),
        }
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
        self.ban_for(now, subnet, duration, reason, CloseReason::Banned, out);
    }

    /// [`ban`](Self::ban), closing with `why` as the close reason.
    fn ban_for<C>(
        &mut self,
        now: Instant,
        subnet: Subnet,
        duration: Duration,
        reason: String,
        why: CloseReason,
        out: &mut Vec<Effect<C>>,
    ) {
        info!(target: LOG, "banning {subnet} for {duration:?}: {reason}");
        self.bans.add(now, subnet, duration, reason);
        let mut inside: Vec<ConnId> = self
            .records
            .iter()
            .filter(|(_, r)| r.is_live())
            .filter(|(_, r)| {
                r.addr
                    .as_ref()
                    .and_then(Addr::ip)
                    .is_some_and(|ip| subnet.contains(ip))
            })
            .map(|(id, _)| *id)
            .collect();
        inside.sort_unstable();
        for id in inside {
            self.close_for_policy(now, id, why, out);
        }
    }
}
