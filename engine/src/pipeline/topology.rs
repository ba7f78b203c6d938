//! The shape of the pipeline as chosen on the command line: dedicated or fused stage threads
//! (`--topology`), the core of each stage (`--pin feed=2,pricer=3,exec=4`) and each stage's
//! wait strategy (`--wait spin` or `--wait feed=spin,pricer=park`).
//!
//! Owns parsing and validation only; start-up code, never on the hot path. Must never fall back
//! silently: every bad value is an error naming the part that is wrong.

use super::PipelineError;
use super::wait::WaitStrategy;
use std::str::FromStr;

/// How stages map onto threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    /// One thread per stage (feed, pricer, exec, telemetry), each on its own core.
    Dedicated,
    /// Feed and pricer share one thread (for machines with few cores: tests, CI, laptops).
    Fused,
    /// Feed, pricer and exec share one thread: no ring hop to another thread between a
    /// decision and its socket write (for 2-core machines, where a third busy thread has no
    /// core of its own).
    Single,
}

impl Topology {
    pub const ALL: [Topology; 3] = [Self::Dedicated, Self::Fused, Self::Single];

    /// The CLI spelling: `dedicated`, `fused` or `single`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Dedicated => "dedicated",
            Self::Fused => "fused",
            Self::Single => "single",
        }
    }

    /// The topology for a machine with `cores` usable cores: fused below 4 (a dedicated
    /// pipeline wants feed, pricer and exec on their own cores plus one for everything else).
    pub fn default_for(cores: usize) -> Topology {
        if cores < 4 {
            Self::Fused
        } else {
            Self::Dedicated
        }
    }
}

impl std::fmt::Display for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Topology {
    type Err = PipelineError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Self::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| PipelineError::UnknownTopology(s.to_string()))
    }
}

/// The ids of the cores this process may run on (empty if the OS does not say).
pub fn available_cores() -> Vec<usize> {
    core_affinity::get_core_ids()
        .map(|ids| ids.into_iter().map(|c| c.id).collect())
        .unwrap_or_default()
}

/// The stages a pin map or wait map may name, in this order.
pub const STAGES: [&str; 4] = ["feed", "pricer", "exec", "telemetry"];

/// Splits `feed=2,pricer=3` into (stage index, value) pairs, rejecting empty input, parts
/// without `=`, unknown stages and repeated stages; `bad` wraps a reason into the map's error.
fn stage_pairs(
    input: &str,
    bad: impl Fn(String) -> PipelineError,
) -> Result<Vec<(usize, &str)>, PipelineError> {
    if input.trim().is_empty() {
        return Err(bad(
            "empty; expected stage=value pairs like feed=2,pricer=3".into(),
        ));
    }
    let mut seen = [false; STAGES.len()];
    let mut out = Vec::new();
    for part in input.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err(bad(
                "empty part (two commas in a row, or a trailing comma)".into()
            ));
        }
        let Some((stage, value)) = part.split_once('=') else {
            return Err(bad(format!("{part:?} is not stage=value")));
        };
        let (stage, value) = (stage.trim(), value.trim());
        let Some(i) = STAGES.iter().position(|s| *s == stage) else {
            return Err(bad(format!(
                "unknown stage {stage:?} in {part:?}; stages: {}",
                STAGES.join(", ")
            )));
        };
        if seen[i] {
            return Err(bad(format!("stage {stage:?} given twice")));
        }
        seen[i] = true;
        out.push((i, value));
    }
    Ok(out)
}

/// The core of each stage (`--pin`); a stage without a core runs unpinned. Two stages may
/// name the same core (e.g. telemetry beside exec): that is allowed, not checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PinMap {
    pub feed: Option<usize>,
    pub pricer: Option<usize>,
    pub exec: Option<usize>,
    pub telemetry: Option<usize>,
}

impl PinMap {
    fn slot(&mut self, stage: usize) -> &mut Option<usize> {
        match stage {
            0 => &mut self.feed,
            1 => &mut self.pricer,
            2 => &mut self.exec,
            _ => &mut self.telemetry,
        }
    }

    /// (stage name, core) for every pinned stage, in [`STAGES`] order.
    pub fn entries(&self) -> impl Iterator<Item = (&'static str, usize)> + '_ {
        [self.feed, self.pricer, self.exec, self.telemetry]
            .into_iter()
            .zip(STAGES)
            .filter_map(|(core, stage)| core.map(|c| (stage, c)))
    }

    /// Checks every named core is one of `available` (see [`available_cores`]).
    pub fn validate(&self, available: &[usize]) -> Result<(), PipelineError> {
        for (stage, core) in self.entries() {
            if !available.contains(&core) {
                return Err(PipelineError::CoreUnavailable {
                    stage,
                    core,
                    available: if available.is_empty() {
                        "none reported".to_string()
                    } else {
                        available
                            .iter()
                            .map(|c| c.to_string())
                            .collect::<Vec<_>>()
                            .join(",")
                    },
                });
            }
        }
        Ok(())
    }
}

impl FromStr for PinMap {
    type Err = PipelineError;

    /// `feed=2,pricer=3,exec=4` (any subset of feed, pricer, exec, telemetry).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason| PipelineError::BadPinMap {
            input: s.to_string(),
            reason,
        };
        let mut map = PinMap::default();
        for (stage, value) in stage_pairs(s, bad)? {
            let core = value.parse::<usize>().map_err(|_| {
                bad(format!(
                    "core {value:?} of stage {} is not a number",
                    STAGES[stage]
                ))
            })?;
            *map.slot(stage) = Some(core);
        }
        Ok(map)
    }
}

/// The wait strategy of each stage (`--wait`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitMap {
    pub feed: WaitStrategy,
    pub pricer: WaitStrategy,
    pub exec: WaitStrategy,
    pub telemetry: WaitStrategy,
}

impl WaitMap {
    /// The same strategy for every stage.
    pub fn all(w: WaitStrategy) -> Self {
        Self {
            feed: w,
            pricer: w,
            exec: w,
            telemetry: w,
        }
    }

    fn slot(&mut self, stage: usize) -> &mut WaitStrategy {
        match stage {
            0 => &mut self.feed,
            1 => &mut self.pricer,
            2 => &mut self.exec,
            _ => &mut self.telemetry,
        }
    }
}

impl Default for WaitMap {
    /// `spin-yield` for feed, pricer and exec (low latency without starving a 2-core machine),
    /// `park` for telemetry (off the hot path).
    fn default() -> Self {
        Self {
            feed: WaitStrategy::SpinYield,
            pricer: WaitStrategy::SpinYield,
            exec: WaitStrategy::SpinYield,
            telemetry: WaitStrategy::Park,
        }
    }
}

impl FromStr for WaitMap {
    type Err = PipelineError;

    /// Either one strategy for every stage (`spin`), or per stage (`feed=spin,pricer=park`),
    /// the stages not named keeping [`WaitMap::default`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason| PipelineError::BadWaitMap {
            input: s.to_string(),
            reason,
        };
        if !s.contains('=') && !s.contains(',') && !s.trim().is_empty() {
            return s
                .parse::<WaitStrategy>()
                .map(WaitMap::all)
                .map_err(|e| bad(e.to_string()));
        }
        let mut map = WaitMap::default();
        for (stage, value) in stage_pairs(s, bad)? {
            let w = value
                .parse::<WaitStrategy>()
                .map_err(|e| bad(format!("stage {}: {e}", STAGES[stage])))?;
            *map.slot(stage) = w;
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topology_names_and_defaults() {
        for t in Topology::ALL {
            assert_eq!(t.name().parse::<Topology>().unwrap(), t);
        }
        let e = "mesh".parse::<Topology>().unwrap_err().to_string();
        assert!(
            e.contains("\"mesh\"") && e.contains("dedicated, fused"),
            "{e}"
        );
        assert_eq!(Topology::default_for(1), Topology::Fused);
        assert_eq!(Topology::default_for(2), Topology::Fused);
        assert_eq!(Topology::default_for(3), Topology::Fused);
        assert_eq!(Topology::default_for(4), Topology::Dedicated);
        assert_eq!(Topology::default_for(64), Topology::Dedicated);
    }

    #[test]
    fn pin_map_parses() {
        let m: PinMap = "feed=2,pricer=3,exec=4".parse().unwrap();
        assert_eq!(
            m,
            PinMap {
                feed: Some(2),
                pricer: Some(3),
                exec: Some(4),
                telemetry: None
            }
        );
        let m: PinMap = " telemetry = 0 , feed=1 ".parse().unwrap();
        assert_eq!(m.telemetry, Some(0));
        assert_eq!(m.feed, Some(1));
        assert_eq!(
            m.entries().collect::<Vec<_>>(),
            [("feed", 1), ("telemetry", 0)]
        );
    }

    #[test]
    fn pin_map_errors_name_the_bad_part() {
        let cases = [
            ("", "empty"),
            ("  ", "empty"),
            ("feed=2,,exec=4", "empty part"),
            ("feed=2,", "empty part"),
            ("feed", "\"feed\" is not stage=value"),
            ("risk=1", "unknown stage \"risk\""),
            ("feed=two", "core \"two\" of stage feed is not a number"),
            ("feed=-1", "core \"-1\" of stage feed is not a number"),
            ("feed=1,pricer=2,feed=3", "stage \"feed\" given twice"),
        ];
        for (input, want) in cases {
            let e = input.parse::<PinMap>().unwrap_err();
            let msg = e.to_string();
            assert!(
                matches!(e, PipelineError::BadPinMap { .. }),
                "{input}: {e:?}"
            );
            assert!(msg.contains(want), "{input:?}: {msg}");
            assert!(msg.contains(&format!("{input:?}")), "{input:?}: {msg}");
        }
    }

    #[test]
    fn pin_map_validates_against_the_machine() {
        let m: PinMap = "feed=0,pricer=1,exec=7".parse().unwrap();
        let e = m.validate(&[0, 1]).unwrap_err().to_string();
        assert!(
            e.contains("exec=7") && e.contains("core 7") && e.contains("0,1"),
            "{e}"
        );
        "feed=0,pricer=1"
            .parse::<PinMap>()
            .unwrap()
            .validate(&[0, 1])
            .unwrap();
        PinMap::default().validate(&[]).unwrap();
        let e = m.validate(&[]).unwrap_err().to_string();
        assert!(e.contains("none reported"), "{e}");
    }

    #[test]
    fn wait_map_one_for_all_or_per_stage() {
        assert_eq!(
            "spin".parse::<WaitMap>().unwrap(),
            WaitMap::all(WaitStrategy::Spin)
        );
        let m: WaitMap = "feed=spin,pricer=park".parse().unwrap();
        assert_eq!(m.feed, WaitStrategy::Spin);
        assert_eq!(m.pricer, WaitStrategy::Park);
        assert_eq!(m.exec, WaitStrategy::SpinYield);
        assert_eq!(m.telemetry, WaitStrategy::Park);
        let d = WaitMap::default();
        assert_eq!(
            (d.feed, d.pricer, d.exec, d.telemetry),
            (
                WaitStrategy::SpinYield,
                WaitStrategy::SpinYield,
                WaitStrategy::SpinYield,
                WaitStrategy::Park
            )
        );
    }

    #[test]
    fn wait_map_errors_name_the_bad_part() {
        let cases = [
            ("", "empty"),
            ("busy", "unknown wait strategy \"busy\""),
            ("feed=busy", "stage feed: unknown wait strategy \"busy\""),
            ("feed=spin,feed=park", "given twice"),
            ("risk=spin", "unknown stage \"risk\""),
            ("feed=spin,", "empty part"),
        ];
        for (input, want) in cases {
            let e = input.parse::<WaitMap>().unwrap_err();
            assert!(
                matches!(e, PipelineError::BadWaitMap { .. }),
                "{input}: {e:?}"
            );
            let msg = e.to_string();
            assert!(msg.contains(want), "{input:?}: {msg}");
        }
    }

    #[test]
    fn available_cores_is_callable() {
        // Whatever the machine reports; on Linux at least one core.
        let cores = available_cores();
        if cfg!(all(target_os = "linux", not(miri))) {
            assert!(!cores.is_empty());
        }
    }
}
