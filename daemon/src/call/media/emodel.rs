//! An estimated MOS for a call, from the ITU-T G.107 E-model, sans-IO: pure functions of
//! the loss the listener hears and the mouth-to-ear delay. Owns the model's constants and
//! the choices made for Opus; `quality.rs` feeds it what the media thread measured.
//!
//! The rating is `R = Ro − Is − Id − Ie,eff + A` (G.107 §3), with:
//! - **Ro − Is** at G.107's default values (loudness ratings, room noise, sidetone):
//!   `Ro` = 94.77, `Is` = 1.41. Nothing here measures them, and the defaults are a good
//!   handset; with `Id` at zero delay they give the model's famous R = 93.2.
//! - **Id** (delay) as G.107 §3.4 computes it from the defaults and the one-way delay
//!   `Ta`: talker echo (`Idte`, TELR 65 dB: an echo canceller's residual) with the echo
//!   path's delay `T` = `Ta`, listener echo (`Idle`, WEPL 110 dB) with its round trip
//!   `Tr` = 2·`Ta`, and the pure delay term `Idd` (mT = 100 ms, sT = 1: the default
//!   delay sensitivity of conversational telephony).
//! - **Ie,eff** (codec and loss, §3.5) = `Ie + (95 − Ie) · Ppl / (Ppl / BurstR + Bpl)`.
//!   For Opus we take **`Ie` = 0** and **`Bpl` = 20**: the model's scale here is the
//!   narrowband one (R ≤ 93.2), on which wideband Opus at our 32 kbit/s is no worse than
//!   G.711 (Ie 0); G.113 Appendix I gives no Opus figures, and 20 sits between G.729A's
//!   19 and G.711-with-PLC's 25.1, a modern concealment without claiming the best. `Ppl`
//!   is the loss the listener hears: packets lost (or late) and not recovered by FEC, so
//!   FEC's work shows as a better score. `BurstR` = 1 (random loss): the receiver does not
//!   measure burstiness yet.
//! - **A** (advantage factor) = 0: a fixed phone's expectations.
//!
//! The MOS is G.107 Annex B's mapping of R (4.41 at R = 93.2, 1 below R = 0, 4.5 above
//! 100). It is an estimate for planning and trends, not a listening test: a clean call
//! through a LAN rates about 4.4, 10 % unrecovered loss about 3.1.

/// `Ro − Is` terms at G.107's default values (§3.2, §3.3); see the module docs.
pub const RO: f64 = 94.77;
pub const IS: f64 = 1.41;
/// `Roe` (talker echo's reference, −1.5·(No − RLR)) at the defaults, where `No` is
/// −61.18 dBm0p and RLR 2 dB.
const ROE: f64 = 94.77;
/// Talker echo loudness rating, dB (default 65).
const TELR: f64 = 65.0;
/// Weighted echo path loss, dB (default 110).
const WEPL: f64 = 110.0;
/// Delay sensitivity (§3.4, defaults): no `Idd` up to `MT` ms.
const MT: f64 = 100.0;

/// Opus's equipment impairment on the narrowband scale; see the module docs.
pub const OPUS_IE: f64 = 0.0;
/// Opus's packet-loss robustness; see the module docs.
pub const OPUS_BPL: f64 = 20.0;

/// The delay impairment `Id` = `Idte + Idle + Idd` for a one-way (mouth-to-ear) delay of
/// `ta_ms`, with the echo paths as the module docs say.
pub fn delay_impairment(ta_ms: f64) -> f64 {
    let ta = ta_ms.max(0.0);
    talker_echo(ta) + listener_echo(2.0 * ta) + pure_delay(ta)
}

/// `Idte` (§3.4) for an echo path of `t` ms at TELR 65 dB and the default sidetone.
fn talker_echo(t: f64) -> f64 {
    let terv =
        TELR - 40.0 * ((1.0 + t / 10.0) / (1.0 + t / 150.0)).log10() + 6.0 * (-0.3 * t * t).exp();
    let re = 80.0 + 2.5 * (terv - 14.0);
    let d = ROE - re;
    (d / 2.0 + (d * d / 4.0 + 100.0).sqrt() - 1.0) * (1.0 - (-t).exp())
}

/// `Idle` (§3.4) for a listener-echo round trip of `tr` ms at WEPL 110 dB.
fn listener_echo(tr: f64) -> f64 {
    let rle = 10.5 * (WEPL + 7.0) * (tr + 1.0).powf(-0.25);
    let d = RO - rle;
    d / 2.0 + (d * d / 4.0 + 169.0).sqrt()
}

/// `Idd` (§3.4): what a long delay costs a conversation by itself.
fn pure_delay(ta: f64) -> f64 {
    if ta <= MT {
        return 0.0;
    }
    let x = (ta / MT).log2();
    25.0 * ((1.0 + x.powi(6)).powf(1.0 / 6.0) - 3.0 * (1.0 + (x / 3.0).powi(6)).powf(1.0 / 6.0)
        + 2.0)
}

/// `Ie,eff` (§3.5) for a codec with impairment `ie` and robustness `bpl`, at `ppl`
/// percent of random loss.
pub fn effective_equipment_impairment(ie: f64, bpl: f64, ppl: f64) -> f64 {
    let ppl = ppl.clamp(0.0, 100.0);
    ie + (95.0 - ie) * ppl / (ppl + bpl)
}

/// The rating R of an Opus call whose listener hears `loss_percent` unrecovered loss
/// `ta_ms` after the far side spoke.
pub fn rating(loss_percent: f64, ta_ms: f64) -> f64 {
    RO - IS
        - delay_impairment(ta_ms)
        - effective_equipment_impairment(OPUS_IE, OPUS_BPL, loss_percent)
}

/// G.107 Annex B: the MOS (conversational quality, 1..=4.5) that a rating `r` predicts.
pub fn mos(r: f64) -> f64 {
    if r.is_nan() || r <= 0.0 {
        1.0
    } else if r >= 100.0 {
        4.5
    } else {
        // Below R ≈ 6.5 the cubic dips under 1: a MOS is never below 1.
        (1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6).max(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, within: f64) -> bool {
        (a - b).abs() <= within
    }

    #[test]
    fn the_default_connection_rates_93_2_and_scores_4_41() {
        // G.107's worked default: all parameters at their defaults, no delay, no loss.
        let r = rating(0.0, 0.0);
        assert!(close(r, 93.2, 0.05), "R {r}");
        assert!(close(mos(r), 4.41, 0.005), "MOS {}", mos(r));
        // Of the 93.2, the listener echo at zero delay takes 0.15 (G.107's Id default).
        assert!(close(delay_impairment(0.0), 0.15, 0.01));
    }

    #[test]
    fn the_mos_mapping_matches_annex_b() {
        for (r, want) in [
            (0.0, 1.0),
            (-5.0, 1.0),
            (50.0, 2.575),
            (60.0, 3.1),
            (70.0, 3.597),
            (80.0, 4.024),
            (90.0, 4.34),
            (100.0, 4.5),
            (120.0, 4.5),
        ] {
            assert!(close(mos(r), want, 0.001), "R {r}: {} not {want}", mos(r));
        }
        // Never below 1, even where the cubic dips.
        assert!((0..100).all(|r| mos(f64::from(r)) >= 1.0));
    }

    #[test]
    fn pure_delay_is_zero_to_100_ms_and_follows_the_formula_beyond() {
        assert_eq!(pure_delay(0.0), 0.0);
        assert_eq!(pure_delay(100.0), 0.0);
        // X = 1 at twice mT, X = 2 at four times.
        let x1 = 25.0 * (2f64.powf(1.0 / 6.0) - 3.0 * (1.0 + 1.0 / 729.0f64).powf(1.0 / 6.0) + 2.0);
        assert!(close(pure_delay(200.0), x1, 1e-9));
        assert!(close(pure_delay(200.0), 3.04, 0.01));
        assert!(close(pure_delay(400.0), 24.07, 0.05));
    }

    #[test]
    fn the_delay_impairment_follows_cole_and_rosenbluths_fit_of_g107() {
        // Cole & Rosenbluth (2001) fitted G.107's Id at its defaults with echo cancelled:
        // Id ≈ 0.024·d + 0.11·(d − 177.3)·H(d − 177.3). Ours is the model itself; the
        // fit is within half a point of it up to 300 ms (beyond, its straight line leaves
        // the curve: 31.1 against 34.1 at 400 ms).
        for d in [0.0, 50.0, 100.0, 150.0, 200.0, 250.0, 300.0] {
            let fit = 0.024 * d + 0.11 * (d - 177.3f64).max(0.0);
            let id = delay_impairment(d);
            assert!(close(id, fit, 0.5), "{d} ms: Id {id:.2}, fit {fit:.2}");
        }
        // And it only grows with delay.
        let ids: Vec<f64> = (0..=100)
            .map(|i| delay_impairment(f64::from(i) * 5.0))
            .collect();
        assert!(ids.windows(2).all(|w| w[1] >= w[0]), "{ids:?}");
    }

    #[test]
    fn loss_impairment_is_zero_at_no_loss_and_half_way_to_95_at_bpl() {
        assert_eq!(effective_equipment_impairment(0.0, 20.0, 0.0), 0.0);
        // Ppl = Bpl: half the way from Ie to 95 (G.107 §3.5 with BurstR 1).
        assert!(close(
            effective_equipment_impairment(0.0, 20.0, 20.0),
            47.5,
            1e-9
        ));
        assert!(close(
            effective_equipment_impairment(11.0, 19.0, 19.0),
            53.0,
            1e-9
        ));
        // G.711 with PLC (Ie 0, Bpl 25.1) at 2 %: G.113's ~7.0.
        assert!(close(
            effective_equipment_impairment(0.0, 25.1, 2.0),
            7.01,
            0.01
        ));
        assert!(close(
            effective_equipment_impairment(0.0, 20.0, 100.0),
            95.0 * 100.0 / 120.0,
            1e-9
        ));
    }

    #[test]
    fn an_opus_call_scores_as_the_loss_and_delay_say() {
        // A LAN call, ~70 ms mouth to ear: still "best".
        assert!(mos(rating(0.0, 70.0)) > 4.3);
        // 10 % unrecovered loss: "fair" (R ≈ 60).
        let r = rating(10.0, 70.0);
        assert!((58.0..63.0).contains(&r), "R {r}");
        assert!((3.0..3.3).contains(&mos(r)), "MOS {}", mos(r));
        // Half a second one way is poor even with no loss.
        assert!(mos(rating(0.0, 500.0)) < 3.6);
        // More loss or more delay never scores better.
        for loss in 0..30 {
            for ta in (0..600).step_by(50) {
                let (l, t) = (f64::from(loss), f64::from(ta));
                assert!(rating(l + 1.0, t) <= rating(l, t));
                assert!(rating(l, t + 50.0) <= rating(l, t));
            }
        }
    }
}
