//! The one alert lifecycle: what each alert's state is (its severity, and since when
//! it fires) and what changed at each evaluation. The dispatcher turns its changes
//! into events for receivers, logs, the API and the demo's console; `backtest` reads
//! a replay's transitions from it too.

use std::collections::HashMap;
use std::hash::Hash;

use crate::model::Severity;
use crate::vocab::TimestampMs;

/// What happened to an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// It began firing.
    Fired,
    /// Its severity rose (warning → critical).
    Escalated,
    /// Its severity fell (critical → warning) while still firing.
    Deescalated,
    /// A periodic re-send of a firing or recently resolved alert (Alertmanager only).
    Resent,
    /// It stopped firing, or its container went away.
    Resolved,
    /// An OOM kill happened, attributed to the container that was at its limit.
    OomKill,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Fired => "fired",
            EventKind::Escalated => "escalated",
            EventKind::Deescalated => "deescalated",
            EventKind::Resent => "resent",
            EventKind::Resolved => "resolved",
            EventKind::OomKill => "oom_kill",
        }
    }
}

/// A firing alert's state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Firing {
    pub severity: Severity,
    /// When it began firing (ms).
    pub since: TimestampMs,
}

/// One transition of one alert.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Change {
    pub kind: EventKind,
    /// The severity before: `None` when it just began firing.
    pub previous: Option<Severity>,
    /// When the alert began firing (ms): `now` when it just did.
    pub since: TimestampMs,
}

/// Every alert's state, by key.
#[derive(Debug, Clone)]
pub struct Lifecycle<K> {
    firing: HashMap<K, Firing>,
}

impl<K> Default for Lifecycle<K> {
    fn default() -> Self {
        Lifecycle {
            firing: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + Clone> Lifecycle<K> {
    /// Folds in one evaluation's alert (`None`: not firing) at `now`; returns what
    /// changed, or `None` when nothing did.
    pub fn observe(
        &mut self,
        key: &K,
        alert: Option<Severity>,
        now: TimestampMs,
    ) -> Option<Change> {
        let before = self.firing.get(key).copied();
        let kind = match (before.map(|f| f.severity), alert) {
            (None, None) => return None,
            (None, Some(_)) => EventKind::Fired,
            (Some(b), Some(a)) if a > b => EventKind::Escalated,
            (Some(b), Some(a)) if a < b => EventKind::Deescalated,
            (Some(_), Some(_)) => return None,
            (Some(_), None) => EventKind::Resolved,
        };
        let since = before.map_or(now, |f| f.since);
        match alert {
            Some(severity) => {
                self.firing.insert(key.clone(), Firing { severity, since });
            }
            None => {
                self.firing.remove(key);
            }
        }
        Some(Change {
            kind,
            previous: before.map(|f| f.severity),
            since,
        })
    }

    /// Resolves every firing alert whose key `live` no longer holds: containers that
    /// went away.
    pub fn sweep(&mut self, live: impl Fn(&K) -> bool) -> Vec<(K, Change)> {
        let gone: Vec<K> = self.firing.keys().filter(|k| !live(k)).cloned().collect();
        gone.into_iter()
            .filter_map(|key| {
                let f = self.firing.remove(&key)?;
                Some((
                    key,
                    Change {
                        kind: EventKind::Resolved,
                        previous: Some(f.severity),
                        since: f.since,
                    },
                ))
            })
            .collect()
    }

    /// The alert's state while it fires.
    pub fn firing(&self, key: &K) -> Option<Firing> {
        self.firing.get(key).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_transition_is_named_once_with_the_start_of_firing() {
        let mut l = Lifecycle::default();
        let w = Some(Severity::Warning);
        let c = Some(Severity::Critical);
        assert_eq!(l.observe(&"a", None, 0), None);
        let fired = l.observe(&"a", w, 10).unwrap();
        assert_eq!(
            (fired.kind, fired.previous, fired.since),
            (EventKind::Fired, None, 10)
        );
        assert_eq!(l.observe(&"a", w, 20), None, "unchanged");
        let up = l.observe(&"a", c, 30).unwrap();
        assert_eq!(
            (up.kind, up.previous, up.since),
            (EventKind::Escalated, w, 10)
        );
        let down = l.observe(&"a", w, 40).unwrap();
        assert_eq!((down.kind, down.previous), (EventKind::Deescalated, c));
        let over = l.observe(&"a", None, 50).unwrap();
        assert_eq!(
            (over.kind, over.previous, over.since),
            (EventKind::Resolved, w, 10)
        );
        assert_eq!(l.firing(&"a"), None);
    }

    #[test]
    fn alerts_of_containers_gone_are_resolved_by_the_sweep() {
        let mut l = Lifecycle::default();
        l.observe(&"a", Some(Severity::Critical), 5);
        l.observe(&"b", Some(Severity::Warning), 5);
        let gone = l.sweep(|k| *k == "b");
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].0, "a");
        assert_eq!(gone[0].1.previous, Some(Severity::Critical));
        assert!(l.sweep(|_| false).iter().all(|(k, _)| *k == "b"));
    }
}
