//! Whole-bundle trials through the Pi firmware's `tryboot`: a new kernel, initramfs,
//! `cmdline.txt` and device tree copied into the slot folder `tryboot.txt` names
//! (`os_prefix=b/`), with `bundle.sha256` (`sha256sum` lines for the slot's files) written
//! last. boxinit then records "requested" and reboots with `RESTART2 "0 tryboot"`; the
//! firmware boots `tryboot.txt` once. That boot (the firmware's flag in
//! `/proc/device-tree/chosen/bootloader/tryboot`, the slot in `chosen/os_prefix`) runs under
//! the trial rules of `run.rs`: healthy, `config.txt` and `tryboot.txt` are exchanged
//! (`RENAME_EXCHANGE`: `config.txt` now names the new slot, the next bundle goes into the
//! other); failed, or a boot that comes back without the flag, the slot's manifest becomes
//! `bundle.failed.sha256` with `bundle.failed.txt` saying why. Only a Raspberry Pi kernel
//! sets the flag (DESIGN.md): `[update] tryboot = "auto"` asks only when the running kernel
//! is one. This file is the card's decisions (`impl Card`); the pure parts and the writes of
//! a commit and a revert are `slots.rs`'s.

use super::card::{Card, ThisTrial};
use super::files::write_state;
use super::slots::{check_slot, commit, failed_text, kernel_can_tryboot, set_aside, slot_of};
use super::slots::{CONFIG_TXT, FAILED, FAILED_TXT, MANIFEST, TRYBOOT_TXT};
use super::state::Phase;
use crate::config::update::Tryboot;
use crate::supervision::event_loop::Stop;
use crate::sys::{Reboot, Sys};

impl Card {
    /// At open, a bundle trial in the state: on its trial boot (the firmware's flag, the
    /// slot booted) it is this boot's trial; a promotion is finished; any other boot reverts
    /// it, saying why. Returns true when the trial record is settled (nothing left for
    /// `finish_previous_trial`).
    pub(crate) fn bundle_at_open(&mut self, sys: &mut dyn Sys) -> bool {
        let Some(t) = self.scribe.state.trial.clone() else {
            return false;
        };
        let Some((slot, sha)) = t.bundle.clone() else {
            return false;
        };
        let fw = &self.bundle;
        let booted_slot = fw.tryboot && fw.os_prefix.as_deref() == Some(slot.as_str());
        if t.phase == Phase::Requested && booted_slot {
            log::info!("bundle: the firmware booted {slot} with tryboot: this boot is its trial");
            self.trial = Some(ThisTrial {
                bundle: Some((slot, sha)),
                ..ThisTrial::default()
            });
            return true;
        }
        let why = match (t.phase, fw.tryboot) {
            (Phase::Promoting, _) => None,
            (Phase::Requested, true) => Some(format!("the firmware's tryboot booted {} instead of {slot}: it boots the root files when the slot lacks its kernel or device tree", fw.os_prefix.as_deref().unwrap_or("the root files"))),
            (Phase::Requested, false) => Some(format!("its trial boot never reached boxinit: the new kernel or initramfs did not start (a panic, a hang the watchdog reset), the power was cut, or the firmware never got the tryboot flag (the kernel that asked, {}, cannot pass it on: see [update] tryboot)", fw.release)),
            (Phase::Started, _) => Some(format!("its trial boot (boot {}) ended without keeping it: the new kernel or box failed, or the power was cut or the watchdog reset it before the box was validated (its report says more)", t.boot)),
        };
        let dir = self.scribe.dir.clone();
        let boot = self.scribe.state.boot;
        let others = t.box_.is_some() || t.config.is_some();
        let ok = self.window(sys, "bundle trial", |w, state| {
            match &why {
                None => commit(w, &slot)?,
                Some(why) => set_aside(w, &slot, &failed_text(&slot, why, boot))?,
            }
            if !others {
                state.trial = None;
                write_state(w, state, &dir)?;
            }
            Ok(())
        });
        match (&why, ok) {
            (None, true) => log::info!("bundle: finished committing {slot} (config.txt names it), which a cut had interrupted"),
            (Some(why), true) => log::error!("bundle: {slot} reverted: {why}; kept as {slot}{FAILED} (why in {slot}{FAILED_TXT}), the slot config.txt names runs"),
            (_, false) => {}
        }
        if let Some(record) = self.scribe.state.trial.as_mut() {
            record.bundle = None;
        }
        !others
    }

    /// Looks for a new bundle in the slot `tryboot.txt` names: complete, and the kernel able
    /// to ask for `tryboot`, this boot records it and reboots into it (`tryboot()`); else
    /// one line says why it stays untried.
    pub fn try_bundle(&mut self) {
        let during_trial = self.trial.as_ref().is_some_and(|t| t.bundle.is_some());
        if !self.update.enabled || self.update.tryboot == Tryboot::Off || during_trial {
            return;
        }
        let Some(slot) = slot_of(&self.scribe.dir, TRYBOOT_TXT) else {
            return;
        };
        if !self.scribe.dir.join(&slot).join(MANIFEST).is_file() {
            return;
        }
        if slot_of(&self.scribe.dir, CONFIG_TXT).as_deref() == Some(slot.as_str()) {
            log::warn!("bundle: {slot}{MANIFEST} is there, but config.txt and tryboot.txt both name {slot}: nothing to try (tryboot.txt should name the other slot)");
            return;
        }
        let sha = match check_slot(&self.scribe.dir, &slot) {
            Ok(sha) => sha,
            Err(why) => {
                log::warn!("bundle: {slot} is not tried: {why}; it stays as it is until its {MANIFEST} matches");
                return;
            }
        };
        if self.update.tryboot == Tryboot::Auto && !kernel_can_tryboot(&self.bundle.release) {
            log::warn!("bundle: {slot} holds a new bundle, but this kernel ({}) cannot ask the firmware for tryboot (only a Raspberry Pi kernel passes it on): it stays untried. Boot a Raspberry Pi OS kernel, or set [update] tryboot = true if this one can", self.bundle.release);
            return;
        }
        self.bundle.requesting = true;
        self.trial = Some(ThisTrial {
            bundle: Some((slot, sha)),
            ..ThisTrial::default()
        });
    }

    /// The reboot into `tryboot`, once the request is recorded on the card (`begin`).
    pub fn tryboot(&mut self) -> Option<Stop> {
        let (slot, _) = self.trial.as_ref()?.bundle.clone()?;
        if !self.bundle.requesting || self.scribe.state.trial.is_none() {
            return None;
        }
        log::info!("bundle: {slot} is new and complete: recorded on the card; rebooting with tryboot into it (the firmware boots tryboot.txt once)");
        Some(Stop {
            how: Reboot::Tryboot,
            why: format!("a trial of the bundle in {slot} (tryboot)"),
        })
    }
}

#[cfg(test)]
#[path = "bundle_tests.rs"]
mod tests;
