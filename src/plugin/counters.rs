//! Run counters: a registry keyed by name that the manifest (`summary`), the end-of-run
//! summary and checkpoints iterate. A plugin declares its counters as constants and registers
//! them ([`crate::plugin::SimApp::add_counters`]); systems add to them through the
//! [`Counters`] resource.

use std::collections::BTreeMap;

use bevy_ecs::resource::Resource;

/// A named counter, declared by the plugin that counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counter {
    /// Key in the manifest's `summary` and in checkpoints (snake case, unique).
    pub name: &'static str,
    /// Words shown in the summary ("watches", "mean rating").
    pub label: &'static str,
}

impl Counter {
    /// A counter `name`, shown as `label`.
    pub const fn new(name: &'static str, label: &'static str) -> Self {
        Self { name, label }
    }
}

#[derive(Clone, Debug)]
struct Entry {
    counter: Counter,
    group: &'static str,
    value: u64,
}

/// A summary line of a group: the group's counters formatted as its plugin wants.
pub type SummaryLine = fn(&Counters) -> Option<String>;

/// A value a plugin adds to the manifest's `summary` (beside the counters), computed from the
/// world each time the manifest is written; `None` leaves it out.
pub type SummaryValue = fn(&bevy_ecs::world::World) -> Option<serde_json::Value>;

/// The registered summary values by name (a world resource), in registration order; see
/// [`crate::plugin::SimApp::add_summary_value`].
#[derive(Resource, Clone, Debug, Default)]
pub struct SummaryValues(pub Vec<(&'static str, SummaryValue)>);

impl SummaryValues {
    /// Registers `f` under `name` (a second registration of `name` replaces the first).
    pub fn add(&mut self, name: &'static str, f: SummaryValue) {
        self.0.retain(|(n, _)| *n != name);
        self.0.push((name, f));
    }

    /// Every value that is present, by name (sorted).
    pub fn values(
        &self,
        world: &bevy_ecs::world::World,
    ) -> BTreeMap<&'static str, serde_json::Value> {
        self.0
            .iter()
            .filter_map(|(n, f)| Some((*n, f(world)?)))
            .collect()
    }
}

/// The counters of a run, in registration order (a world resource).
#[derive(Resource, Clone, Debug, Default)]
pub struct Counters {
    entries: Vec<Entry>,
    /// Values restored from a checkpoint for counters no plugin registers (kept, so nothing is
    /// lost, and shown in the manifest).
    orphans: BTreeMap<String, u64>,
    lines: Vec<(&'static str, SummaryLine)>,
    progress: Vec<&'static str>,
}

impl Counters {
    /// Registers `counter` in `group` (again: nothing happens).
    pub fn register(&mut self, group: &'static str, counter: Counter) {
        if self.entries.iter().any(|e| e.counter.name == counter.name) {
            return;
        }
        let value = self.orphans.remove(counter.name).unwrap_or(0);
        self.entries.push(Entry {
            counter,
            group,
            value,
        });
    }

    /// Replaces `group`'s default summary line (its counters, `label value · ...`).
    pub fn set_summary(&mut self, group: &'static str, line: SummaryLine) {
        self.lines.retain(|(g, _)| *g != group);
        self.lines.push((group, line));
    }

    /// Shows `c` in the progress bar's message.
    pub fn show_in_progress(&mut self, c: &Counter) {
        if !self.progress.contains(&c.name) {
            self.progress.push(c.name);
        }
    }

    /// The progress bar's message: the counters plugins chose, `label value · ...`.
    pub fn progress(&self) -> String {
        self.progress
            .iter()
            .filter_map(|n| self.entries.iter().find(|e| e.counter.name == *n))
            .map(|e| format!("{} {}", e.counter.label, e.value))
            .collect::<Vec<_>>()
            .join(" · ")
    }

    fn slot(&mut self, c: &Counter) -> &mut u64 {
        // Counters are constants: the registered copy usually shares the name's address, a
        // cheaper test than comparing the text on this hot path.
        let same = |e: &Entry| std::ptr::eq(e.counter.name, c.name);
        let i = match self
            .entries
            .iter()
            .position(same)
            .or_else(|| self.entries.iter().position(|e| e.counter.name == c.name))
        {
            Some(i) => i,
            None => {
                // Counting into an unregistered counter registers it (in a group of its own
                // name), so no count is ever lost.
                self.register(c.name, *c);
                self.entries.len() - 1
            }
        };
        &mut self.entries[i].value
    }

    /// Adds `n` to `c`.
    pub fn add(&mut self, c: &Counter, n: u64) {
        *self.slot(c) += n;
    }

    /// Sets `c` to `v`.
    pub fn set(&mut self, c: &Counter, v: u64) {
        *self.slot(c) = v;
    }

    /// The value of the counter named `name` (0 when there is none).
    pub fn get(&self, name: &str) -> u64 {
        self.entries
            .iter()
            .find(|e| e.counter.name == name)
            .map(|e| e.value)
            .or_else(|| self.orphans.get(name).copied())
            .unwrap_or(0)
    }

    /// Every counter by name, sorted (the manifest's `summary`).
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        let mut m = self.orphans.clone();
        for e in &self.entries {
            m.insert(e.counter.name.to_string(), e.value);
        }
        m
    }

    /// Restores values by name; names no plugin registers are kept as orphans.
    pub fn restore(&mut self, values: BTreeMap<String, u64>) {
        for (name, v) in values {
            match self.entries.iter_mut().find(|e| e.counter.name == name) {
                Some(e) => e.value = v,
                None => {
                    self.orphans.insert(name, v);
                }
            }
        }
    }

    /// The summary: one line per group, in registration order, `group: text`.
    pub fn summary(&self) -> Vec<(&'static str, String)> {
        let mut groups: Vec<&'static str> = Vec::new();
        for e in &self.entries {
            if !groups.contains(&e.group) {
                groups.push(e.group);
            }
        }
        groups
            .into_iter()
            .filter_map(|g| {
                let text = match self.lines.iter().find(|(lg, _)| *lg == g) {
                    Some((_, f)) => f(self)?,
                    None => self
                        .entries
                        .iter()
                        .filter(|e| e.group == g)
                        .map(|e| format!("{} {}", e.counter.label, e.value))
                        .collect::<Vec<_>>()
                        .join(" · "),
                };
                Some((g, text))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Counter = Counter::new("a_things", "things");
    const B: Counter = Counter::new("b_items", "items");

    #[test]
    fn counts_by_name_and_summarises_by_group() {
        let mut c = Counters::default();
        c.register("watch", A);
        c.register("watch", B);
        c.register("watch", A);
        c.add(&A, 2);
        c.add(&B, 5);
        c.add(&A, 1);
        assert_eq!(c.get("a_things"), 3);
        assert_eq!(
            c.summary(),
            vec![("watch", "things 3 · items 5".to_string())]
        );
        c.set_summary("watch", |c| {
            Some(format!("{} of {}", c.get("a_things"), c.get("b_items")))
        });
        assert_eq!(c.summary(), vec![("watch", "3 of 5".to_string())]);
        // Unregistered: counted in a group of its own.
        const C: Counter = Counter::new("c", "cs");
        c.add(&C, 4);
        assert_eq!(c.summary()[1], ("c", "cs 4".to_string()));
        // Restored values by name; unknown names kept.
        let mut r = Counters::default();
        r.register("watch", A);
        r.restore(c.snapshot());
        assert_eq!(r.get("a_things"), 3);
        assert_eq!(r.get("b_items"), 5);
        assert_eq!(r.snapshot(), c.snapshot());
        // A late registration takes its orphaned value.
        r.register("watch", B);
        assert_eq!(
            r.summary(),
            vec![("watch", "things 3 · items 5".to_string())]
        );
    }
}
