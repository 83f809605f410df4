//! The plain tags of one peer, by name.
//!
//! Most peers carry one tag, so the first is kept inline: a peer's first
//! tag allocates nothing but its name, and forgetting the peer frees
//! nothing else. Further tags go to a map, so a peer with many names
//! stays O(1) per operation.

use std::collections::HashMap;

/// Tag values by name.
#[derive(Debug, Default)]
pub(crate) struct TagSet {
    first: Option<(String, i64)>,
    rest: HashMap<String, i64>,
}

impl TagSet {
    pub(crate) fn is_empty(&self) -> bool {
        self.first.is_none() && self.rest.is_empty()
    }

    pub(crate) fn get(&self, name: &str) -> Option<i64> {
        match &self.first {
            Some((n, v)) if n == name => Some(*v),
            _ => self.rest.get(name).copied(),
        }
    }

    /// Sets `name` to `value`; its previous value, if it had one. An owned
    /// name is kept as it is, without a copy.
    pub(crate) fn set(&mut self, name: impl AsRef<str> + Into<String>, value: i64) -> Option<i64> {
        if let Some((n, v)) = &mut self.first {
            if n == name.as_ref() {
                return Some(std::mem::replace(v, value));
            }
        }
        if let Some(v) = self.rest.get_mut(name.as_ref()) {
            return Some(std::mem::replace(v, value));
        }
        match self.first {
            None => self.first = Some((name.into(), value)),
            Some(_) => {
                self.rest.insert(name.into(), value);
            }
        }
        None
    }

    /// Removes `name`; its value, if it had one.
    pub(crate) fn remove(&mut self, name: &str) -> Option<i64> {
        match &self.first {
            Some((n, _)) if n == name => self.first.take().map(|(_, v)| v),
            _ => self.rest.remove(name),
        }
    }

    /// Every tag, as the map a [`TagInfo`](crate::TagInfo) holds.
    pub(crate) fn to_map(&self) -> HashMap<String, i64> {
        let mut map = self.rest.clone();
        if let Some((n, v)) = &self.first {
            map.insert(n.clone(), *v);
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_as_a_map_whichever_tag_is_inline() {
        let mut tags = TagSet::default();
        assert!(tags.is_empty());
        assert_eq!(tags.set("a", 1), None);
        assert_eq!(tags.set(String::from("b"), 2), None);
        assert_eq!(tags.set("c", 3), None);
        assert_eq!(tags.set("a", 10), Some(1), "the inline tag is replaced");
        assert_eq!(tags.set("b", 20), Some(2), "a tag in the map is replaced");
        assert_eq!(
            (tags.get("a"), tags.get("b"), tags.get("x")),
            (Some(10), Some(20), None)
        );
        assert_eq!(tags.remove("a"), Some(10));
        assert_eq!(tags.remove("a"), None);
        assert!(!tags.is_empty());
        assert_eq!(tags.set("d", 4), None, "the free inline slot is used again");
        let want: HashMap<String, i64> = [("b", 20), ("c", 3), ("d", 4)]
            .into_iter()
            .map(|(n, v)| (n.to_owned(), v))
            .collect();
        assert_eq!(tags.to_map(), want);
        for name in ["b", "c", "d"] {
            assert!(tags.remove(name).is_some());
        }
        assert!(tags.is_empty() && tags.to_map().is_empty());
    }
}
