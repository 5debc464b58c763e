//! A map of slots filled at most once at a time per key ("single flight"):
//! concurrent callers for one key wait for the one filling it, callers for
//! other keys never wait. Used for upstream sessions (docs/decisions.md D3: 70 clients
//! → one `initialize`) and for cached upstream lists.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

type Slot<V> = Arc<Mutex<Option<V>>>;

/// Slots by key. `V` is cheap to clone (an `Arc` or small value).
pub struct SlotMap<K, V> {
    slots: Mutex<HashMap<K, Slot<V>>>,
}

impl<K, V> Default for SlotMap<K, V> {
    fn default() -> Self {
        SlotMap { slots: Mutex::new(HashMap::new()) }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> SlotMap<K, V> {
    fn slot(&self, key: &K) -> Slot<V> {
        self.slots.lock().entry(key.clone()).or_default().clone()
    }

    /// The value of `key` if `fresh` accepts it, else the one `fill` makes
    /// (stored on success). The key's lock is held while `fill` runs, so
    /// concurrent callers of one key run `fill` once; the map lock is not.
    pub fn get_or_try_fill<E>(
        &self,
        key: &K,
        fresh: impl Fn(&V) -> bool,
        fill: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E> {
        let slot = self.slot(key);
        let mut guard = slot.lock();
        if let Some(v) = guard.as_ref().filter(|v| fresh(v)) {
            return Ok(v.clone());
        }
        let v = fill()?;
        *guard = Some(v.clone());
        Ok(v)
    }

    /// The value of `key` if present and `fresh` accepts it (waits while the
    /// key is being filled).
    pub fn get_if(&self, key: &K, fresh: impl Fn(&V) -> bool) -> Option<V> {
        let slot = self.slot(key);
        let guard = slot.lock();
        guard.as_ref().filter(|v| fresh(v)).cloned()
    }

    /// Empties `key` if its value still satisfies `is_stale` (compare-and-delete:
    /// a value another caller just replaced it with survives).
    pub fn clear_if(&self, key: &K, is_stale: impl Fn(&V) -> bool) {
        let slot = self.slot(key);
        let mut guard = slot.lock();
        if guard.as_ref().is_some_and(is_stale) {
            *guard = None;
        }
    }

    /// Empties every filled slot for which `matches(key, value)` holds. The
    /// predicate sees each value under its slot's lock, so a slot being filled
    /// right now is judged by the value its fill stores (this waits for it).
    pub fn clear_where(&self, matches: impl Fn(&K, &V) -> bool) {
        let slots: Vec<(K, Slot<V>)> = self.slots.lock().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for (k, s) in slots {
            let mut guard = s.lock();
            if guard.as_ref().is_some_and(|v| matches(&k, v)) {
                *guard = None;
            }
        }
    }

    /// Every filled `(key, value)`; slots being filled right now are skipped.
    pub fn snapshot(&self) -> Vec<(K, V)> {
        let slots: Vec<(K, Slot<V>)> = self.slots.lock().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        slots
            .into_iter()
            .filter_map(|(k, s)| s.try_lock().and_then(|g| g.as_ref().map(|v| (k, v.clone()))))
            .collect()
    }

    /// Removes `key` and returns its value, if filled (waits while it is
    /// being filled; a fill that started before keeps its value to itself).
    pub fn take(&self, key: &K) -> Option<V> {
        let slot = self.slots.lock().remove(key)?;
        let value = slot.lock().take();
        value
    }

    /// Removes and returns every filled value.
    pub fn drain(&self) -> Vec<V> {
        let slots: Vec<Slot<V>> = self.slots.lock().drain().map(|(_, v)| v).collect();
        slots.into_iter().filter_map(|s| s.lock().take()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn one_fill_per_key_under_contention() {
        let map: Arc<SlotMap<String, u32>> = Arc::default();
        let fills = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (map, fills) = (map.clone(), fills.clone());
                std::thread::spawn(move || {
                    map.get_or_try_fill(&"k".to_string(), |_| true, || {
                        fills.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        Ok::<_, ()>(7)
                    })
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), Ok(7));
        }
        assert_eq!(fills.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn stale_values_are_refilled_and_clear_if_compares() {
        let map: SlotMap<u8, u32> = SlotMap::default();
        assert_eq!(map.get_or_try_fill(&1, |_| true, || Ok::<_, ()>(1)), Ok(1));
        assert_eq!(map.get_or_try_fill(&1, |v| *v > 1, || Ok::<_, ()>(2)), Ok(2));
        map.clear_if(&1, |v| *v == 1);
        assert_eq!(map.snapshot(), vec![(1, 2)]);
        map.clear_if(&1, |v| *v == 2);
        assert!(map.snapshot().is_empty());
        assert_eq!(map.get_or_try_fill(&1, |_| true, || Err::<u32, _>("down")), Err("down"));
        assert!(map.snapshot().is_empty());
    }

    #[test]
    fn clear_where_judges_key_and_value() {
        let map: SlotMap<(char, u8), u32> = SlotMap::default();
        for (key, v) in [(('a', 1), 10), (('a', 2), 20), (('b', 1), 30), (('b', 2), 40)] {
            assert_eq!(map.get_or_try_fill(&key, |_| true, || Ok::<_, ()>(v)), Ok(v));
        }
        // key only
        map.clear_where(|(c, _), _| *c == 'a');
        let mut left = map.snapshot();
        left.sort();
        assert_eq!(left, vec![(('b', 1), 30), (('b', 2), 40)]);
        // key and value
        map.clear_where(|(c, _), v| *c == 'b' && *v > 30);
        assert_eq!(map.snapshot(), vec![(('b', 1), 30)]);
        // nothing matches: nothing changes; cleared slots can be filled again
        map.clear_where(|_, v| *v == 99);
        assert_eq!(map.snapshot(), vec![(('b', 1), 30)]);
        assert_eq!(map.get_or_try_fill(&('a', 1), |_| true, || Ok::<_, ()>(11)), Ok(11));
        assert_eq!(map.get_if(&('a', 2), |_| true), None);
    }
}
