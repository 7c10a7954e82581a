//! The registered decision kinds: what the LLM backend loads templates for, and the phases a
//! transcript's keys are resolved against.

use bevy_ecs::resource::Resource;

use super::{Decision, Phase, RecordedKey, RequestKey};

/// One registered kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KindInfo {
    /// [`Decision::KIND`].
    pub kind: &'static str,
    /// [`Decision::PHASE`].
    pub phase: Phase,
    /// [`Decision::TEMPLATE`].
    pub template: &'static str,
    /// [`Decision::TYPICAL_COMPLETION_TOKENS`].
    pub typical_completion_tokens: u64,
    /// [`Decision::WORDS`]: the words template `(name, embedded text)`, if the kind has one.
    pub words: Option<(&'static str, &'static str)>,
}

/// Registered decision kinds, in registration order (a world resource).
#[derive(Resource, Clone, Debug, Default)]
pub struct DecisionKinds {
    kinds: Vec<KindInfo>,
}

impl DecisionKinds {
    /// Registers `D` (again: nothing happens).
    ///
    /// # Panics
    /// When another kind already has `D::KIND`, or another phase has `D::PHASE`'s name or code
    /// (two plugins chose the same one): a programming error found on the first run.
    pub fn add<D: Decision>(&mut self) {
        let info = KindInfo {
            kind: D::KIND,
            phase: D::PHASE,
            template: D::TEMPLATE,
            typical_completion_tokens: D::TYPICAL_COMPLETION_TOKENS,
            words: D::WORDS,
        };
        if self.kinds.contains(&info) {
            return;
        }
        if let Some(k) = self.kinds.iter().find(|k| k.kind == D::KIND) {
            panic!(
                "decision kind `{}` is registered twice with different definitions ({:?} and {:?})",
                D::KIND,
                k,
                info
            );
        }
        if let Some(k) = self
            .kinds
            .iter()
            .find(|k| (k.phase.name() == D::PHASE.name()) != (k.phase.code() == D::PHASE.code()))
        {
            panic!(
                "decision kind `{}`: phase {} (code {}) clashes with kind `{}`'s phase {} (code {}); pick another name and code",
                D::KIND,
                D::PHASE.name(),
                D::PHASE.code(),
                k.kind,
                k.phase.name(),
                k.phase.code()
            );
        }
        self.kinds.push(info);
    }

    /// The kinds, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = &KindInfo> {
        self.kinds.iter()
    }

    /// The words templates `(name, embedded text)` of the kinds that have words
    /// ([`Decision::WORDS`]), in registration order.
    pub fn words_templates(&self) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
        self.kinds.iter().filter_map(|k| k.words)
    }

    /// The registered phase named `name`.
    pub fn phase(&self, name: &str) -> Option<Phase> {
        self.kinds
            .iter()
            .map(|k| k.phase)
            .find(|p| p.name() == name)
    }

    /// A recorded key with its phase resolved, or `None` when no registered kind has that phase.
    pub fn resolve(&self, k: &RecordedKey) -> Option<RequestKey> {
        Some(RequestKey {
            round: k.round,
            phase: self.phase(&k.phase)?,
            user: k.user,
            step: k.step,
        })
    }
}
