//! Plugin settings: a typed resource each plugin reads once from the configuration, from its
//! own section (`post_ratings: {weight: 2}`) or, for RecAgent's flat keys, from top-level keys
//! (`page_size: 5`). The core configuration ([`SimConfig`]) keeps every key it does not own in
//! [`SimConfig::extra`]; a key no plugin claims is an error naming the key and its line.
//!
//! The manifest and checkpoints record the *resolved* settings (defaults included), so a
//! resumed run reads back exactly what the first run used.

use std::collections::BTreeSet;

use bevy_ecs::resource::Resource;
use bevy_ecs::world::World;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::{ConfigError, SimConfig};

/// A plugin's settings.
///
/// # Example
/// ```
/// use bevy_ecs::resource::Resource;
/// use serde::{Deserialize, Serialize};
///
/// /// `post_ratings:` section.
/// #[derive(Resource, Clone, Debug, Serialize, Deserialize)]
/// #[serde(default, deny_unknown_fields)]
/// pub struct PostRatingSettings {
///     /// Weight of closeness in the offline rating; 0..=10.
///     pub closeness_weight: f64,
/// }
/// impl Default for PostRatingSettings {
///     fn default() -> Self {
///         Self { closeness_weight: 2.0 }
///     }
/// }
/// impl recagent::plugin::Settings for PostRatingSettings {
///     const SECTION: Option<&'static str> = Some("post_ratings");
///     fn validate(&self) -> Result<(), (String, String)> {
///         if (0.0..=10.0).contains(&self.closeness_weight) {
///             Ok(())
///         } else {
///             Err(("closeness_weight".into(), "allowed 0..=10".into()))
///         }
///     }
/// }
/// ```
pub trait Settings: Resource + Clone + Default + Serialize + DeserializeOwned {
    /// `Some(name)`: the settings are the mapping under the top-level key `name`. `None`: their
    /// fields are top-level keys (RecAgent's flat layout); field names must not collide with
    /// other plugins' keys.
    const SECTION: Option<&'static str>;
    /// Keys (fields, without the section prefix) that cannot change when a run is resumed or
    /// branched, each with the reason shown to the user.
    const FIXED: &'static [(&'static str, &'static str)] = &[];
    /// Keys (fields, without the section prefix) that may change between two rounds of a
    /// running simulation ([`crate::intervention`]'s settings change): the plugin reads them
    /// afresh every round, or [`Settings::on_change`] brings its state in line.
    const LIVE: &'static [&'static str] = &[];
    /// Called after one of [`Settings::LIVE`] changed mid-run (the new settings are in the
    /// world): derived state follows them. Default: nothing.
    fn on_change(_world: &mut World) {}
    /// Checks ranges and cross-field rules; `Err((field, message))` names the field (without
    /// the section prefix) and the allowed range.
    ///
    /// # Errors
    /// The first problem found.
    fn validate(&self) -> Result<(), (String, String)> {
        Ok(())
    }
}

/// How one registered settings type is found in and written back to the configuration.
pub struct SettingsEntry {
    /// [`Settings::SECTION`].
    pub section: Option<&'static str>,
    /// The top-level keys it claims (its section name, or its field names).
    pub keys: Vec<String>,
    /// [`Settings::FIXED`].
    pub fixed: &'static [(&'static str, &'static str)],
    /// [`Settings::LIVE`].
    pub live: &'static [&'static str],
    to_json: fn(&World) -> serde_json::Value,
    /// Resolves the settings from a configuration, puts them in the world and calls
    /// [`Settings::on_change`].
    reload: fn(&mut World, &SimConfig) -> Result<(), ConfigError>,
    /// Resolves the settings from a configuration without changing anything (a dry run).
    check: fn(&SimConfig) -> Result<(), ConfigError>,
}

/// The registered settings (a world resource).
#[derive(Resource, Default)]
pub struct SettingsRegistry {
    entries: Vec<SettingsEntry>,
}

impl SettingsRegistry {
    /// The top-level keys the registered settings claim.
    pub fn claimed(&self) -> BTreeSet<String> {
        self.entries.iter().flat_map(|e| e.keys.clone()).collect()
    }

    /// Why `key` (top level, or `section.field`) cannot change mid-run, if it cannot.
    pub fn fixed_reason(&self, key: &str) -> Option<&'static str> {
        self.entries.iter().find_map(|e| {
            let field = match e.section {
                Some(s) => key.strip_prefix(s)?.strip_prefix('.')?,
                None => key,
            };
            e.fixed.iter().find(|(k, _)| *k == field).map(|(_, r)| *r)
        })
    }

    /// True when `key` (top level, or `section.field`) is one of a registered settings'
    /// [`Settings::LIVE`] keys.
    pub fn is_live(&self, key: &str) -> bool {
        self.entry_of(key)
            .is_some_and(|(e, field)| e.live.contains(&field))
    }

    /// Every live key, as written in a configuration (`section.field` for sections), sorted.
    pub fn live_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .entries
            .iter()
            .flat_map(|e| {
                e.live.iter().map(move |k| match e.section {
                    Some(s) => format!("{s}.{k}"),
                    None => (*k).to_string(),
                })
            })
            .collect();
        keys.sort();
        keys
    }

    /// The entry claiming `key`, and the field `key` names in it.
    fn entry_of<'k>(&self, key: &'k str) -> Option<(&SettingsEntry, &'k str)> {
        self.entries.iter().find_map(|e| match e.section {
            Some(s) => {
                let field = key.strip_prefix(s)?.strip_prefix('.')?;
                Some((e, field))
            }
            None => e.keys.iter().any(|k| k == key).then_some((e, key)),
        })
    }

    /// Reloads, from `cfg`, the settings that claim the live key `key` (see
    /// [`SettingsRegistry::is_live`]); `Ok(false)` when no registered settings claim it live.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key when `cfg`'s value is refused by the settings'
    /// check (the world is then unchanged).
    pub fn reload_live(world: &mut World, key: &str, cfg: &SimConfig) -> Result<bool, ConfigError> {
        let reload = world.get_resource::<SettingsRegistry>().and_then(|r| {
            r.entry_of(key)
                .filter(|(e, field)| e.live.contains(field))
                .map(|(e, _)| e.reload)
        });
        match reload {
            Some(f) => f(world, cfg).map(|()| true),
            None => Ok(false),
        }
    }

    /// Checks, without changing anything, that `cfg` is valid for the settings that claim the
    /// live key `key` (nothing to check when none claims it).
    ///
    /// # Errors
    /// As [`SettingsRegistry::reload_live`].
    pub fn check_live(&self, key: &str, cfg: &SimConfig) -> Result<(), ConfigError> {
        match self
            .entry_of(key)
            .filter(|(e, field)| e.live.contains(field))
        {
            Some((e, _)) => (e.check)(cfg),
            None => Ok(()),
        }
    }

    /// `core` (a configuration as JSON) with every registered settings' resolved values added:
    /// a section under its name, flat fields at the top level.
    pub fn merge_into(&self, world: &World, core: &mut serde_json::Value) {
        let Some(top) = core.as_object_mut() else {
            return;
        };
        for e in &self.entries {
            let v = (e.to_json)(world);
            match (e.section, v) {
                (Some(s), v) => {
                    top.insert(s.to_string(), v);
                }
                (None, serde_json::Value::Object(m)) => top.extend(m),
                (None, _) => {}
            }
        }
    }

    fn add<S: Settings>(&mut self, keys: Vec<String>) {
        if self.entries.iter().any(|e| e.keys == keys) {
            return;
        }
        self.entries.push(SettingsEntry {
            section: S::SECTION,
            keys,
            fixed: S::FIXED,
            live: S::LIVE,
            to_json: |w| {
                w.get_resource::<S>()
                    .map_or(serde_json::Value::Null, crate::config::json_as_written)
            },
            reload: |w, cfg| {
                let (s, _) = resolve::<S>(cfg)?;
                w.insert_resource(s);
                S::on_change(w);
                Ok(())
            },
            check: |cfg| resolve::<S>(cfg).map(drop),
        });
    }
}

/// The field names of `S` (from its default value's JSON object).
fn field_names<S: Settings>() -> Vec<String> {
    match serde_json::to_value(S::default()) {
        Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// The first field of `obj` whose value alone does not deserialise into `S` (the culprit of a
/// failed deserialisation of the whole object).
fn culprit<S: Settings>(obj: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
    obj.iter().find_map(|(k, v)| {
        let mut one = serde_json::Map::new();
        one.insert(k.clone(), v.clone());
        serde_json::from_value::<S>(serde_json::Value::Object(one))
            .is_err()
            .then(|| k.clone())
    })
}

/// The message of `S`'s check for its defaults with `value` as `field`, if the check refuses it
/// (to learn the field's allowed range).
fn probe<S: Settings>(field: &str, value: serde_json::Value) -> Option<String> {
    let mut v = serde_json::to_value(S::default()).ok()?;
    *v.as_object_mut()?.get_mut(field)? = value;
    match serde_json::from_value::<S>(v).ok()?.validate() {
        Err((k, m)) if k == field => Some(m),
        _ => None,
    }
}

/// Reads `S` from `cfg`: its section, or its fields at the top level; absent keys take their
/// defaults. Returns the settings and the top-level keys they claim.
///
/// # Errors
/// [`ConfigError::Invalid`] naming the key (`section.field` for sections), its line when it
/// came from a file, and what is wrong.
pub fn resolve<S: Settings>(cfg: &SimConfig) -> Result<(S, Vec<String>), ConfigError> {
    let (value, keys, prefix) = match S::SECTION {
        Some(sec) => (
            cfg.extra
                .get(sec)
                .cloned()
                .unwrap_or_else(|| serde_json::Value::Object(Default::default())),
            vec![sec.to_string()],
            format!("{sec}."),
        ),
        None => {
            let names = field_names::<S>();
            let obj: serde_json::Map<String, serde_json::Value> = names
                .iter()
                .filter_map(|k| cfg.extra.get(k).map(|v| (k.clone(), v.clone())))
                .collect();
            (serde_json::Value::Object(obj), names, String::new())
        }
    };
    let invalid = |key: String, message: String| {
        let (origin, line) = cfg.origin_of(&key);
        ConfigError::Invalid {
            origin,
            line,
            key,
            message,
        }
    };
    let s: S = match serde_json::from_value::<S>(value.clone()) {
        Ok(s) => s,
        Err(e) => {
            let field = match &value {
                serde_json::Value::Object(m) => culprit::<S>(m),
                _ => None,
            };
            let key = field
                .as_ref()
                .map(|k| format!("{prefix}{k}"))
                .or_else(|| S::SECTION.map(str::to_string))
                .unwrap_or_default();
            let e = e.to_string();
            // A field of the wrong kind: say what it must be, with the range its check allows.
            let in_terms = field.as_ref().and_then(|f| {
                crate::config::messages::wrong_kind(&e, value.get(f), |p| probe::<S>(f, p))
            });
            let message = match in_terms {
                Some(m) => m,
                None if value.is_object() || S::SECTION.is_none() => e,
                None => format!("expected a mapping of settings ({e})"),
            };
            return Err(invalid(key, message));
        }
    };
    s.validate()
        .map_err(|(k, m)| invalid(format!("{prefix}{k}"), m))?;
    Ok((s, keys))
}

/// Registers `S` in the world's [`SettingsRegistry`] (under the keys it claims).
pub(crate) fn register<S: Settings>(world: &mut World, keys: Vec<String>) {
    world
        .get_resource_or_insert_with(SettingsRegistry::default)
        .add::<S>(keys);
}
