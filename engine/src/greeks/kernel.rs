//! The batch Black-Scholes-Merton / Black-76 kernel, written once over [`Lanes`].
//!
//! Two paths share one second half ([`finish`]):
//! - the full path computes every per-option term from the book's inputs;
//! - the spot-move path, for ticks where only the underlying moved, reads the terms that do not
//!   depend on it (σ√τ, discount factors, −ln K plus the rest of d1's numerator, …) from a
//!   [`SpotCache`] and recomputes only ln S onwards.
//!
//! Formulas (HEDGING.md, Haug): with a = S·e^{−qτ}, D_K = K·e^{−rτ}, ω = ±1,
//! price = ω[a·N(ωd1) − D_K·N(ωd2)], Δ = ω·e^{−qτ}·N(ωd1), Γ = e^{−qτ}·n(d1)/(S·σ√τ),
//! vega = a·n(d1)·√τ, Θ = −a·n(d1)·σ/(2√τ) + ω(q·a·N(ωd1) − r·D_K·N(ωd2)),
//! ρ = ω·τ·D_K·N(ωd2) (BSM) or −τ·V (Black-76, F held), vanna = −e^{−qτ}·n(d1)·d2/σ,
//! volga = vega·d1·d2/σ. Puts and out-of-the-money legs use N(ωd) directly, never parity.
//! n(d2) comes from n(d1) by the identity D_K·n(d2) = a·n(d1), so one `exp` serves both tails.
//!
//! Degenerate rows (σ√τ < [`SD_MIN`], which includes expired rows τ ≤ 0) take the
//! deterministic limit: d1 = d2 = ±[`D_BIG`] by the sign of ln(F/K), so the price is the
//! discounted intrinsic value, Δ is 0 or ±e^{−qτ} (±1 at expiry; at-the-money counts as out of
//! the money), and Γ, vega, vanna, volga and the σ-part of Θ are exactly 0.
//!
//! Never allocates; never branches on data except to skip the cdf's far-tail region and, on f64
//! vectors, the degenerate-row selects when no lane of the vector is degenerate.
//!
//! The f64 vector instantiations evaluate some expressions in a different order from the scalar
//! twin (`math::short_chains`): the loop body is one long dependency chain, and shortening it
//! (Estrin's form for e^{−d1²/2}'s polynomial, divisions and products that need only the inputs
//! moved off the chain through e^{−d1²/2}) took the f64x8 full path from about 3.8 to 3.6 ns
//! per option and the spot path from 3.1 to 2.8 on Zen 5. The twin keeps the textbook order
//! bit for bit; the vector results stay within 1e-11 relative of it (tests).

use super::batch::{
    BookInputs, Column, Element, GreekValues, GreeksColumns, Model, OptionKind, OptionRow,
};
use super::lanes::{Lanes, Pair};
use super::math::{INV_SQRT_2PI, exp_carry, exp_neg_half_sq, ncdf_with_exp, short_chains};
use thiserror::Error;

/// Below this σ√τ a row is priced as deterministic (its limit as σ√τ → 0).
pub const SD_MIN: f64 = 1e-10;
/// |d| used for degenerate rows: N(±D_BIG) is exactly 1 or 0 and n(D_BIG) exactly 0.
pub const D_BIG: f64 = 40.0;

/// Per-option terms that do not depend on the underlying's price.
#[derive(Clone, Copy)]
struct Terms<V> {
    omega: V,
    /// (r − q + σ²/2)·τ: d1's numerator less ln(S/K).
    drift: V,
    sd: V,
    /// 1/(σ√τ), or 0 for a degenerate row.
    inv_sd: V,
    sqrt_t: V,
    /// σ/(2√τ), or 0 for a degenerate row.
    theta_k: V,
    inv_sigma: V,
    /// e^{−qτ}.
    eq: V,
    /// K·e^{−rτ}.
    dk: V,
    /// e^{(r−q)τ}/K, so that n(d2) = n(d1)·S·fk.
    fk: V,
    /// +τ for BSM (ρ = τ·ω·D_K·N(ωd2)), −τ for Black-76 (ρ = −τ·V, F held).
    rho_t: V,
    q: V,
    r: V,
}

/// The eight outputs of one vector of options.
#[derive(Clone, Copy)]
struct Out<V> {
    price: V,
    delta: V,
    gamma: V,
    vega: V,
    theta: V,
    rho: V,
    vanna: V,
    volga: V,
}

#[inline(always)]
fn prepare<V: Lanes>(b: &BookInputs<V::Elem>, i: usize) -> Terms<V>
where
    V::Elem: Element,
{
    let ld = |c: &Column<V::Elem>| V::load(&c.as_slice()[i..]);
    terms(
        ld(&b.omega),
        ld(&b.black76),
        ld(&b.k),
        ld(&b.t),
        ld(&b.r),
        ld(&b.q),
        ld(&b.sigma),
    )
}

#[inline(always)]
fn terms<V: Lanes>(omega: V, b76: V, k: V, t: V, r: V, q: V, sigma: V) -> Terms<V> {
    let zero = V::splat(0.0);
    let one = V::splat(1.0);
    // An expired option (τ ≤ 0) has no carry left: its theta and rho are 0.
    let live = t.gt(zero);
    let t = t.max(zero);
    let sqrt_t = t.sqrt();
    let sd = sigma * sqrt_t;
    let degenerate = sd.lt(V::splat(SD_MIN));
    let inv_sd = V::select(degenerate, zero, one / sd);
    let inv_sigma = one / sigma;
    let half_var = V::splat(0.5) * sigma * sigma;
    let drift = (r - q + half_var) * t;
    let theta_k = half_var * inv_sd;
    let eq = exp_carry(-q * t);
    let dk = k * exp_carry(-r * t);
    let fk = eq / dk;
    Terms {
        omega,
        drift,
        sd,
        inv_sd,
        sqrt_t,
        theta_k,
        inv_sigma,
        eq,
        dk,
        fk,
        rho_t: t - V::splat(2.0) * t * b76,
        q: V::select(live, q, zero),
        r: V::select(live, r, zero),
    }
}

/// Prices one option with the scalar twin, without allocating: the per-option entry point
/// (the batch functions are the fast path). The row must have passed
/// [`super::batch::validate`]; [`super::greeks_one`] checks it first.
pub fn price_row(o: &OptionRow) -> GreekValues {
    let omega = match o.kind {
        OptionKind::Call => 1.0,
        OptionKind::Put => -1.0,
    };
    let (b76, q) = match o.model {
        Model::Bsm => (0.0, o.q),
        Model::Black76 => (1.0, o.r),
    };
    let m = terms::<f64>(omega, b76, o.k, o.t, o.r, q, o.sigma);
    let x = (o.s / o.k).ln() + m.drift;
    let g = finish(o.s, x, &m);
    GreekValues {
        price: g.price,
        delta: g.delta,
        gamma: g.gamma,
        vega: g.vega,
        theta: g.theta,
        rho: g.rho,
        vanna: g.vanna,
        volga: g.volga,
    }
}

/// Everything that depends on the underlying: `x` is d1's numerator ln(S/K) + drift.
#[inline(always)]
fn finish<V: Lanes>(s: V, x: V, m: &Terms<V>) -> Out<V> {
    let zero = V::splat(0.0);
    // Degenerate rows carry inv_sd = 0; any threshold between 0 and the smallest real 1/(σ√τ)
    // (0.002 for σ ≤ 5, τ ≤ 100) works, and this one is a normal number in f32 too.
    let degenerate = m.inv_sd.lt(V::splat(1e-20));
    let (d1, d2) = if short_chains::<V>() && !V::any(degenerate) {
        // Vectors without a degenerate lane (nearly all) skip the selects below: they sit on
        // the chain from ln(S/K) to every output (see `short_chains`).
        let d1 = x * m.inv_sd;
        (d1, d1 - m.sd)
    } else {
        // Exactly at the money counts as out of the money: ω·d = −D_BIG.
        let atm = -(m.omega * V::splat(D_BIG));
        let big = V::select(
            x.gt(zero),
            V::splat(D_BIG),
            V::select(x.lt(zero), V::splat(-D_BIG), atm),
        );
        let d1 = V::select(degenerate, big, x * m.inv_sd);
        (d1, V::select(degenerate, big, d1 - m.sd))
    };
    let e1 = exp_neg_half_sq(d1);
    // Vectors form S·fk first, off the chain through e1.
    let e2 = if short_chains::<V>() {
        e1 * (s * m.fk)
    } else {
        e1 * s * m.fk
    };
    let n1 = e1 * V::splat(INV_SQRT_2PI);
    let cdf1 = ncdf_with_exp(m.omega * d1, e1);
    let cdf2 = ncdf_with_exp(m.omega * d2, e2);

    let a = s * m.eq;
    let wa = m.omega * a * cdf1;
    let w_dk = m.omega * m.dk;
    let wk = w_dk * cdf2;
    // Vectors form price, theta and rho from N(ωd2) with one FMA each instead of through wk
    // and price (see `short_chains`): they end the chain.
    let price = if short_chains::<V>() {
        (-w_dk).mul_add(cdf2, wa)
    } else {
        wa - wk
    };
    let delta = m.omega * m.eq * cdf1;
    let eq_n1 = m.eq * n1;
    let gamma = if short_chains::<V>() {
        n1 * (m.eq * m.inv_sd / s)
    } else {
        eq_n1 * m.inv_sd / s
    };
    let a_n1 = a * n1;
    let vega = a_n1 * m.sqrt_t;
    let theta_wa = m.q.mul_add(wa, -(a_n1 * m.theta_k));
    let black76 = m.rho_t.lt(zero);
    let (theta, rho) = if short_chains::<V>() {
        // BSM: ρ = τ·ωD_K·N(ωd2); Black-76: ρ = −τ·V = τ·ωD_K·N(ωd2) − τ·ωa·N(ωd1).
        let tail = V::select(black76, m.rho_t * wa, zero);
        (
            (-(m.r * w_dk)).mul_add(cdf2, theta_wa),
            (m.rho_t.abs() * w_dk).mul_add(cdf2, tail),
        )
    } else {
        (theta_wa - m.r * wk, m.rho_t * V::select(black76, price, wk))
    };
    let d2_over_sigma = d2 * m.inv_sigma;
    let vanna = -(eq_n1 * d2_over_sigma);
    let volga = vega * d1 * d2_over_sigma;
    Out {
        price,
        delta,
        gamma,
        vega,
        theta,
        rho,
        vanna,
        volga,
    }
}

#[inline(always)]
fn store<V: Lanes>(o: &Out<V>, out: &mut GreeksColumns<V::Elem>, i: usize)
where
    V::Elem: Element,
{
    o.price.store(&mut out.price.as_mut_slice()[i..]);
    o.delta.store(&mut out.delta.as_mut_slice()[i..]);
    o.gamma.store(&mut out.gamma.as_mut_slice()[i..]);
    o.vega.store(&mut out.vega.as_mut_slice()[i..]);
    o.theta.store(&mut out.theta.as_mut_slice()[i..]);
    o.rho.store(&mut out.rho.as_mut_slice()[i..]);
    o.vanna.store(&mut out.vanna.as_mut_slice()[i..]);
    o.volga.store(&mut out.volga.as_mut_slice()[i..]);
}

/// Reprices every row of `book` from its inputs into `out` (full path).
///
/// Vector types run two vectors per step in lockstep ([`Pair`]), then one for a last odd
/// vector; the scalar twin (`V = f64`) runs one row per step. Never inlined: the loop is
/// compiled the same way whatever the caller (inlined into the bench's large
/// caller it ran ~15% slower).
#[inline(never)]
pub fn reprice_full<V: Lanes>(book: &BookInputs<V::Elem>, out: &mut GreeksColumns<V::Elem>)
where
    V::Elem: Element,
{
    let n = book.padded_len();
    assert_eq!(out.price.as_slice().len(), n, "outputs sized for this book");
    let mut i = 0;
    if V::LANES > 1 {
        while i + 2 * V::LANES <= n {
            full_step::<Pair<V>>(book, out, i);
            i += 2 * V::LANES;
        }
    }
    while i < n {
        if V::LANES > 1 {
            full_tail::<V>(book, out, i);
        } else {
            full_step::<V>(book, out, i);
        }
        i += V::LANES;
    }
}

/// One vector of the full path, kept out of line so that it does not crowd the paired loop.
#[inline(never)]
fn full_tail<V: Lanes>(book: &BookInputs<V::Elem>, out: &mut GreeksColumns<V::Elem>, i: usize)
where
    V::Elem: Element,
{
    full_step::<V>(book, out, i);
}

/// Rows `i .. i + V::LANES` of the full path.
#[inline(always)]
fn full_step<V: Lanes>(book: &BookInputs<V::Elem>, out: &mut GreeksColumns<V::Elem>, i: usize)
where
    V::Elem: Element,
{
    let m = prepare::<V>(book, i);
    let s = V::load(&book.s.as_slice()[i..]);
    let k = V::load(&book.k.as_slice()[i..]);
    let x = (s / k).ln() + m.drift;
    store(&finish(s, x, &m), out, i);
}

/// The spot-independent terms of every row, for [`reprice_spot`].
#[derive(Clone, Debug)]
pub struct SpotCache<E: Element> {
    book_id: u64,
    generation: u64,
    omega: Column<E>,
    /// drift − ln K.
    c: Column<E>,
    sd: Column<E>,
    inv_sd: Column<E>,
    theta_k: Column<E>,
    inv_sigma: Column<E>,
    eq: Column<E>,
    dk: Column<E>,
    fk: Column<E>,
    rho_t: Column<E>,
    q: Column<E>,
    r: Column<E>,
}

/// The cache does not belong to this book as it is now: another book, or one whose inputs
/// other than spots changed since the cache was built.
#[derive(Debug, Error, PartialEq, Eq)]
#[error(
    "spot cache is stale: built for book {cache_book} at generation {cache}, given book {book_id} \
     at generation {book}; rebuild it (full path)"
)]
pub struct StaleCache {
    /// Book the cache was built for.
    pub cache_book: u64,
    /// Generation the cache was built for.
    pub cache: u64,
    /// The book given.
    pub book_id: u64,
    /// The given book's generation now.
    pub book: u64,
}

impl<E: Element> SpotCache<E> {
    /// Computes the cache for `book` with lanes `V`.
    pub fn build<V: Lanes<Elem = E>>(book: &BookInputs<E>) -> Self {
        let n = book.padded_len();
        let z = || Column::zeros(n);
        let mut c = Self {
            book_id: book.id(),
            generation: book.generation(),
            omega: z(),
            c: z(),
            sd: z(),
            inv_sd: z(),
            theta_k: z(),
            inv_sigma: z(),
            eq: z(),
            dk: z(),
            fk: z(),
            rho_t: z(),
            q: z(),
            r: z(),
        };
        c.fill::<V>(book);
        c
    }

    /// Recomputes the cache for `book` in place (no allocation when the book's padded size is
    /// unchanged, which is the hot-path case: the pricer's book never changes size).
    pub fn rebuild<V: Lanes<Elem = E>>(&mut self, book: &BookInputs<E>) {
        if self.c.as_slice().len() != book.padded_len() {
            *self = Self::build::<V>(book);
            return;
        }
        self.fill::<V>(book);
    }

    fn fill<V: Lanes<Elem = E>>(&mut self, book: &BookInputs<E>) {
        let n = book.padded_len();
        self.book_id = book.id();
        self.generation = book.generation();
        let c = self;
        let mut i = 0;
        while i < n {
            let m = prepare::<V>(book, i);
            let k = V::load(&book.k.as_slice()[i..]);
            let st = |v: V, col: &mut Column<E>| v.store(&mut col.as_mut_slice()[i..]);
            st(m.omega, &mut c.omega);
            st(m.drift - k.ln(), &mut c.c);
            st(m.sd, &mut c.sd);
            st(m.inv_sd, &mut c.inv_sd);
            st(m.theta_k, &mut c.theta_k);
            st(m.inv_sigma, &mut c.inv_sigma);
            st(m.eq, &mut c.eq);
            st(m.dk, &mut c.dk);
            st(m.fk, &mut c.fk);
            st(m.rho_t, &mut c.rho_t);
            st(m.q, &mut c.q);
            st(m.r, &mut c.r);
            i += V::LANES;
        }
    }

    /// The book generation this cache was built for.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

/// Reprices every row of `book` after only its spots (column `s`) moved, from `cache`.
/// Refuses a cache built before the book's other inputs last changed. Runs like
/// [`reprice_full`]: two vectors in lockstep, never inlined.
#[inline(never)]
pub fn reprice_spot<V: Lanes>(
    book: &BookInputs<V::Elem>,
    cache: &SpotCache<V::Elem>,
    out: &mut GreeksColumns<V::Elem>,
) -> Result<(), StaleCache>
where
    V::Elem: Element,
{
    if cache.book_id != book.id() || cache.generation != book.generation() {
        return Err(StaleCache {
            cache_book: cache.book_id,
            cache: cache.generation,
            book_id: book.id(),
            book: book.generation(),
        });
    }
    let n = book.padded_len();
    assert_eq!(out.price.as_slice().len(), n, "outputs sized for this book");
    let mut i = 0;
    if V::LANES > 1 {
        while i + 2 * V::LANES <= n {
            spot_step::<Pair<V>>(book, cache, out, i);
            i += 2 * V::LANES;
        }
    }
    while i < n {
        if V::LANES > 1 {
            spot_tail::<V>(book, cache, out, i);
        } else {
            spot_step::<V>(book, cache, out, i);
        }
        i += V::LANES;
    }
    Ok(())
}

/// One vector of the spot-move path, out of line like [`full_tail`].
#[inline(never)]
fn spot_tail<V: Lanes>(
    book: &BookInputs<V::Elem>,
    cache: &SpotCache<V::Elem>,
    out: &mut GreeksColumns<V::Elem>,
    i: usize,
) where
    V::Elem: Element,
{
    spot_step::<V>(book, cache, out, i);
}

/// Rows `i .. i + V::LANES` of the spot-move path.
#[inline(always)]
fn spot_step<V: Lanes>(
    book: &BookInputs<V::Elem>,
    cache: &SpotCache<V::Elem>,
    out: &mut GreeksColumns<V::Elem>,
    i: usize,
) where
    V::Elem: Element,
{
    let ld = |col: &Column<V::Elem>| V::load(&col.as_slice()[i..]);
    // √τ is σ√τ/σ: one multiply instead of one more column to stream.
    let sd = ld(&cache.sd);
    let inv_sigma = ld(&cache.inv_sigma);
    let m = Terms {
        omega: ld(&cache.omega),
        drift: V::splat(0.0),
        sd,
        inv_sd: ld(&cache.inv_sd),
        sqrt_t: sd * inv_sigma,
        theta_k: ld(&cache.theta_k),
        inv_sigma,
        eq: ld(&cache.eq),
        dk: ld(&cache.dk),
        fk: ld(&cache.fk),
        rho_t: ld(&cache.rho_t),
        q: ld(&cache.q),
        r: ld(&cache.r),
    };
    let s = ld(&book.s);
    let x = s.ln() + ld(&cache.c);
    store(&finish(s, x, &m), out, i);
}

/// The outputs hedging decisions use, per row: price (for the coin delta Δ − V/F and the P&L
/// mark), delta, gamma and vega. Written by [`reprice_hedge`].
#[derive(Clone, Debug)]
pub struct HedgeColumns<E: Element> {
    len: usize,
    /// Premium in the model's quote currency.
    pub price: Column<E>,
    /// dV/dS.
    pub delta: Column<E>,
    /// d²V/dS².
    pub gamma: Column<E>,
    /// dV/dσ per 1.00 of vol.
    pub vega: Column<E>,
}

impl<E: Element> HedgeColumns<E> {
    /// Output columns sized for `book`.
    pub fn for_book(book: &HedgeBook<E>) -> Self {
        let n = book.padded_len();
        Self {
            len: book.len,
            price: Column::zeros(n),
            delta: Column::zeros(n),
            gamma: Column::zeros(n),
            vega: Column::zeros(n),
        }
    }
    /// Number of real rows.
    pub fn len(&self) -> usize {
        self.len
    }
    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Row `i` widened to f64: (price, delta, gamma, vega).
    #[inline]
    pub fn row(&self, i: usize) -> [f64; 4] {
        let g = |c: &Column<E>| c.as_slice()[i].to_f64();
        [
            g(&self.price),
            g(&self.delta),
            g(&self.gamma),
            g(&self.vega),
        ]
    }
}

/// The hedge-Greeks path's per-row terms, in the element type `E` (f32 for `f32x16`).
///
/// Every term that does not depend on the underlying is computed in f64 from the f64 book
/// ([`HedgeBook::rebuild`] for all rows, [`HedgeBook::set_row`] for one) and only then rounded
/// to `E`. d1's numerator is kept as `x_ref` = ln(S_ref/K) + drift, computed in f64 at a
/// reference price S_ref, and the tick supplies `u` = ln(S/S_ref) per row (computed once per
/// expiry in f64 by the caller, [`HedgeBook::set_move`]): x = x_ref + u keeps d1's numerator
/// to ~1e-7 absolute in f32 where ln S − ln K in f32 would lose ~1e-6 to cancellation (ln S ≈
/// 11 for bitcoin).
#[derive(Clone, Debug)]
pub struct HedgeBook<E: Element> {
    len: usize,
    omega: Column<E>,
    x_ref: Column<E>,
    u: Column<E>,
    s: Column<E>,
    sd: Column<E>,
    inv_sd: Column<E>,
    sqrt_t: Column<E>,
    eq: Column<E>,
    dk: Column<E>,
    fk: Column<E>,
}

impl<E: Element> HedgeBook<E> {
    /// Terms for every row of `inputs`, with S_ref = each row's `s` (and `u` = 0).
    pub fn build(inputs: &BookInputs<f64>) -> Self {
        let n = inputs.padded_len();
        let z = || Column::zeros(n);
        let mut h = Self {
            len: inputs.len(),
            omega: z(),
            x_ref: z(),
            u: z(),
            s: z(),
            sd: z(),
            inv_sd: z(),
            sqrt_t: z(),
            eq: z(),
            dk: z(),
            fk: z(),
        };
        h.rebuild(inputs);
        h
    }

    /// Recomputes every row's terms from `inputs` (f64 SIMD, then rounded to `E`), with S_ref =
    /// each row's `s` now and `u` = 0. Never allocates (the book's size is fixed at build).
    pub fn rebuild(&mut self, inputs: &BookInputs<f64>) {
        assert_eq!(inputs.padded_len(), self.padded_len(), "same book");
        type W = super::WideF64;
        let n = inputs.padded_len();
        let mut i = 0;
        while i < n {
            let m = prepare::<W>(inputs, i);
            let s = W::load(&inputs.s.as_slice()[i..]);
            let k = W::load(&inputs.k.as_slice()[i..]);
            let x = (s / k).ln() + m.drift;
            let put = |v: W, col: &mut Column<E>| {
                let mut tmp = [0.0f64; 8];
                v.store(&mut tmp);
                for (d, x) in col.as_mut_slice()[i..i + W::LANES].iter_mut().zip(tmp) {
                    *d = E::from_f64(x);
                }
            };
            put(m.omega, &mut self.omega);
            put(x, &mut self.x_ref);
            put(W::splat(0.0), &mut self.u);
            put(s, &mut self.s);
            put(m.sd, &mut self.sd);
            put(m.inv_sd, &mut self.inv_sd);
            put(m.sqrt_t, &mut self.sqrt_t);
            put(m.eq, &mut self.eq);
            put(m.dk, &mut self.dk);
            put(m.fk, &mut self.fk);
            i += W::LANES;
        }
    }

    /// Recomputes row `i`'s terms from `inputs` (the scalar f64 twin, then rounded) with S_ref
    /// = `s_ref`: the reference of the row's group, so that one `u` serves the whole group.
    /// The row's `s` and `u` are left as they are (the next [`Self::set_move`] sets them).
    pub fn set_row(&mut self, i: usize, inputs: &BookInputs<f64>, s_ref: f64) {
        let v = |c: &Column<f64>| c.as_slice()[i];
        let m = terms::<f64>(
            v(&inputs.omega),
            v(&inputs.black76),
            v(&inputs.k),
            v(&inputs.t),
            v(&inputs.r),
            v(&inputs.q),
            v(&inputs.sigma),
        );
        let x = (s_ref / v(&inputs.k)).ln() + m.drift;
        let put = |x: f64, col: &mut Column<E>| col.as_mut_slice()[i] = E::from_f64(x);
        put(m.omega, &mut self.omega);
        put(x, &mut self.x_ref);
        put(m.sd, &mut self.sd);
        put(m.inv_sd, &mut self.inv_sd);
        put(m.sqrt_t, &mut self.sqrt_t);
        put(m.eq, &mut self.eq);
        put(m.dk, &mut self.dk);
        put(m.fk, &mut self.fk);
    }

    /// Sets the underlying of rows `rows` to `s`, whose log-move from their reference is `u` =
    /// ln(s/S_ref) (computed by the caller in f64). Panics if `rows` is outside the book.
    #[inline]
    pub fn set_move(&mut self, rows: core::ops::Range<usize>, s: f64, u: f64) {
        self.s.as_mut_slice()[rows.clone()].fill(E::from_f64(s));
        self.u.as_mut_slice()[rows].fill(E::from_f64(u));
    }

    /// Number of real rows.
    pub fn len(&self) -> usize {
        self.len
    }
    /// True when the book has no rows.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Rows including padding.
    pub fn padded_len(&self) -> usize {
        self.s.as_slice().len()
    }
}

/// Reprices the hedge Greeks (price, delta, gamma, vega) of every row of `book` into `out`:
/// the kernel's second half ([`finish`]) on [`HedgeBook`]'s terms, storing only those four
/// outputs (the compiler drops the arithmetic of the other four). The per-tick path of the
/// pricer with `--reprice f32` (`V = f32x16`); never allocates, never inlined (like
/// [`reprice_full`]).
#[inline(never)]
pub fn reprice_hedge<V: Lanes>(book: &HedgeBook<V::Elem>, out: &mut HedgeColumns<V::Elem>)
where
    V::Elem: Element,
{
    let n = book.padded_len();
    assert_eq!(out.price.as_slice().len(), n, "outputs sized for this book");
    let mut i = 0;
    if V::LANES > 1 {
        while i + 2 * V::LANES <= n {
            hedge_step::<Pair<V>>(book, out, i);
            i += 2 * V::LANES;
        }
    }
    while i < n {
        hedge_step::<V>(book, out, i);
        i += V::LANES;
    }
}

/// Rows `i .. i + V::LANES` of the hedge path.
#[inline(always)]
fn hedge_step<V: Lanes>(book: &HedgeBook<V::Elem>, out: &mut HedgeColumns<V::Elem>, i: usize)
where
    V::Elem: Element,
{
    let ld = |col: &Column<V::Elem>| V::load(&col.as_slice()[i..]);
    let zero = V::splat(0.0);
    let m = Terms {
        omega: ld(&book.omega),
        drift: zero,
        sd: ld(&book.sd),
        inv_sd: ld(&book.inv_sd),
        sqrt_t: ld(&book.sqrt_t),
        theta_k: zero,
        inv_sigma: zero,
        eq: ld(&book.eq),
        dk: ld(&book.dk),
        fk: ld(&book.fk),
        rho_t: zero,
        q: zero,
        r: zero,
    };
    let s = ld(&book.s);
    let x = ld(&book.x_ref) + ld(&book.u);
    let o = finish(s, x, &m);
    o.price.store(&mut out.price.as_mut_slice()[i..]);
    o.delta.store(&mut out.delta.as_mut_slice()[i..]);
    o.gamma.store(&mut out.gamma.as_mut_slice()[i..]);
    o.vega.store(&mut out.vega.as_mut_slice()[i..]);
}

#[cfg(test)]
mod hedge_tests {
    use super::*;
    use crate::greeks::{WideF32, validate};

    /// Rows like a crypto chain: calls and puts, BSM and Black-76, a day to a year, strikes
    /// 0.5–1.6× spot; plus an expired row and a near-zero-vol row (the degenerate limit).
    fn rows() -> Vec<OptionRow> {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut u = move || {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut v: Vec<OptionRow> = (0..203)
            .map(|i| {
                let s = 60_000.0;
                let k = (s * (0.5 + 1.1 * u()) / 500.0).round() * 500.0;
                let t = (1.0 + 364.0 * u() * u()) / 365.0;
                let sigma = 0.3 + u();
                let kind = if i % 2 == 0 {
                    OptionKind::Call
                } else {
                    OptionKind::Put
                };
                if i % 3 == 0 {
                    OptionRow::bsm(kind, s, k, t, 0.03, 0.01, sigma)
                } else {
                    OptionRow::black76(kind, s * (0.03 * t).exp(), k, t, 0.0, sigma)
                }
            })
            .collect();
        v.push(OptionRow::black76(
            OptionKind::Call,
            61_000.0,
            60_000.0,
            -0.01,
            0.0,
            0.5,
        ));
        v.push(OptionRow::black76(
            OptionKind::Put,
            59_000.0,
            60_000.0,
            0.5,
            0.0,
            1e-8,
        ));
        v
    }

    /// The f32 hedge Greeks of every row against the f64 scalar twin, per unit of underlying:
    /// |Δ| error ≤ 2e-6, |Γ| ≤ 2e-6·|Γ| + 1e-12, vega ≤ 2e-6·S·√τ, price ≤ 2e-6·S.
    fn assert_close(terms: &HedgeBook<f32>, rows: &[OptionRow]) {
        let mut out = HedgeColumns::for_book(terms);
        reprice_hedge::<WideF32>(terms, &mut out);
        for (i, r) in rows.iter().enumerate() {
            let want = price_row(r);
            let [price, delta, gamma, vega] = out.row(i);
            let scale = r.s * r.t.max(0.0).sqrt();
            let ok = (delta - want.delta).abs() <= 2e-6
                && (gamma - want.gamma).abs() <= 2e-6 * want.gamma.abs() + 1e-12
                && (vega - want.vega).abs() <= 2e-6 * scale.max(1.0)
                && (price - want.price).abs() <= 2e-6 * r.s;
            assert!(
                ok,
                "row {i} {r:?}: got {price} {delta} {gamma} {vega}, want {want:?}"
            );
        }
    }

    #[test]
    fn hedge_path_matches_the_f64_twin_through_moves_and_vol_changes() {
        let mut rows = rows();
        for (i, r) in rows.iter().enumerate() {
            validate(i, r).unwrap();
        }
        let mut inputs = BookInputs::<f64>::from_rows(&rows).unwrap();
        let mut terms = HedgeBook::<f32>::build(&inputs);
        assert_eq!(terms.len(), rows.len());
        assert_close(&terms, &rows);
        // The underlying moves 1.5 %: each row's log-move from its reference.
        let s_ref: Vec<f64> = rows.iter().map(|r| r.s).collect();
        for (i, r) in rows.iter_mut().enumerate() {
            r.s *= 1.015;
            terms.set_move(i..i + 1, r.s, (r.s / s_ref[i]).ln());
        }
        assert_close(&terms, &rows);
        // New vols on a few rows: their terms recomputed against the same reference.
        for i in [0usize, 5, 77, 150] {
            rows[i].sigma *= 1.3;
            let mut at_ref = rows[i];
            at_ref.s = s_ref[i];
            inputs.set_row(i, &at_ref).unwrap();
            terms.set_row(i, &inputs, s_ref[i]);
        }
        assert_close(&terms, &rows);
        // A rebuild at the new spots: references move, u back to 0.
        terms.rebuild(&BookInputs::<f64>::from_rows(&rows).unwrap());
        assert_close(&terms, &rows);
    }
}
