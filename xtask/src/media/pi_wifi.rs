//! What a Raspberry Pi bundle adds for Wi-Fi: the chips of a board family, the modules, and
//! the supplicant and firmware packed when a config turns Wi-Fi on, into the card's extras
//! archive (`pack/extras_archive.rs`): the box starts without waiting for them.

use std::path::Path;

use anyhow::{bail, Result};

use crate::fetch::firmware::{PiWifi, PI_BOARDS, ZERO_2_W_MISSING};
use crate::media::board::Board;
use crate::pack::debian;
use crate::pack::extras_archive::Later;
use crate::progress;
use crate::tools::arch::Arch;

/// The Wi-Fi chips of a bundle's board family (the Pi 400's and CM4's NVRAM are not in
/// Debian; the Zero 2 W's neither: [`ZERO_2_W_MISSING`]).
pub fn pi_boards(board: Board) -> Vec<PiWifi> {
    let names: &[&str] = match board {
        Board::Rpi3 => &[
            "raspberrypi,3-model-b",
            "raspberrypi,3-model-b-plus",
            "raspberrypi,3-model-a-plus",
        ],
        Board::Rpi4 => &["raspberrypi,4-model-b"],
        Board::Rpi02w => &[],
    };
    PI_BOARDS
        .iter()
        .filter(|b| names.contains(&b.board))
        .copied()
        .collect()
}

/// Modules a Pi needs for Wi-Fi beyond what coldplug finds on its own: the SDIO chip's
/// driver (its alias is in modules.alias, but it must be packed) and the ciphers WPA2's CCMP
/// asks for through request_module. Names this kernel lacks are left out by the caller.
pub const PI_MODULES: &[&str] = &["brcmfmac", "ctr", "ccm", "cmac", "aes_ce_ccm"];

/// What a Pi bundle adds for Wi-Fi when the card's config (`card`) or the built-in one (the
/// file `builtin`) turns it on, all of it for the card's extras archive, none for the
/// initramfs: the board's `brcmfmac` firmware, `wpa_supplicant` (arm64) with its libraries
/// (the program last), and [`PI_MODULES`] (those `knows` says this kernel has). Nothing
/// when Wi-Fi is off. The bundle calls this.
pub fn pi_bundle(
    board: Board,
    card: &boxinit::config::Config,
    builtin: &Path,
    knows: impl Fn(&str) -> bool,
) -> Result<Later> {
    let from_card = matches!(card.wifi.source(), Ok(Some(_)));
    let programs = debian::programs_to_pack(&[], from_card, Some(builtin))?;
    if programs.is_empty() {
        return Ok(Later::default());
    }
    if let Err(e) = card.wifi.source() {
        bail!("{e}; fix it before it goes on the card");
    }
    let mut entries = debian::pi_firmware_entries(&pi_boards(board))?;
    entries.extend(debian::program_entries(Arch::Aarch64, &programs)?);
    if board == Board::Rpi02w {
        progress!(
            "warning: the Zero 2 W's Wi-Fi needs files Debian lacks ({}): add them to the \
             initramfs (README, Wi-Fi)",
            ZERO_2_W_MISSING.join(", ")
        );
    }
    let modules = PI_MODULES
        .iter()
        .filter(|m| knows(m))
        .map(|m| m.to_string())
        .collect();
    Ok(Later { entries, modules })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pi_boards_per_bundle() {
        let chips = |b| pi_boards(b).iter().map(|p| p.chip).collect::<Vec<_>>();
        assert_eq!(chips(Board::Rpi3), ["43430", "43455", "43455"]);
        assert_eq!(chips(Board::Rpi4), ["43455"]);
        assert!(chips(Board::Rpi02w).is_empty());
        // Wi-Fi off: the bundle gets nothing
        let later = pi_bundle(
            Board::Rpi3,
            &boxinit::config::Config::default(),
            Path::new("/nonexistent"),
            |_| true,
        )
        .unwrap();
        assert!(later.is_empty());
    }
}
