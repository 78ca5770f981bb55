//! The Python library's `extra_data` (a pickle) as JSON, decoded by `serde-pickle`, which
//! never executes anything: a pickle naming a class or function (datetime, an instance, a
//! malicious `os.system`) is not resolved but kept whole.
//!
//! Rule: None, booleans, integers that fit 64 bits, finite floats, strings, lists and dicts with
//! string keys become their JSON selves; a tuple becomes a list. Any other value (bytes, a set,
//! a huge integer, NaN or infinity, a dict with a non-string key) is kept as
//! `{"$pickle": "<standard base64 of a pickle of that value>"}` in its place; a pickle that
//! cannot be decoded without running code (datetime, a class instance) or at all is kept whole
//! the same way, with the original bytes. `pickle.loads(base64.b64decode(v["$pickle"]))` gives
//! the Python value back.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{Map, Number, Value as Json};
use serde_pickle::{DeOptions, HashableValue, SerOptions, Value};

/// The JSON form of a pickle, and whether any part had to be kept as `$pickle`.
pub struct Converted {
    pub json: Json,
    pub kept_as_pickle: bool,
}

/// Converts one pickled `extra_data`.
pub fn to_json(pickled: &[u8]) -> Converted {
    match serde_pickle::value_from_slice(pickled, DeOptions::new()) {
        Ok(value) => {
            let mut kept = false;
            let json = convert(&value, &mut kept);
            Converted {
                json,
                kept_as_pickle: kept,
            }
        }
        Err(_) => Converted {
            json: wrapped(pickled),
            kept_as_pickle: true,
        },
    }
}

fn wrapped(pickled: &[u8]) -> Json {
    let mut map = Map::new();
    map.insert("$pickle".into(), Json::String(STANDARD.encode(pickled)));
    Json::Object(map)
}

fn kept(value: &Value, flag: &mut bool) -> Json {
    *flag = true;
    match serde_pickle::value_to_vec(value, SerOptions::new()) {
        Ok(bytes) => wrapped(&bytes),
        // Every decoded value can be pickled again; should it not, say so rather than drop it.
        Err(e) => Json::String(format!("$pickle: cannot re-encode: {e}")),
    }
}

fn convert(value: &Value, flag: &mut bool) -> Json {
    match value {
        Value::None => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::I64(i) => Json::Number((*i).into()),
        Value::F64(f) => match Number::from_f64(*f) {
            Some(n) => Json::Number(n),
            None => kept(value, flag),
        },
        Value::String(s) => Json::String(s.clone()),
        Value::List(items) | Value::Tuple(items) => {
            Json::Array(items.iter().map(|v| convert(v, flag)).collect())
        }
        Value::Dict(entries) => {
            if !entries
                .keys()
                .all(|k| matches!(k, HashableValue::String(_)))
            {
                return kept(value, flag);
            }
            let mut map = Map::new();
            for (k, v) in entries {
                if let HashableValue::String(k) = k {
                    map.insert(k.clone(), convert(v, flag));
                }
            }
            Json::Object(map)
        }
        Value::Int(_) | Value::Bytes(_) | Value::Set(_) | Value::FrozenSet(_) => kept(value, flag),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(s: &str) -> Vec<u8> {
        STANDARD.decode(s).unwrap_or_default()
    }

    #[test]
    fn plain_values_become_their_json_selves() {
        // pickle.dumps({"phone": "123", "n": [1, 2.5, None, True], "t": (1, "a"), "d": {"x": {}}})
        let p = b64("gASVQQAAAAAAAAB9lCiMBXBob25llIwDMTIzlIwBbpRdlChLAUdABAAAAAAAAE6IZYwBdJRLAYwBYZSGlIwBZJR9lIwBeJR9lHN1Lg==");
        let c = to_json(&p);
        assert!(!c.kept_as_pickle);
        assert_eq!(
            c.json,
            json!({"phone": "123", "n": [1, 2.5, null, true], "t": [1, "a"], "d": {"x": {}}})
        );
    }

    #[test]
    fn a_set_is_kept_as_a_pickle_in_its_place() {
        // pickle.dumps({"tags": {1}, "name": "x"})
        let p = b64("gASVHQAAAAAAAAB9lCiMBHRhZ3OUj5QoSwGQjARuYW1llIwBeJR1Lg==");
        let c = to_json(&p);
        assert!(c.kept_as_pickle);
        assert_eq!(c.json["name"], "x");
        let inner = c.json["tags"]["$pickle"].as_str().unwrap_or_default();
        let back = serde_pickle::value_from_slice(&b64(inner), DeOptions::new());
        assert!(matches!(back, Ok(Value::Set(s)) if s.len() == 1));
    }

    #[test]
    fn a_datetime_or_any_class_keeps_the_whole_pickle_and_runs_nothing() {
        // pickle.dumps({"when": datetime.datetime(2024, 1, 2, 3, 4, 5)})
        let p = b64(
            "gASVNAAAAAAAAAB9lIwEd2hlbpSMCGRhdGV0aW1llIwIZGF0ZXRpbWWUk5RDCgfoAQIDBAUAAACUhZRSlHMu",
        );
        let c = to_json(&p);
        assert!(c.kept_as_pickle);
        assert_eq!(c.json, json!({"$pickle": STANDARD.encode(&p)}));
        // pickle of os.system("true"): decoded as data, never called
        let evil = b"cos\nsystem\n(S'true'\ntR.";
        assert_eq!(
            to_json(evil).json,
            json!({"$pickle": STANDARD.encode(evil)})
        );
    }
}
