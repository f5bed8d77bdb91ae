//! One value per run of a batch of independent runs trained together (a sweep's runs on the
//! batch axis): what the loop keeps per run (each run's own best step) and what batched
//! experiments report.

use serde::{Deserialize, Serialize};

/// One value per run of a batch. One run serialises as its value alone (so a single
/// `hypermod train` writes plain metrics and summary fields), several as `{"runs": [...]}` (a
/// map, because `summary.json` flattens the extras into its top level). Empty — the loop's
/// step-0 training metrics, before any step — writes one default value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PerRun<T>(pub Vec<T>);

#[derive(Serialize)]
#[serde(untagged)]
enum OneOrManyRef<'a, T> {
    One(&'a T),
    Many { runs: &'a [T] },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many { runs: Vec<T> },
}

impl<T: Serialize + Default> Serialize for PerRun<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [] => OneOrManyRef::One(&T::default()).serialize(s),
            [one] => OneOrManyRef::One(one).serialize(s),
            runs => OneOrManyRef::Many { runs }.serialize(s),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for PerRun<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(match OneOrMany::deserialize(d)? {
            OneOrMany::One(v) => PerRun(vec![v]),
            OneOrMany::Many { runs } => PerRun(runs),
        })
    }
}

impl<T> PerRun<T> {
    /// The value of a single run; `None` for a batch of several (or none).
    pub fn single(&self) -> Option<&T> {
        match self.0.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }
}
