//! Reading flannel's net-conf.json object key by key: each key Capstan
//! knows is taken with its type checked (a wrong type is an error naming
//! the key); whatever is left is reported as ignored, so a file written
//! for flannel loads with a warning per key instead of being rejected.
//! Pure: never logs, never reads a file.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// A key the file sets that Capstan does not act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ignored {
    /// Its path in the file, `Backend.MTU` for a nested one.
    pub key: String,
    /// Why it has no effect.
    pub why: &'static str,
}

/// Why a key flannel documents is accepted but unused.
pub const UNUSED: &str = "flannel's; Capstan does not use it";
/// Why an unknown key is ignored.
pub const UNKNOWN: &str = "not a flannel or Capstan key";

/// The keys of one JSON object, taken one at a time.
pub struct Keys {
    /// Prefix of the keys' names in messages ("" or "Backend.").
    at: &'static str,
    map: Map<String, Value>,
}

impl Keys {
    /// `what` names the object in the error when `v` is not one.
    pub fn of(v: Value, at: &'static str, what: &str) -> Result<Keys, String> {
        match v {
            Value::Object(map) => Ok(Keys { at, map }),
            other => Err(format!(
                "{what} must be a JSON object, not {}",
                kind(&other)
            )),
        }
    }

    /// The value of `key` as a `T` (absent or null: `None`).
    pub fn take<T: DeserializeOwned>(&mut self, key: &str) -> Result<Option<T>, String> {
        match self.map.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => {
                let shown = v.to_string();
                serde_json::from_value(v)
                    .map(Some)
                    .map_err(|e| format!("{}{key} {shown}: {e}", self.at))
            }
        }
    }

    /// The raw value of `key`, for a nested object.
    pub fn take_value(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key).filter(|v| !v.is_null())
    }

    /// Takes `key` (type checked) and records it as unused when present.
    pub fn unused<T: DeserializeOwned>(
        &mut self,
        key: &str,
        ignored: &mut Vec<Ignored>,
    ) -> Result<(), String> {
        if self.take::<T>(key)?.is_some() {
            ignored.push(Ignored {
                key: format!("{}{key}", self.at),
                why: UNUSED,
            });
        }
        Ok(())
    }

    /// Every key not taken, as unknown (in the file's key order).
    pub fn rest(self, ignored: &mut Vec<Ignored>) {
        for key in self.map.keys() {
            ignored.push(Ignored {
                key: format!("{}{key}", self.at),
                why: UNKNOWN,
            });
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_keys_unused_keys_and_the_rest() {
        let v = serde_json::json!({"A": 1, "B": "x", "C": true, "D": null});
        let mut k = Keys::of(v, "Backend.", "Backend").unwrap();
        assert_eq!(k.take::<u8>("A").unwrap(), Some(1));
        assert_eq!(k.take::<u8>("D").unwrap(), None);
        let e = k.take::<u8>("B").unwrap_err();
        assert!(e.starts_with("Backend.B \"x\": invalid type"), "{e}");
        let mut ignored = Vec::new();
        k.unused::<bool>("C", &mut ignored).unwrap();
        k.unused::<bool>("Absent", &mut ignored).unwrap();
        assert_eq!(
            ignored,
            vec![Ignored {
                key: "Backend.C".into(),
                why: UNUSED
            }]
        );
        assert!(Keys::of(Value::from(3), "", "the network config")
            .err()
            .unwrap()
            .contains("must be a JSON object, not a number"));
    }
}
