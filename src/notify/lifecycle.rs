//! The one alert lifecycle: what each alert's state is (its severity, since when it
//! fires, and what its owner keeps with it) and what changed at each evaluation. The dispatcher turns its changes
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
    /// Still firing at the same severity, but its time to limit moved by a third or
    /// more from what receivers last heard (the dispatcher decides; Slack and
    /// webhooks hear it, Alertmanager takes it as a refresh).
    Updated,
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
            EventKind::Updated => "updated",
            EventKind::Resolved => "resolved",
            EventKind::OomKill => "oom_kill",
        }
    }
}

/// A firing alert's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Firing<T> {
    pub severity: Severity,
    /// When it began firing (ms).
    pub since: TimestampMs,
    /// What the owner keeps with the alert while it fires: the dispatcher keeps its
    /// last event, for re-sends and for the resolution when its container goes away.
    pub last: Option<T>,
}

/// One transition of one alert.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transition {
    pub kind: EventKind,
    /// The severity before: `None` when it just began firing.
    pub previous: Option<Severity>,
    /// When the alert began firing (ms): `now` when it just did.
    pub since: TimestampMs,
}

/// Every firing alert's state, by key: the one place that decides what changed.
#[derive(Debug, Clone)]
pub struct Lifecycle<K, T = ()> {
    firing: HashMap<K, Firing<T>>,
}

impl<K, T> Default for Lifecycle<K, T> {
    fn default() -> Self {
        Lifecycle {
            firing: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + Clone, T> Lifecycle<K, T> {
    /// Folds in one evaluation's alert (`None`: not firing) at `now`; returns what
    /// changed, or `None` when nothing did.
    pub fn observe(
        &mut self,
        key: &K,
        alert: Option<Severity>,
        now: TimestampMs,
    ) -> Option<Transition> {
        let before = self.firing.get(key).map(|f| (f.severity, f.since));
        let kind = match (before.map(|(s, _)| s), alert) {
            (None, None) => return None,
            (None, Some(_)) => EventKind::Fired,
            (Some(b), Some(a)) if a > b => EventKind::Escalated,
            (Some(b), Some(a)) if a < b => EventKind::Deescalated,
            (Some(_), Some(_)) => return None,
            (Some(_), None) => EventKind::Resolved,
        };
        let since = before.map_or(now, |(_, since)| since);
        match alert {
            Some(severity) => {
                let f = self.firing.entry(key.clone()).or_insert(Firing {
                    severity,
                    since,
                    last: None,
                });
                f.severity = severity;
            }
            None => {
                self.firing.remove(key);
            }
        }
        Some(Transition {
            kind,
            previous: before.map(|(s, _)| s),
            since,
        })
    }

    /// Keeps `value` with a firing alert (nothing when it does not fire).
    pub fn keep(&mut self, key: &K, value: T) {
        if let Some(f) = self.firing.get_mut(key) {
            f.last = Some(value);
        }
    }

    /// Resolves every firing alert whose key `live` no longer holds (containers that
    /// went away), with what was kept with each.
    pub fn sweep(&mut self, live: impl Fn(&K) -> bool) -> Vec<(K, Transition, Option<T>)> {
        let gone: Vec<K> = self.firing.keys().filter(|k| !live(k)).cloned().collect();
        gone.into_iter()
            .filter_map(|key| {
                let f = self.firing.remove(&key)?;
                let transition = Transition {
                    kind: EventKind::Resolved,
                    previous: Some(f.severity),
                    since: f.since,
                };
                Some((key, transition, f.last))
            })
            .collect()
    }

    /// The alert's state while it fires.
    pub fn firing(&self, key: &K) -> Option<&Firing<T>> {
        self.firing.get(key)
    }

    /// Every firing alert's state.
    pub fn all_firing(&self) -> impl Iterator<Item = &Firing<T>> {
        self.firing.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_transition_is_named_once_with_the_start_of_firing() {
        let mut l: Lifecycle<&str> = Lifecycle::default();
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
        assert!(l.firing(&"a").is_none());
    }

    #[test]
    fn alerts_of_containers_gone_are_resolved_by_the_sweep() {
        let mut l: Lifecycle<&str, i32> = Lifecycle::default();
        l.observe(&"a", Some(Severity::Critical), 5);
        l.observe(&"b", Some(Severity::Warning), 5);
        l.keep(&"a", 7);
        let gone = l.sweep(|k| *k == "b");
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].0, "a");
        assert_eq!(gone[0].1.previous, Some(Severity::Critical));
        assert_eq!(gone[0].2, Some(7), "what was kept comes with it");
        assert!(l.sweep(|_| false).iter().all(|(k, _, _)| *k == "b"));
    }
}
