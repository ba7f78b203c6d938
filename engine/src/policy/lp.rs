//! A small dense linear-programme solver for hedge construction: minimise `c·x` subject to
//! `A x ≤ b` and `x ≥ 0`, for at most [`MAX_VARS`] variables and [`MAX_ROWS`] rows.
//!
//! Two-phase simplex on a full tableau with Bland's rule (no cycling), artificial variables only
//! for rows whose right-hand side is negative. Sized for the gamma/vega/bucket-vega solve (a dozen
//! candidate options bought or sold, a dozen band rows); a general-purpose LP crate would be the
//! choice beyond that. The tableau lives in an [`LpWorkspace`] the caller allocates once at
//! start-up: solving never allocates. Deterministic: the same problem gives the same answer.

/// Variables at most.
pub const MAX_VARS: usize = 32;
/// Constraint rows at most.
pub const MAX_ROWS: usize = 48;
const COLS: usize = MAX_VARS + 2 * MAX_ROWS + 1;
const EPS: f64 = 1e-9;
const MAX_PIVOTS: usize = 2_000;

/// How a solve ended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LpStatus {
    /// Optimal, with this objective value.
    Optimal(f64),
    /// No `x` satisfies the constraints.
    Infeasible,
    /// The objective decreases without bound.
    Unbounded,
    /// The problem is larger than the workspace, or the pivot budget ran out.
    TooLarge,
}

/// The problem and the tableau, allocated once (about 60 KB).
pub struct LpWorkspace {
    n: usize,
    m: usize,
    a: Box<[[f64; MAX_VARS]; MAX_ROWS]>,
    b: [f64; MAX_ROWS],
    c: [f64; MAX_VARS],
    t: Box<[[f64; COLS]; MAX_ROWS + 1]>,
    basis: [usize; MAX_ROWS],
}

impl std::fmt::Debug for LpWorkspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LpWorkspace")
            .field("n", &self.n)
            .field("m", &self.m)
            .finish()
    }
}

impl Default for LpWorkspace {
    fn default() -> Self {
        Self::new()
    }
}

impl LpWorkspace {
    /// An empty workspace (the only allocation).
    pub fn new() -> Self {
        Self {
            n: 0,
            m: 0,
            a: Box::new([[0.0; MAX_VARS]; MAX_ROWS]),
            b: [0.0; MAX_ROWS],
            c: [0.0; MAX_VARS],
            t: Box::new([[0.0; COLS]; MAX_ROWS + 1]),
            basis: [0; MAX_ROWS],
        }
    }

    /// Starts a problem with `n` variables (objective all zero, no rows). False if `n` is too
    /// large.
    pub fn reset(&mut self, n: usize) -> bool {
        if n > MAX_VARS {
            return false;
        }
        self.n = n;
        self.m = 0;
        self.c = [0.0; MAX_VARS];
        true
    }

    /// Sets the objective coefficient of variable `j`.
    pub fn cost(&mut self, j: usize, c: f64) {
        self.c[j] = c;
    }

    /// Adds the row `Σ coef[j]·x[j] ≤ rhs` (`coef` has one entry per variable). False if the
    /// workspace is full.
    pub fn le(&mut self, coef: &[f64], rhs: f64) -> bool {
        if self.m >= MAX_ROWS {
            return false;
        }
        let row = &mut self.a[self.m];
        *row = [0.0; MAX_VARS];
        row[..self.n].copy_from_slice(&coef[..self.n]);
        self.b[self.m] = rhs;
        self.m += 1;
        true
    }

    /// Adds `lo ≤ Σ coef[j]·x[j] ≤ hi` as two rows (an infinite side is left out).
    pub fn between(&mut self, coef: &[f64], lo: f64, hi: f64) -> bool {
        let mut ok = true;
        if hi.is_finite() {
            ok &= self.le(coef, hi);
        }
        if lo.is_finite() {
            let mut neg = [0.0; MAX_VARS];
            for (d, s) in neg.iter_mut().zip(&coef[..self.n]) {
                *d = -s;
            }
            ok &= self.le(&neg, -lo);
        }
        ok
    }

    /// Solves; on [`LpStatus::Optimal`] writes the solution into `x[..n]`.
    pub fn solve(&mut self, x: &mut [f64]) -> LpStatus {
        let (n, m) = (self.n, self.m);
        if x.len() < n {
            return LpStatus::TooLarge;
        }
        // Columns: structural 0..n, slack n..n+m, artificial n+m..n+2m, rhs last.
        let rhs = COLS - 1;
        let art0 = n + m;
        for r in self.t.iter_mut().take(m + 1) {
            r.fill(0.0);
        }
        let mut any_art = false;
        for i in 0..m {
            let sign = if self.b[i] < 0.0 { -1.0 } else { 1.0 };
            let row = &mut self.t[i];
            for (d, a) in row[..n].iter_mut().zip(&self.a[i][..n]) {
                *d = sign * a;
            }
            row[n + i] = sign;
            row[rhs] = sign * self.b[i];
            if sign < 0.0 {
                row[art0 + i] = 1.0;
                self.basis[i] = art0 + i;
                any_art = true;
            } else {
                self.basis[i] = n + i;
            }
        }
        let limit = art0 + m;
        if any_art {
            // Phase 1: minimise the sum of the artificials.
            for i in 0..m {
                if self.basis[i] >= art0 {
                    for j in 0..=rhs {
                        let v = self.t[i][j];
                        self.t[m][j] -= v;
                    }
                    self.t[m][self.basis[i]] = 0.0;
                }
            }
            match self.iterate(limit) {
                Ok(()) => {}
                Err(s) => return s,
            }
            if -self.t[m][rhs] > 1e-7 * (1.0 + self.b[..m].iter().map(|b| b.abs()).sum::<f64>()) {
                return LpStatus::Infeasible;
            }
            // Drive artificials at level zero out of the basis where possible.
            for i in 0..m {
                if self.basis[i] >= art0
                    && let Some(j) = (0..art0).find(|&j| self.t[i][j].abs() > EPS)
                {
                    self.pivot(i, j);
                }
            }
        }
        // Phase 2: the real objective, artificials barred.
        self.t[m].fill(0.0);
        self.t[m][..n].copy_from_slice(&self.c[..n]);
        for i in 0..m {
            let bj = self.basis[i];
            let cb = if bj < n { self.c[bj] } else { 0.0 };
            if cb != 0.0 {
                for j in 0..=rhs {
                    let v = self.t[i][j];
                    self.t[m][j] -= cb * v;
                }
            }
        }
        if let Err(s) = self.iterate(art0) {
            return s;
        }
        x[..n].fill(0.0);
        for i in 0..m {
            if self.basis[i] < n {
                x[self.basis[i]] = self.t[i][rhs].max(0.0);
            }
        }
        LpStatus::Optimal(-self.t[m][rhs])
    }

    /// Pivots until no column below `limit` has a negative reduced cost (Bland's rule).
    fn iterate(&mut self, limit: usize) -> Result<(), LpStatus> {
        let m = self.m;
        let rhs = COLS - 1;
        for _ in 0..MAX_PIVOTS {
            let Some(e) = (0..limit).find(|&j| self.t[m][j] < -EPS) else {
                return Ok(());
            };
            let mut leave: Option<(usize, f64)> = None;
            for i in 0..m {
                let a = self.t[i][e];
                if a > EPS {
                    let ratio = self.t[i][rhs] / a;
                    let better = match leave {
                        None => true,
                        Some((l, r)) => {
                            ratio < r - EPS || (ratio <= r + EPS && self.basis[i] < self.basis[l])
                        }
                    };
                    if better {
                        leave = Some((i, ratio));
                    }
                }
            }
            let Some((l, _)) = leave else {
                return Err(LpStatus::Unbounded);
            };
            self.pivot(l, e);
        }
        Err(LpStatus::TooLarge)
    }

    fn pivot(&mut self, row: usize, col: usize) {
        let m = self.m;
        let p = self.t[row][col];
        for v in self.t[row].iter_mut() {
            *v /= p;
        }
        let pr = self.t[row];
        for i in 0..=m {
            if i != row {
                let f = self.t[i][col];
                if f != 0.0 {
                    for (v, q) in self.t[i].iter_mut().zip(pr.iter()) {
                        *v -= f * q;
                    }
                }
            }
        }
        self.basis[row] = col;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_textbook_problem() {
        // max 3x + 5y s.t. x ≤ 4, 2y ≤ 12, 3x + 2y ≤ 18 → (2, 6), 36.
        let mut w = LpWorkspace::new();
        w.reset(2);
        w.cost(0, -3.0);
        w.cost(1, -5.0);
        w.le(&[1.0, 0.0], 4.0);
        w.le(&[0.0, 2.0], 12.0);
        w.le(&[3.0, 2.0], 18.0);
        let mut x = [0.0; 2];
        assert_eq!(w.solve(&mut x), LpStatus::Optimal(-36.0));
        assert!((x[0] - 2.0).abs() < 1e-12 && (x[1] - 6.0).abs() < 1e-12);
    }

    #[test]
    fn lower_bounds_need_phase_one_and_infeasibility_is_reported() {
        // min x + y s.t. x + y ≥ 2, x − y ≤ 1, y ≤ 5 → 2.
        let mut w = LpWorkspace::new();
        w.reset(2);
        w.cost(0, 1.0);
        w.cost(1, 1.0);
        w.between(&[1.0, 1.0], 2.0, f64::INFINITY);
        w.le(&[1.0, -1.0], 1.0);
        w.le(&[0.0, 1.0], 5.0);
        let mut x = [0.0; 2];
        match w.solve(&mut x) {
            LpStatus::Optimal(v) => assert!((v - 2.0).abs() < 1e-12),
            s => panic!("{s:?}"),
        }
        assert!((x[0] + x[1] - 2.0).abs() < 1e-12);
        // x ≥ 3 and x ≤ 1.
        w.reset(1);
        w.between(&[1.0], 3.0, f64::INFINITY);
        w.le(&[1.0], 1.0);
        assert_eq!(w.solve(&mut x), LpStatus::Infeasible);
        // min −x, x unbounded above.
        w.reset(1);
        w.cost(0, -1.0);
        w.between(&[1.0], 1.0, f64::INFINITY);
        assert_eq!(w.solve(&mut x), LpStatus::Unbounded);
    }

    /// Brute force over vertices for random small problems: the simplex optimum matches the
    /// best feasible vertex (every vertex is the solution of n tight rows).
    #[test]
    fn random_problems_match_vertex_enumeration() {
        let mut rng = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        };
        let mut w = LpWorkspace::new();
        for _ in 0..300 {
            let n = 2;
            let m = 4;
            let mut rows = vec![];
            for _ in 0..m {
                rows.push(([next(), next()], next() * 2.0));
            }
            // Keep it bounded: x, y ≤ 3.
            rows.push(([1.0, 0.0], 3.0));
            rows.push(([0.0, 1.0], 3.0));
            rows.push(([-1.0, 0.0], 0.0));
            rows.push(([0.0, -1.0], 0.0));
            let c = [next(), next()];
            w.reset(n);
            w.cost(0, c[0]);
            w.cost(1, c[1]);
            for (a, b) in &rows[..m + 2] {
                w.le(a, *b);
            }
            let mut x = [0.0; 2];
            let got = w.solve(&mut x);
            let mut best: Option<f64> = None;
            for i in 0..rows.len() {
                for j in i + 1..rows.len() {
                    let ((a, b1), (bb, b2)) = (rows[i], rows[j]);
                    let det = a[0] * bb[1] - a[1] * bb[0];
                    if det.abs() < 1e-9 {
                        continue;
                    }
                    let p = [
                        (b1 * bb[1] - a[1] * b2) / det,
                        (a[0] * b2 - b1 * bb[0]) / det,
                    ];
                    if rows
                        .iter()
                        .all(|(r, b)| r[0] * p[0] + r[1] * p[1] <= b + 1e-9)
                    {
                        let v = c[0] * p[0] + c[1] * p[1];
                        best = Some(best.map_or(v, |b: f64| b.min(v)));
                    }
                }
            }
            match (got, best) {
                (LpStatus::Optimal(v), Some(b)) => {
                    assert!((v - b).abs() < 1e-7, "{v} vs {b}");
                    assert!(
                        rows.iter()
                            .all(|(r, b)| r[0] * x[0] + r[1] * x[1] <= b + 1e-7)
                    );
                }
                (LpStatus::Infeasible, None) => {}
                other => panic!("{other:?}"),
            }
        }
    }
}
