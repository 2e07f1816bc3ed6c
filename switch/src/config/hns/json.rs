//! HNS JSON as a tree with the byte range of every value (jsonc-parser's
//! AST), read the way Go's encoding/json reads it: field names match
//! without regard to case, and every field is either used or reported.

use std::ops::Range;

use jsonc_parser::ast::{Object, Value};
use jsonc_parser::common::Ranged;

use crate::config::error::Diag;
use crate::config::raw::S;

/// Where one JSON file's spans start in the checker's offsets.
#[derive(Clone, Copy)]
pub(super) struct At {
    pub(super) base: usize,
}

impl At {
    pub(super) fn span(self, v: &impl Ranged) -> Range<usize> {
        let r = v.range();
        self.base + r.start..self.base + r.end
    }
}

/// An HNS object being read: `take` marks a field used, `finish` reports
/// the fields nobody took, so no field is dropped without a word.
pub(super) struct Obj<'j, 'a> {
    o: &'j Object<'a>,
    used: Vec<bool>,
    at: At,
}

impl<'j, 'a> Obj<'j, 'a> {
    /// `v` as an object, or an error naming `what` it should be.
    pub(super) fn new(d: &mut Diag, at: At, v: &'j Value<'a>, what: &str) -> Option<Self> {
        match v {
            Value::Object(o) => Some(Obj {
                o,
                used: vec![false; o.properties.len()],
                at,
            }),
            _ => {
                d.at(at.span(v), format!("{what} must be a JSON object"));
                None
            }
        }
    }

    pub(super) fn span(&self) -> Range<usize> {
        self.at.span(self.o)
    }

    /// The field `key` (any case), marked used.
    pub(super) fn take(&mut self, key: &str) -> Option<&'j Value<'a>> {
        let i = self
            .o
            .properties
            .iter()
            .position(|p| p.name.as_str().eq_ignore_ascii_case(key))?;
        self.used[i] = true;
        Some(&self.o.properties[i].value)
    }

    /// Whether the object has field `key` (any case), without using it.
    pub(super) fn has(&self, key: &str) -> bool {
        self.o
            .properties
            .iter()
            .any(|p| p.name.as_str().eq_ignore_ascii_case(key))
    }

    /// Marks fields that HNS reports about an object but that say nothing
    /// podswitch acts on (IDs, state, versions).
    pub(super) fn informational(&mut self, keys: &[&str]) {
        for k in keys {
            self.take(k);
        }
    }

    /// Reports every field not taken, as unsupported in `what`.
    pub(super) fn finish(self, d: &mut Diag, what: &str) {
        for (p, used) in self.o.properties.iter().zip(self.used) {
            if !used {
                d.at(
                    self.at.span(&p.name),
                    format!(
                        "{what} field {:?} is not supported by podswitch",
                        p.name.as_str()
                    ),
                );
            }
        }
    }

    pub(super) fn string(&mut self, d: &mut Diag, key: &str) -> Option<S<String>> {
        let at = self.at;
        string(d, at, self.take(key)?, key)
    }

    pub(super) fn uint(&mut self, d: &mut Diag, key: &str, max: u64) -> Option<S<u64>> {
        let at = self.at;
        uint(d, at, self.take(key)?, key, max)
    }

    pub(super) fn boolean(&mut self, d: &mut Diag, key: &str) -> Option<S<bool>> {
        let at = self.at;
        match self.take(key)? {
            Value::BooleanLit(b) => Some(S::new(at.span(b), b.value)),
            v => {
                d.at(at.span(v), format!("{key} must be true or false"));
                None
            }
        }
    }

    /// An array field's elements; a missing field or `null` is empty.
    pub(super) fn array(&mut self, d: &mut Diag, key: &str) -> &'j [Value<'a>] {
        let at = self.at;
        match self.take(key) {
            None | Some(Value::NullKeyword(_)) => &[],
            Some(Value::Array(a)) => &a.elements,
            Some(v) => {
                d.at(at.span(v), format!("{key} must be a JSON array"));
                &[]
            }
        }
    }

    pub(super) fn at(&self) -> At {
        self.at
    }
}

pub(super) fn string(d: &mut Diag, at: At, v: &Value, key: &str) -> Option<S<String>> {
    match v {
        Value::StringLit(s) => Some(S::new(at.span(s), s.value.to_string())),
        _ => {
            d.at(at.span(v), format!("{key} must be a JSON string"));
            None
        }
    }
}

pub(super) fn uint(d: &mut Diag, at: At, v: &Value, key: &str, max: u64) -> Option<S<u64>> {
    let n = match v {
        Value::NumberLit(n) => n.value.parse::<u64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if n <= max => Some(S::new(at.span(v), n)),
        _ => {
            d.at(
                at.span(v),
                format!("{key} must be a whole number from 0 to {max}"),
            );
            None
        }
    }
}
