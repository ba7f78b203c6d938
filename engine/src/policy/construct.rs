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
//! Pure and deterministic; never allocates (legs are written to a fixed array).

use keel_feeds::instrument::InstrumentId;

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
    pub legs: [Leg; 2],
    /// Number of legs (1 or 2).
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
    let mut consider = |legs: [Leg; 2], n: usize| {
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
}
