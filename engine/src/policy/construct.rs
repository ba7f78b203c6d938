//! Hedge construction for gamma and vega: which options to trade, and how many, so that the
//! book's Γ and ν end inside their bands at the least cost; the delta those options add is
//! then hedged with the linear instrument in the same decision (by the caller, with the delta
//! policy).
//!
//! The solve: each candidate option i has per-contract Greeks (γᵢ, νᵢ, δᵢ) and a per-contract
//! cost to buy or to sell (half-spread plus fees, from the cost model). We want quantities qᵢ
//! with Γ + Σqᵢγᵢ and ν + Σqᵢνᵢ inside their bands, minimising Σ cost(qᵢ). With two
//! constraints, a linear programme of this shape has an optimal basic solution with at most
//! two non-zero qᵢ, so the solver tries every single candidate and every pair (solving the
//! 2×2 system exactly towards a target inside each band), rounds to lot sizes (trying the
//! floor/ceil neighbours), keeps only rounded solutions still inside both bands and that respect
//! minimum and maximum sizes, and returns the cheapest. A third leg could only help the rounding;
//! it is not tried (n² pairs stay cheap for a liquid set of a dozen options).
//!
//! With vega bands per expiry bucket as well ([`solve_bands`]), there are more constraints than
//! a pair can meet; that case is a small linear programme (buy and sell quantities of each
//! candidate, every band a pair of rows, sizes bounded) solved by [`super::lp`], then rounded to
//! lots by trying every floor/ceil combination of its legs against the full bands.
//!
//! Pure and deterministic; never allocates (legs are written to a fixed array; the LP works in a
//! workspace the caller allocated once).

use keel_feeds::instrument::InstrumentId;

use super::lp::{LpStatus, LpWorkspace, MAX_VARS};

/// Legs a solution may have at most.
pub const MAX_LEGS: usize = 8;
/// Expiry buckets with their own vega band in one solve, at most.
pub const MAX_BUCKETS: usize = 6;

/// A band: keep the value within `target ± half_width`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Band {
    /// Centre.
    pub target: f64,
    /// Half-width (> 0).
    pub half_width: f64,
}

impl Band {
    fn contains(&self, x: f64) -> bool {
        (x - self.target).abs() <= self.half_width * (1.0 + 1e-9)
    }
    /// True if `x` is inside the band.
    pub fn contains_value(&self, x: f64) -> bool {
        self.contains(x)
    }
    /// Where to aim: the value itself if it is inside the inner half of the band, else the
    /// nearest point of the inner half (so lot rounding has room before the edge).
    fn aim(&self, x: f64) -> f64 {
        let h = 0.5 * self.half_width;
        x.clamp(self.target - h, self.target + h)
    }
}

/// An option the policy may trade for gamma and vega.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    /// The instrument.
    pub id: InstrumentId,
    /// Delta per contract (the book's unit: coin).
    pub delta: f64,
    /// Gamma per contract.
    pub gamma: f64,
    /// Vega per contract.
    pub vega: f64,
    /// Cost of buying one contract (half-spread + fees), > 0.
    pub cost_buy: f64,
    /// Cost of selling one contract.
    pub cost_sell: f64,
    /// Contract step.
    pub lot: f64,
    /// Smallest order.
    pub min_size: f64,
    /// Largest order (liquidity or risk cap).
    pub max_size: f64,
}

/// One leg of a solution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Leg {
    /// Index into the candidates.
    pub candidate: usize,
    /// Signed quantity (buy > 0), a multiple of the lot.
    pub qty: f64,
}

/// The cheapest feasible trade.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Solution {
    /// Legs (`legs[..n]`).
    pub legs: [Leg; MAX_LEGS],
    /// Number of legs (1 or 2 from [`solve`], up to [`MAX_LEGS`] from [`solve_bands`]).
    pub n: usize,
    /// Total cost.
    pub cost: f64,
    /// Gamma after the trade.
    pub gamma_after: f64,
    /// Vega after the trade.
    pub vega_after: f64,
    /// Delta the legs add (to hedge with the linear instrument).
    pub delta_added: f64,
}

const NO_LEG: Leg = Leg {
    candidate: 0,
    qty: 0.0,
};

/// The vega of one expiry bucket and the band it must stay in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BucketBand {
    /// The bucket (expiry index); candidates name theirs in `cand_bucket`.
    pub bucket: u16,
    /// The bucket's vega now.
    pub vega: f64,
    /// Its band.
    pub band: Band,
}

/// The LP's target range for a row at `x`: the inner half of its band when `x` is outside,
/// else anywhere within 90 % of the band (and never forced away from where it is).
fn lp_range(band: &Band, x: f64) -> (f64, f64) {
    if !band.half_width.is_finite() {
        return (f64::NEG_INFINITY, f64::INFINITY);
    }
    if band.contains(x) {
        let h = 0.9 * band.half_width;
        ((band.target - h).min(x), (band.target + h).max(x))
    } else {
        let h = 0.5 * band.half_width;
        (band.target - h, band.target + h)
    }
}

/// Γ, ν and the vega of every bucket in `buckets` inside their bands at the least cost, or
/// `None` when they already are or no rounded trade within the size limits gets there.
/// `cand_bucket[i]` is candidate i's bucket (a bucket not in `buckets` has no band of its own).
/// At most `MAX_VARS / 2` candidates and [`MAX_BUCKETS`] buckets are used (the first ones).
#[allow(clippy::too_many_arguments)]
pub fn solve_bands(
    ws: &mut LpWorkspace,
    gamma: f64,
    vega: f64,
    gamma_band: &Band,
    vega_band: &Band,
    buckets: &[BucketBand],
    cands: &[Candidate],
    cand_bucket: &[u16],
) -> Option<Solution> {
    let buckets = &buckets[..buckets.len().min(MAX_BUCKETS)];
    if gamma_band.contains(gamma)
        && vega_band.contains(vega)
        && buckets.iter().all(|b| b.band.contains(b.vega))
    {
        return None;
    }
    let n = cands.len().min(cand_bucket.len()).min(MAX_VARS / 2);
    let cands = &cands[..n];
    if n == 0 || !ws.reset(2 * n) {
        return None;
    }
    let mut coef = [0.0; MAX_VARS];
    let mut row =
        |ws: &mut LpWorkspace, a: &dyn Fn(&Candidate, usize) -> f64, x: f64, band: &Band| {
            let (lo, hi) = lp_range(band, x);
            if !(lo.is_finite() || hi.is_finite()) {
                return true;
            }
            for (i, c) in cands.iter().enumerate() {
                let v = a(c, i);
                coef[2 * i] = v;
                coef[2 * i + 1] = -v;
            }
            ws.between(&coef[..2 * n], lo - x, hi - x)
        };
    let mut ok = row(ws, &|c, _| c.gamma, gamma, gamma_band);
    ok &= row(ws, &|c, _| c.vega, vega, vega_band);
    for b in buckets {
        ok &= row(
            ws,
            &|c, i| {
                if cand_bucket[i] == b.bucket {
                    c.vega
                } else {
                    0.0
                }
            },
            b.vega,
            &b.band,
        );
    }
    let mut unit = [0.0; MAX_VARS];
    for (i, c) in cands.iter().enumerate() {
        for (j, cost) in [(2 * i, c.cost_buy), (2 * i + 1, c.cost_sell)] {
            // A side without a price cannot trade: bounded at zero.
            let cap = if cost.is_finite() && cost >= 0.0 {
                c.max_size
            } else {
                0.0
            };
            ws.cost(j, if cost.is_finite() { cost } else { 0.0 });
            unit[j] = 1.0;
            ok &= ws.le(&unit[..2 * n], cap);
            unit[j] = 0.0;
        }
    }
    if !ok {
        return None;
    }
    let mut x = [0.0; MAX_VARS];
    if !matches!(ws.solve(&mut x[..2 * n]), LpStatus::Optimal(_)) {
        return None;
    }
    // The legs the LP uses (at most one per row of the basis), largest first if too many.
    let mut legs = [NO_LEG; MAX_LEGS];
    let mut k = 0;
    for i in 0..n {
        let q = x[2 * i] - x[2 * i + 1];
        if q.abs() > 1e-9 * cands[i].lot.max(1e-12) && k < MAX_LEGS {
            legs[k] = Leg {
                candidate: i,
                qty: q,
            };
            k += 1;
        }
    }
    if k == 0 {
        return None;
    }
    // Every floor/ceil rounding; the cheapest that ends inside every band.
    let mut best: Option<Solution> = None;
    for mask in 0u32..(1 << k) {
        let mut trial = [NO_LEG; MAX_LEGS];
        let mut m = 0;
        let (mut g, mut v, mut d, mut cost) = (gamma, vega, 0.0, 0.0);
        let mut bucket_v = [0.0; MAX_BUCKETS];
        for (bv, b) in bucket_v.iter_mut().zip(buckets) {
            *bv = b.vega;
        }
        let mut sizes = true;
        for (j, l) in legs[..k].iter().enumerate() {
            let c = &cands[l.candidate];
            let q = round_options(l.qty, c.lot)[((mask >> j) & 1) as usize];
            if q.abs() < 1e-12 {
                continue;
            }
            if !sizes_ok(c, q) {
                sizes = false;
                break;
            }
            g += q * c.gamma;
            v += q * c.vega;
            d += q * c.delta;
            cost += leg_cost(c, q);
            for (bv, b) in bucket_v.iter_mut().zip(buckets) {
                if cand_bucket[l.candidate] == b.bucket {
                    *bv += q * c.vega;
                }
            }
            trial[m] = Leg {
                candidate: l.candidate,
                qty: q,
            };
            m += 1;
        }
        if !sizes || m == 0 || !cost.is_finite() {
            continue;
        }
        let inside = gamma_band.contains(g)
            && vega_band.contains(v)
            && buckets
                .iter()
                .zip(&bucket_v)
                .all(|(b, &bv)| b.band.contains(bv));
        if inside && best.is_none_or(|b| cost < b.cost) {
            best = Some(Solution {
                legs: trial,
                n: m,
                cost,
                gamma_after: g,
                vega_after: v,
                delta_added: d,
            });
        }
    }
    best
}

fn leg_cost(c: &Candidate, q: f64) -> f64 {
    if q >= 0.0 {
        q * c.cost_buy
    } else {
        -q * c.cost_sell
    }
}

fn sizes_ok(c: &Candidate, q: f64) -> bool {
    q != 0.0 && q.abs() >= c.min_size && q.abs() <= c.max_size * (1.0 + 1e-12)
}

fn round_options(q: f64, lot: f64) -> [f64; 2] {
    let lot = if lot > 0.0 { lot } else { 1.0 };
    let f = (q / lot).floor() * lot;
    [f, f + lot]
}

/// Gamma and vega back inside `gamma_band` and `vega_band` at the least cost, or `None` when
/// they already are, or when no single option or pair can do it within the size limits.
pub fn solve(
    gamma: f64,
    vega: f64,
    gamma_band: &Band,
    vega_band: &Band,
    cands: &[Candidate],
) -> Option<Solution> {
    solve_with(gamma, vega, gamma_band, vega_band, cands, &|_| true)
}

/// [`solve`], keeping only solutions `accept` agrees to (e.g. "no expiry bucket's vega ends
/// further outside its own band than it is now").
pub fn solve_with(
    gamma: f64,
    vega: f64,
    gamma_band: &Band,
    vega_band: &Band,
    cands: &[Candidate],
    accept: &dyn Fn(&[Leg]) -> bool,
) -> Option<Solution> {
    if gamma_band.contains(gamma) && vega_band.contains(vega) {
        return None;
    }
    let (tg, tv) = (gamma_band.aim(gamma), vega_band.aim(vega));
    let (dg, dv) = (tg - gamma, tv - vega);
    let mut best: Option<Solution> = None;
    let mut consider = |two: [Leg; 2], n: usize| {
        let mut legs = [NO_LEG; MAX_LEGS];
        legs[..2].copy_from_slice(&two);
        let mut g = gamma;
        let mut v = vega;
        let mut d = 0.0;
        let mut cost = 0.0;
        for l in &legs[..n] {
            let c = &cands[l.candidate];
            if !sizes_ok(c, l.qty) {
                return;
            }
            g += l.qty * c.gamma;
            v += l.qty * c.vega;
            d += l.qty * c.delta;
            cost += leg_cost(c, l.qty);
        }
        if !(gamma_band.contains(g)
            && vega_band.contains(v)
            && cost.is_finite()
            && accept(&legs[..n]))
        {
            return;
        }
        if best.is_none_or(|b| cost < b.cost) {
            best = Some(Solution {
                legs,
                n,
                cost,
                gamma_after: g,
                vega_after: v,
                delta_added: d,
            });
        }
    };
    let none = Leg {
        candidate: 0,
        qty: 0.0,
    };
    // Single options: aim at whichever Greek is further out, relative to its band.
    for (i, c) in cands.iter().enumerate() {
        let by_gamma = if c.gamma != 0.0 {
            dg / c.gamma
        } else {
            f64::NAN
        };
        let by_vega = if c.vega != 0.0 { dv / c.vega } else { f64::NAN };
        for q in [by_gamma, by_vega] {
            if q.is_finite() {
                for r in round_options(q, c.lot) {
                    consider(
                        [
                            Leg {
                                candidate: i,
                                qty: r,
                            },
                            none,
                        ],
                        1,
                    );
                }
            }
        }
    }
    // Pairs: the 2×2 system towards the aim point, then every floor/ceil rounding.
    for i in 0..cands.len() {
        for j in i + 1..cands.len() {
            let (a, b) = (&cands[i], &cands[j]);
            let det = a.gamma * b.vega - b.gamma * a.vega;
            let scale = (a.gamma * b.vega).abs().max((b.gamma * a.vega).abs());
            // Nearly dependent pairs (a call and a put of one strike: same Γ and ν up to the
            // premium terms) would solve to huge offsetting sizes — a synthetic forward, not a
            // hedge. Skip pairs whose columns are within 0.1 % of parallel.
            if det.is_nan() || det.abs() <= 1e-3 * scale {
                continue;
            }
            let qi = (dg * b.vega - b.gamma * dv) / det;
            let qj = (a.gamma * dv - dg * a.vega) / det;
            if !(qi.is_finite() && qj.is_finite()) {
                continue;
            }
            for ri in round_options(qi, a.lot) {
                for rj in round_options(qj, b.lot) {
                    consider(
                        [
                            Leg {
                                candidate: i,
                                qty: ri,
                            },
                            Leg {
                                candidate: j,
                                qty: rj,
                            },
                        ],
                        2,
                    );
                }
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(id: u32, gamma: f64, vega: f64, delta: f64, cost: f64) -> Candidate {
        Candidate {
            id: InstrumentId(id),
            delta,
            gamma,
            vega,
            cost_buy: cost,
            cost_sell: cost,
            lot: 0.1,
            min_size: 0.1,
            max_size: 100.0,
        }
    }

    const G: Band = Band {
        target: 0.0,
        half_width: 0.002,
    };
    const V: Band = Band {
        target: 0.0,
        half_width: 1.0,
    };

    #[test]
    fn inside_both_bands_nothing_to_do() {
        assert_eq!(
            solve(0.001, -0.5, &G, &V, &[cand(1, 1e-4, 0.1, 0.5, 1.0)]),
            None
        );
    }

    #[test]
    fn a_short_straddle_buys_back_gamma_and_vega_with_a_near_and_a_far_option() {
        // Short a near straddle: Γ −0.01, ν −5. Near options: much gamma, little vega; far:
        // the reverse. One instrument alone cannot fix both.
        let cands = [
            cand(1, 5e-4, 0.10, 0.5, 2.0),  // near call
            cand(2, 1e-4, 0.40, 0.55, 3.0), // far call
            cand(3, 5e-4, 0.10, -0.5, 5.0), // near put, dearer
        ];
        let s = solve(-0.01, -5.0, &G, &V, &cands).expect("a feasible pair");
        assert_eq!(s.n, 2);
        assert!(
            G.contains(s.gamma_after) && V.contains(s.vega_after),
            "{s:?}"
        );
        let ids: Vec<usize> = s.legs[..2].iter().map(|l| l.candidate).collect();
        assert_eq!(
            ids,
            vec![0, 1],
            "the cheap near call and the far call: {s:?}"
        );
        for l in &s.legs[..2] {
            assert!(l.qty > 0.0, "buys: {s:?}");
            let r = l.qty / 0.1;
            assert!((r - r.round()).abs() < 1e-9, "lot multiple: {s:?}");
        }
        // Delta the legs add, for the linear hedge.
        let d: f64 = s.legs[..2]
            .iter()
            .map(|l| l.qty * cands[l.candidate].delta)
            .sum();
        assert!((d - s.delta_added).abs() < 1e-12);
        // The cost is the cheapest: swapping the near call for the dearer put costs more.
        let alt = solve(-0.01, -5.0, &G, &V, &cands[1..]).unwrap();
        assert!(alt.cost > s.cost);
    }

    #[test]
    fn a_call_and_a_put_of_one_strike_are_not_a_pair() {
        // Same Γ and ν but for a hair: the pair would be a huge synthetic forward.
        let cands = [
            cand(1, 5e-4, 0.10, 0.5, 1.0),
            cand(2, 5e-4 * (1.0 + 1e-6), 0.10, -0.5, 1.0),
        ];
        let s = solve(-0.01, -5.0, &G, &V, &cands);
        assert!(s.is_none_or(|s| s.n == 1), "{s:?}");
    }

    #[test]
    fn accept_can_refuse_solutions() {
        let cands = [
            cand(1, 5e-4, 0.10, 0.5, 2.0),
            cand(2, 1e-4, 0.40, 0.55, 3.0),
        ];
        // Refuse anything that trades candidate 1: no pair is left, and candidate 0 alone
        // cannot fix both Greeks.
        let no_far = |legs: &[Leg]| legs.iter().all(|l| l.candidate != 1);
        assert_eq!(solve_with(-0.01, -5.0, &G, &V, &cands, &no_far), None);
        assert!(solve_with(-0.01, -5.0, &G, &V, &cands, &|_| true).is_some());
    }

    #[test]
    fn gamma_only_takes_one_leg_and_sizes_are_respected() {
        let loose_v = Band {
            target: 0.0,
            half_width: 1e9,
        };
        let cands = [cand(1, 5e-4, 0.1, 0.5, 1.0)];
        let s = solve(0.01, 0.0, &G, &loose_v, &cands).unwrap();
        assert_eq!(s.n, 1);
        assert!(s.legs[0].qty < 0.0, "sells gamma: {s:?}");
        // Too small a max size: infeasible.
        let mut small = cands;
        small[0].max_size = 1.0;
        assert_eq!(solve(0.01, 0.0, &G, &loose_v, &small), None);
        // No candidates, no solution.
        assert_eq!(solve(0.01, 0.0, &G, &V, &[]), None);
    }

    #[test]
    fn bucket_bands_move_vega_between_expiries_that_cancel_in_total() {
        // Short 8 vega in the near expiry, long 8 in the far one: the total is flat, each bucket
        // is far outside its ±1 band. Near and far calls and puts are candidates.
        let cands = [
            cand(1, 5e-4, 0.10, 0.5, 2.0),   // near call
            cand(2, 5e-4, 0.10, -0.5, 2.5),  // near put
            cand(3, 1e-4, 0.40, 0.55, 3.0),  // far call
            cand(4, 1e-4, 0.40, -0.45, 3.5), // far put
        ];
        let bucket = [0u16, 0, 1, 1];
        let wide = Band {
            target: 0.0,
            half_width: f64::INFINITY,
        };
        let bands = [
            BucketBand {
                bucket: 0,
                vega: -8.0,
                band: V,
            },
            BucketBand {
                bucket: 1,
                vega: 8.0,
                band: V,
            },
        ];
        // Without bucket bands there is nothing to do.
        assert_eq!(solve(0.0, 0.0, &wide, &V, &cands), None);
        let mut ws = LpWorkspace::new();
        let s = solve_bands(&mut ws, 0.0, 0.0, &wide, &V, &bands, &cands, &bucket)
            .expect("a feasible trade");
        let (mut near, mut far) = (-8.0, 8.0);
        for l in &s.legs[..s.n] {
            let c = cands[l.candidate];
            if bucket[l.candidate] == 0 {
                near += l.qty * c.vega;
            } else {
                far += l.qty * c.vega;
            }
            let r = l.qty / 0.1;
            assert!((r - r.round()).abs() < 1e-9, "lot multiple: {s:?}");
        }
        assert!(V.contains(near) && V.contains(far), "{near} {far}: {s:?}");
        assert!(V.contains(s.vega_after), "{s:?}");
        // The cheapest legs: the near call bought, the far call sold.
        let ids: Vec<u32> = s.legs[..s.n]
            .iter()
            .map(|l| cands[l.candidate].id.0)
            .collect();
        assert_eq!(ids, vec![1, 3], "{s:?}");
        assert!(s.legs[0].qty > 0.0 && s.legs[1].qty < 0.0, "{s:?}");
        // Inside every band: nothing to do.
        let calm = [
            BucketBand {
                bucket: 0,
                vega: -0.5,
                band: V,
            },
            BucketBand {
                bucket: 1,
                vega: 0.5,
                band: V,
            },
        ];
        assert_eq!(
            solve_bands(&mut ws, 0.0, 0.0, &wide, &V, &calm, &cands, &bucket),
            None
        );
        // No candidate in the far bucket: its band cannot be met.
        assert_eq!(
            solve_bands(
                &mut ws,
                0.0,
                0.0,
                &wide,
                &V,
                &bands,
                &cands[..2],
                &bucket[..2]
            ),
            None
        );
    }

    #[test]
    fn bands_without_buckets_agree_with_the_pair_solve() {
        let cands = [
            cand(1, 5e-4, 0.10, 0.5, 2.0),
            cand(2, 1e-4, 0.40, 0.55, 3.0),
            cand(3, 5e-4, 0.10, -0.5, 5.0),
        ];
        let mut ws = LpWorkspace::new();
        let lp = solve_bands(&mut ws, -0.01, -5.0, &G, &V, &[], &cands, &[0, 0, 0]).unwrap();
        let pair = solve(-0.01, -5.0, &G, &V, &cands).unwrap();
        assert!(
            G.contains(lp.gamma_after) && V.contains(lp.vega_after),
            "{lp:?}"
        );
        // Both aim inside the bands; the LP's optimum is at least as cheap before rounding and
        // within a lot's cost after it.
        assert!(lp.cost <= pair.cost + 0.1 * 5.0 * 2.0, "{lp:?} vs {pair:?}");
    }
}
