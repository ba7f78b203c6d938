use super::*;

const S: u64 = 1_000_000_000;
/// 2023-11-14 22:13:20 UTC.
const T0: u64 = 1_700_000_000 * S;

fn order(coin: f64) -> OrderCheck {
    OrderCheck {
        coin,
        notional_usd: coin.abs() * 100_000.0,
        position_coin: 0.0,
        exposure_coin: -coin,
    }
}

fn gate(limits: RiskLimits) -> (RiskGate, KillFlags) {
    let kill = KillFlags::new();
    (RiskGate::new(limits, kill.clone()).unwrap(), kill)
}

#[test]
fn each_limit_vetoes_with_its_value_and_bound() {
    let limits = RiskLimits {
        max_order_coin: 2.0,
        max_position_coin: 10.0,
        max_notional_per_min_usd: 1_000_000.0,
        max_hedges_per_min: 30,
        daily_loss_stop_usd: 50_000.0,
        max_consecutive_rejects: 5,
    };
    // (case, orders sent before in the same second (coin each), the order, expected display)
    struct Case {
        name: &'static str,
        sent_before: &'static [f64],
        order: OrderCheck,
        want: Option<&'static str>,
    }
    let cases = [
        Case {
            name: "within every limit",
            sent_before: &[],
            order: order(1.5),
            want: None,
        },
        Case {
            name: "order size",
            sent_before: &[],
            order: order(-2.5),
            want: Some("max_order_coin: 2.5 > 2"),
        },
        Case {
            name: "order size exactly at the limit passes",
            sent_before: &[],
            order: order(2.0),
            want: None,
        },
        Case {
            name: "position past the limit",
            sent_before: &[],
            order: OrderCheck {
                position_coin: 9.0,
                ..order(1.5)
            },
            want: Some("max_position_coin: 10.5 > 10"),
        },
        Case {
            name: "a position above the limit may shrink",
            sent_before: &[],
            order: OrderCheck {
                position_coin: 12.0,
                ..order(-1.5)
            },
            want: None,
        },
        Case {
            name: "a short position grown past the limit",
            sent_before: &[],
            order: OrderCheck {
                position_coin: -9.5,
                ..order(-1.0)
            },
            want: Some("max_position_coin: 10.5 > 10"),
        },
        Case {
            name: "the 31st hedge in a minute",
            sent_before: &[0.01; 30],
            order: order(0.01),
            want: Some("max_hedges_per_min: 31 > 30"),
        },
        Case {
            name: "the 30th hedge passes",
            sent_before: &[0.01; 29],
            order: order(0.01),
            want: None,
        },
        Case {
            name: "notional in a minute",
            sent_before: &[2.0, 2.0, 2.0, 2.0, 1.0],
            order: order(2.0),
            want: Some("max_notional_per_min_usd: 1100000 > 1000000"),
        },
        Case {
            name: "not a number",
            sent_before: &[],
            order: order(f64::NAN),
            want: Some("bad_order: coin = NaN"),
        },
        Case {
            name: "negative notional",
            sent_before: &[],
            order: OrderCheck {
                notional_usd: -1.0,
                ..order(1.0)
            },
            want: Some("bad_order: notional_usd = -1"),
        },
        Case {
            name: "infinite exposure",
            sent_before: &[],
            order: OrderCheck {
                exposure_coin: f64::INFINITY,
                ..order(1.0)
            },
            want: Some("bad_order: exposure_coin = inf"),
        },
    ];
    for c in &cases {
        let (mut g, _) = gate(limits);
        for &coin in c.sent_before {
            g.record_sent(&order(coin), T0);
        }
        let got = g.check(&c.order, T0 + S / 2);
        match (got, c.want) {
            (Ok(()), None) => {}
            (Err(v), Some(want)) => assert_eq!(v.to_string(), want, "{}", c.name),
            (got, want) => panic!("{}: got {got:?}, wanted {want:?}", c.name),
        }
        assert_eq!(g.counters().checks, 1);
    }
    // Notional exactly at the bound passes; past it, until the window has slid.
    let (mut g, _) = gate(limits);
    for _ in 0..4 {
        g.record_sent(&order(2.0), T0);
    }
    assert_eq!(g.check(&order(2.0), T0), Ok(()));
    g.record_sent(&order(2.0), T0);
    assert_eq!(g.minute_totals(T0), (5, 1_000_000.0));
    assert_eq!(
        g.check(&order(0.5), T0 + 59 * S).unwrap_err().to_string(),
        "max_notional_per_min_usd: 1050000 > 1000000"
    );
    assert_eq!(g.check(&order(0.5), T0 + 60 * S), Ok(()));
}

#[test]
fn rejected_orders_count_in_the_minute_and_a_streak_halts() {
    let limits = RiskLimits {
        max_hedges_per_min: 3,
        max_consecutive_rejects: 4,
        ..RiskLimits::default()
    };
    let (mut g, _) = gate(limits);
    let o = order(0.1);
    // A venue that rejects everything: three sends, then the minute limit holds.
    for i in 0..3 {
        assert_eq!(g.check(&o, T0 + i), Ok(()));
        g.record_sent(&o, T0 + i);
        g.record_outcome(FillStatus::Rejected, T0 + i);
    }
    let v = g.check(&o, T0 + 10).unwrap_err();
    assert_eq!(v.to_string(), "max_hedges_per_min: 4 > 3");
    assert_eq!(g.state(), RiskState::Active);
    assert_eq!(g.reject_streak(), 3);
    // A fill ends the streak; then four rejections (one never arrived) in a row halt.
    g.record_outcome(FillStatus::Filled, T0 + 61 * S);
    assert_eq!(g.reject_streak(), 0);
    for (i, s) in [
        FillStatus::Rejected,
        FillStatus::NotFound,
        FillStatus::Rejected,
    ]
    .into_iter()
    .enumerate()
    {
        g.record_outcome(s, T0 + 62 * S + i as u64);
        assert_eq!(g.state(), RiskState::Active);
    }
    g.record_outcome(FillStatus::Rejected, T0 + 63 * S);
    assert_eq!(g.state(), RiskState::Halted);
    let t = g.last_transition().unwrap();
    assert_eq!(
        (t.from, t.to, t.reason, t.at_ns),
        (
            RiskState::Active,
            RiskState::Halted,
            HaltReason::VenueRejects,
            T0 + 63 * S
        )
    );
    assert!(g.take_cancel_all());
    assert!(!g.take_cancel_all());
    assert_eq!(
        g.check(&o, T0 + 200 * S).unwrap_err().to_string(),
        "halted: venue_rejects"
    );
    let c = g.counters();
    assert_eq!((c.sent, c.rejects, c.fills), (3, 7, 1));
    assert_eq!(c.vetoes[Limit::MaxHedgesPerMin.index()], 1);
    assert_eq!(c.vetoes[Limit::Halted(HaltReason::Operator).index()], 1);
}

#[test]
fn reducing_allows_only_orders_that_reduce_the_exposure() {
    let (mut g, _) = gate(RiskLimits {
        daily_loss_stop_usd: 10_000.0,
        ..RiskLimits::default()
    });
    g.record_pnl(-10_000.5, T0);
    assert_eq!(g.state(), RiskState::Reducing);
    // (order coin, exposure coin, passes, display)
    let table: &[(f64, f64, Option<&str>)] = &[
        (-1.0, 2.5, None),
        (-2.5, 2.5, None),
        (-3.0, 2.5, Some("reduce_only: 3 > 2.5")),
        (1.0, 2.5, Some("reduce_only: 1 > 0")),
        (1.0, -1.5, None),
        (1.0, 0.0, Some("reduce_only: 1 > 0")),
    ];
    for &(coin, exposure, want) in table {
        let o = OrderCheck {
            exposure_coin: exposure,
            ..order(coin)
        };
        match (g.check(&o, T0 + S), want) {
            (Ok(()), None) => {}
            (Err(v), Some(w)) => assert_eq!(v.to_string(), w),
            (got, w) => panic!("{coin} against {exposure}: {got:?}, wanted {w:?}"),
        }
    }
    // No cancel-all for REDUCING.
    assert!(!g.take_cancel_all());
}

#[test]
fn daily_loss_stop_rolls_at_midnight_utc() {
    // 2023-11-14 00:00 UTC.
    let day0 = T0 / NS_PER_DAY * NS_PER_DAY;
    let (mut g, _) = gate(RiskLimits {
        daily_loss_stop_usd: 1_000.0,
        ..RiskLimits::default()
    });
    // (time, cumulative P&L, state after, daily P&L after)
    let table: &[(u64, f64, RiskState, f64)] = &[
        (day0 + 3_600 * S, 500.0, RiskState::Active, 500.0),
        (day0 + 7_200 * S, -400.0, RiskState::Active, -400.0),
        // A loss of exactly the stop does not trigger; past it does.
        (day0 + 7_300 * S, -1_000.0, RiskState::Active, -1_000.0),
        (day0 + 7_400 * S, -1_000.01, RiskState::Reducing, -1_000.01),
        // A recovery within the day does not lift the stop.
        (day0 + 8_000 * S, 0.0, RiskState::Reducing, 0.0),
        (day0 + 86_399 * S, -1_200.0, RiskState::Reducing, -1_200.0),
        // 00:00 UTC: the day starts from the last P&L of the previous one (-1200).
        (day0 + 86_400 * S, -1_500.0, RiskState::Active, -300.0),
        (day0 + 90_000 * S, -2_200.5, RiskState::Reducing, -1_000.5),
        // A NaN P&L is ignored.
        (day0 + 90_001 * S, f64::NAN, RiskState::Reducing, -1_000.5),
    ];
    for (i, &(t, pnl, state, daily)) in table.iter().enumerate() {
        g.record_pnl(pnl, t);
        assert_eq!(g.state(), state, "row {i}");
        assert!(
            (g.daily_pnl() - daily).abs() < 1e-9,
            "row {i}: {}",
            g.daily_pnl()
        );
    }
    assert_eq!(g.counters().bad_pnl, 1);
    // The roll also happens on a poll with no new P&L.
    g.poll(day0 + 2 * 86_400 * S);
    let t = g.last_transition().unwrap();
    assert_eq!(
        (t.from, t.to, t.reason),
        (
            RiskState::Reducing,
            RiskState::Active,
            HaltReason::DayRolled
        )
    );
    assert_eq!(g.daily_pnl(), 0.0);
    // A clock stepped back never rolls a day back.
    g.record_pnl(-2_300.0, day0 + 86_400 * S);
    assert!((g.daily_pnl() + 99.5).abs() < 1e-9);
    assert_eq!(g.state(), RiskState::Active);
}

#[test]
fn transitions_table() {
    type Step = fn(&mut RiskGate, &KillFlags, u64);
    type Row = (
        &'static str,
        &'static [Step],
        RiskState,
        Option<HaltReason>,
        bool,
    );
    // (name, steps from ACTIVE, state after, last reason, cancel-all pending)
    let table: &[Row] = &[
        ("fresh gate", &[], RiskState::Active, None, false),
        (
            "kill file",
            &[|_, k, _| k.set_file(true)],
            RiskState::Halted,
            Some(HaltReason::KillFile),
            true,
        ),
        (
            "signal",
            &[|_, k, _| k.raise_signal()],
            RiskState::Halted,
            Some(HaltReason::Signal),
            true,
        ),
        (
            "operator",
            &[|g, _, t| g.halt(t)],
            RiskState::Halted,
            Some(HaltReason::Operator),
            true,
        ),
        (
            "daily loss",
            &[|g, _, t| g.record_pnl(-2.0, t)],
            RiskState::Reducing,
            Some(HaltReason::DailyLoss),
            false,
        ),
        (
            "reducing then kill file",
            &[|g, _, t| g.record_pnl(-2.0, t), |_, k, _| k.set_file(true)],
            RiskState::Halted,
            Some(HaltReason::KillFile),
            true,
        ),
        (
            "halted ignores the daily loss",
            &[|g, _, t| g.halt(t), |g, _, t| g.record_pnl(-2.0, t)],
            RiskState::Halted,
            Some(HaltReason::Operator),
            true,
        ),
        (
            "reducing resumed",
            &[
                |g, _, t| g.record_pnl(-2.0, t),
                |g, _, t| g.resume(t).unwrap(),
            ],
            RiskState::Active,
            Some(HaltReason::Resumed),
            false,
        ),
        (
            "signal resumed (acknowledged)",
            &[|_, k, _| k.raise_signal(), |g, _, t| g.resume(t).unwrap()],
            RiskState::Active,
            Some(HaltReason::Resumed),
            true,
        ),
        (
            "kill file removed: still halted",
            &[|_, k, _| k.set_file(true), |_, k, _| k.set_file(false)],
            RiskState::Halted,
            Some(HaltReason::KillFile),
            true,
        ),
        (
            "kill file removed, then resumed",
            &[
                |_, k, _| k.set_file(true),
                |_, k, _| k.set_file(false),
                |g, _, t| g.resume(t).unwrap(),
            ],
            RiskState::Active,
            Some(HaltReason::Resumed),
            true,
        ),
        (
            "resume refused while the kill file exists",
            &[
                |_, k, _| k.set_file(true),
                |g, _, t| {
                    assert_eq!(g.resume(t), Err(ResumeRefused::KillFilePresent));
                },
            ],
            RiskState::Halted,
            Some(HaltReason::KillFile),
            true,
        ),
    ];
    let limits = RiskLimits {
        daily_loss_stop_usd: 1.0,
        ..RiskLimits::default()
    };
    for &(name, steps, state, reason, cancel) in table {
        let (mut g, k) = gate(limits);
        for (i, step) in steps.iter().enumerate() {
            let t = T0 + i as u64 * S;
            step(&mut g, &k, t);
            g.poll(t);
        }
        assert_eq!(g.state(), state, "{name}");
        assert_eq!(g.last_transition().map(|t| t.reason), reason, "{name}");
        assert_eq!(g.take_cancel_all(), cancel, "{name}");
        assert!(!g.take_cancel_all(), "{name}: cancel-all once");
        let allowed = g.check(&order(0.1), T0 + 100 * S).is_ok();
        // A reducing gate passes this order: it reduces the exposure.
        assert_eq!(allowed, state != RiskState::Halted, "{name}");
    }
}

#[test]
fn a_halt_is_seen_by_check_without_a_poll_and_reentry_cancels_again() {
    let (mut g, k) = gate(RiskLimits::default());
    k.raise_signal();
    assert_eq!(
        g.check(&order(0.1), T0).unwrap_err().to_string(),
        "halted: signal"
    );
    assert!(g.take_cancel_all());
    g.resume(T0 + S).unwrap();
    assert_eq!(k.requested(), None);
    g.halt(T0 + 2 * S);
    assert!(g.take_cancel_all());
    assert_eq!(g.counters().transitions, 3);
}

#[test]
fn limits_are_validated() {
    let ok = RiskLimits::default();
    assert!(ok.validate().is_ok());
    for (bad, name) in [
        (
            RiskLimits {
                max_order_coin: 0.0,
                ..ok
            },
            "max_order_coin",
        ),
        (
            RiskLimits {
                max_position_coin: f64::NAN,
                ..ok
            },
            "max_position_coin",
        ),
        (
            RiskLimits {
                max_notional_per_min_usd: -1.0,
                ..ok
            },
            "max_notional_per_min_usd",
        ),
        (
            RiskLimits {
                daily_loss_stop_usd: 0.0,
                ..ok
            },
            "daily_loss_stop_usd",
        ),
        (
            RiskLimits {
                max_hedges_per_min: 0,
                ..ok
            },
            "max_hedges_per_min",
        ),
        (
            RiskLimits {
                max_consecutive_rejects: 0,
                ..ok
            },
            "max_consecutive_rejects",
        ),
    ] {
        match RiskGate::new(bad, KillFlags::new()) {
            Err(RiskConfigError::NotPositive { name: n, .. }) => assert_eq!(n, name),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn messages_are_small_and_copy() {
    fn is_copy<T: Copy>() {}
    is_copy::<Veto>();
    is_copy::<OrderCheck>();
    is_copy::<GuardFault>();
    is_copy::<Transition>();
    assert!(core::mem::size_of::<Veto>() <= 40);
    assert!(core::mem::size_of::<GuardFault>() <= 32);
}
