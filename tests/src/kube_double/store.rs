//! The object store of the test double: pods, claims, secrets and leases keyed by
//! namespace and name, one global resourceVersion counter, label and field
//! selectors, and the event history watches read from.
//!
//! Every change bumps the counter, stamps the object with it and appends an
//! event to a bounded history. A watch is a cursor into that history: it
//! replays the events after its resourceVersion and then waits for more, so
//! fan-out and resumption are the same mechanism. Events older than the
//! history (or dropped by `expire_history`) answer 410 Gone.
//!
//! The counter is internal: what clients see of it is [`Versions`]' text,
//! the decimal number or (in the opaque mode) a string that is neither a
//! number nor ordered, as Kubernetes allows: clients may compare
//! resourceVersions only for equality.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::watch;

/// Namespace and name.
pub(crate) type Key = (String, String);

/// How the store's resourceVersion counter is written for clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Versions {
    /// Decimal numbers, rising (what etcd gives).
    Numeric,
    /// Opaque strings: `o` and 16 hex digits of the counter times an odd
    /// constant (mod 2^64), so neither a number nor in order.
    Opaque,
}

/// The odd constant opaque versions multiply by, and its inverse mod 2^64.
const SCRAMBLE: u64 = 0x9e37_79b9_7f4a_7c15;
const UNSCRAMBLE: u64 = inverse(SCRAMBLE);

/// The inverse of odd `a` mod 2^64 (Newton's iteration).
const fn inverse(a: u64) -> u64 {
    let mut x = a;
    let mut i = 0;
    while i < 6 {
        x = x.wrapping_mul(2u64.wrapping_sub(a.wrapping_mul(x)));
        i += 1;
    }
    x
}

impl Versions {
    /// The text of counter value `rv`.
    pub(crate) fn text(self, rv: u64) -> String {
        match self {
            Versions::Numeric => rv.to_string(),
            Versions::Opaque => format!("o{:016x}", rv.wrapping_mul(SCRAMBLE)),
        }
    }

    /// The counter value of a version a client sent; `None` if it is not
    /// one this store wrote.
    pub(crate) fn parse(self, text: &str) -> Option<u64> {
        match self {
            Versions::Numeric => text.parse().ok(),
            Versions::Opaque => {
                let hex = text.strip_prefix('o').filter(|h| h.len() == 16)?;
                let scrambled = u64::from_str_radix(hex, 16).ok()?;
                Some(scrambled.wrapping_mul(UNSCRAMBLE))
            }
        }
    }
}

/// The kinds the double serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Pod,
    Pvc,
    Secret,
    Lease,
}

impl Kind {
    /// The resource name in URLs and Status details.
    pub(crate) fn plural(self) -> &'static str {
        match self {
            Kind::Pod => "pods",
            Kind::Pvc => "persistentvolumeclaims",
            Kind::Secret => "secrets",
            Kind::Lease => "leases",
        }
    }

    /// The `apiVersion` of its objects and lists.
    pub(crate) fn api_version(self) -> &'static str {
        match self {
            Kind::Lease => "coordination.k8s.io/v1",
            _ => "v1",
        }
    }

    /// The kind named by an ownerReference (`apiVersion`, `kind`), if the
    /// double stores it.
    pub(crate) fn from_reference(api_version: &str, kind: &str) -> Option<Kind> {
        [Kind::Pod, Kind::Pvc, Kind::Secret, Kind::Lease]
            .into_iter()
            .find(|k| k.api_version() == api_version && k.name() == kind)
    }

    /// The `kind` of one object.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Pod => "Pod",
            Kind::Pvc => "PersistentVolumeClaim",
            Kind::Secret => "Secret",
            Kind::Lease => "Lease",
        }
    }

    /// Field selector labels the apiserver accepts for this kind, beside
    /// `metadata.name` and `metadata.namespace`, with their JSON pointers.
    fn fields(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Kind::Pod => &[
                ("spec.nodeName", "/spec/nodeName"),
                ("spec.restartPolicy", "/spec/restartPolicy"),
                ("spec.schedulerName", "/spec/schedulerName"),
                ("spec.serviceAccountName", "/spec/serviceAccountName"),
                ("status.phase", "/status/phase"),
                ("status.podIP", "/status/podIP"),
                ("status.nominatedNodeName", "/status/nominatedNodeName"),
            ],
            Kind::Secret => &[("type", "/type")],
            Kind::Pvc | Kind::Lease => &[],
        }
    }
}

/// A stored kind: typed access to its table.
pub(crate) trait Object:
    k8s_openapi::Resource
    + k8s_openapi::Metadata<Ty = ObjectMeta>
    + Serialize
    + DeserializeOwned
    + Clone
    + Send
    + Sync
    + 'static
{
    /// Which kind this is.
    const STORED: Kind;
    /// Its table.
    fn table(state: &State) -> &BTreeMap<Key, Self>;
    /// Its table, mutably.
    fn table_mut(state: &mut State) -> &mut BTreeMap<Key, Self>;
}

impl Object for Pod {
    const STORED: Kind = Kind::Pod;
    fn table(state: &State) -> &BTreeMap<Key, Self> {
        &state.pods
    }
    fn table_mut(state: &mut State) -> &mut BTreeMap<Key, Self> {
        &mut state.pods
    }
}

impl Object for PersistentVolumeClaim {
    const STORED: Kind = Kind::Pvc;
    fn table(state: &State) -> &BTreeMap<Key, Self> {
        &state.pvcs
    }
    fn table_mut(state: &mut State) -> &mut BTreeMap<Key, Self> {
        &mut state.pvcs
    }
}

impl Object for Secret {
    const STORED: Kind = Kind::Secret;
    fn table(state: &State) -> &BTreeMap<Key, Self> {
        &state.secrets
    }
    fn table_mut(state: &mut State) -> &mut BTreeMap<Key, Self> {
        &mut state.secrets
    }
}

impl Object for Lease {
    const STORED: Kind = Kind::Lease;
    fn table(state: &State) -> &BTreeMap<Key, Self> {
        &state.leases
    }
    fn table_mut(state: &mut State) -> &mut BTreeMap<Key, Self> {
        &mut state.leases
    }
}

/// The key of an object.
pub(crate) fn key_of<K: Object>(obj: &K) -> Key {
    let meta = obj.metadata();
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// The current time as a Kubernetes timestamp.
pub(crate) fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// A watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as watches see it.
struct Event {
    rv: u64,
    kind: Kind,
    namespace: String,
    ty: EventType,
    object: Arc<Value>,
    /// The serialised object, shared by every watch that sends it.
    json: Arc<str>,
    /// The object before a MODIFIED change, to tell a watch with a selector
    /// that an object entered or left its selection.
    previous: Option<Arc<Value>>,
}

/// A watch line: `{"type":…,"object":…}` and a newline.
pub(crate) fn watch_line(ty: &str, object_json: &str) -> String {
    format!("{{\"type\":\"{ty}\",\"object\":{object_json}}}\n")
}

/// The objects, the counter and the history, behind the store's lock.
pub(crate) struct State {
    rv: u64,
    pub(crate) pods: BTreeMap<Key, Pod>,
    pub(crate) pvcs: BTreeMap<Key, PersistentVolumeClaim>,
    pub(crate) secrets: BTreeMap<Key, Secret>,
    pub(crate) leases: BTreeMap<Key, Lease>,
    events: VecDeque<Event>,
    /// A watch may resume from resourceVersion `r` only if `r >= compacted`.
    compacted: u64,
    history_limit: usize,
    changes: watch::Sender<u64>,
    versions: Versions,
}

/// Why an object could not be created.
#[derive(Debug)]
pub(crate) struct AlreadyExists;

impl State {
    /// The latest resourceVersion.
    pub(crate) fn rv(&self) -> u64 {
        self.rv
    }

    /// An object by key.
    pub(crate) fn get<K: Object>(&self, key: &Key) -> Option<&K> {
        K::table(self).get(key)
    }

    /// Stores a new object: stamps uid, creationTimestamp and
    /// resourceVersion, records ADDED.
    pub(crate) fn create<K: Object>(&mut self, mut obj: K) -> Result<K, AlreadyExists> {
        let key = key_of(&obj);
        if K::table(self).contains_key(&key) {
            return Err(AlreadyExists);
        }
        self.rv += 1;
        let meta = obj.metadata_mut();
        if meta.uid.as_deref().is_none_or(str::is_empty) {
            meta.uid = Some(new_uid());
        }
        meta.creation_timestamp = Some(now());
        meta.resource_version = Some(self.versions.text(self.rv));
        K::table_mut(self).insert(key, obj.clone());
        self.record::<K>(EventType::Added, &obj, None);
        Ok(obj)
    }

    /// Changes an object in place (if it exists and, when given, still has
    /// `uid`), bumps its resourceVersion and records MODIFIED.
    pub(crate) fn modify<K: Object>(
        &mut self,
        key: &Key,
        uid: Option<&str>,
        change: impl FnOnce(&mut K),
    ) -> Option<K> {
        let rv = self.rv + 1;
        let text = self.versions.text(rv);
        let obj = K::table_mut(self).get_mut(key)?;
        if uid.is_some() && obj.metadata().uid.as_deref() != uid {
            return None;
        }
        let previous = Arc::new(serde_json::to_value(&*obj).expect("objects serialise"));
        change(obj);
        obj.metadata_mut().resource_version = Some(text);
        let obj = obj.clone();
        self.rv = rv;
        self.record::<K>(EventType::Modified, &obj, Some(previous));
        Some(obj)
    }

    /// Removes an object (if it exists and, when given, still has `uid`),
    /// applies `last` (the final state the DELETED event carries) and
    /// records DELETED.
    pub(crate) fn remove<K: Object>(
        &mut self,
        key: &Key,
        uid: Option<&str>,
        last: impl FnOnce(&mut K),
    ) -> Option<K> {
        let current = K::table(self).get(key)?;
        if uid.is_some() && current.metadata().uid.as_deref() != uid {
            return None;
        }
        let mut obj = K::table_mut(self).remove(key)?;
        last(&mut obj);
        self.rv += 1;
        obj.metadata_mut().resource_version = Some(self.versions.text(self.rv));
        self.record::<K>(EventType::Deleted, &obj, None);
        Some(obj)
    }

    fn record<K: Object>(&mut self, ty: EventType, obj: &K, previous: Option<Arc<Value>>) {
        let object = serde_json::to_value(obj).expect("objects serialise");
        let json: Arc<str> = object.to_string().into();
        self.events.push_back(Event {
            rv: self.rv,
            kind: K::STORED,
            namespace: obj.metadata().namespace.clone().unwrap_or_default(),
            ty,
            object: Arc::new(object),
            json,
            previous,
        });
        while self.events.len() > self.history_limit {
            if let Some(dropped) = self.events.pop_front() {
                self.compacted = dropped.rv;
            }
        }
        self.changes.send_replace(self.rv);
    }
}

/// A watch asked for a resourceVersion older than the history.
#[derive(Debug)]
pub(crate) struct Expired {
    pub(crate) requested: u64,
    pub(crate) oldest: u64,
}

/// The store.
pub(crate) struct Store {
    state: Mutex<State>,
    changes: watch::Receiver<u64>,
    drops: watch::Sender<u64>,
    silence: watch::Sender<u64>,
}

impl Store {
    /// An empty store keeping at most `history_limit` events, writing
    /// resourceVersions as `versions` says.
    pub(crate) fn new(history_limit: usize, versions: Versions) -> Store {
        let (changes, changes_rx) = watch::channel(0);
        let (drops, _) = watch::channel(0);
        let (silence, _) = watch::channel(0);
        Store {
            state: Mutex::new(State {
                rv: 1,
                pods: BTreeMap::new(),
                pvcs: BTreeMap::new(),
                secrets: BTreeMap::new(),
                leases: BTreeMap::new(),
                events: VecDeque::new(),
                compacted: 0,
                history_limit: history_limit.max(1),
                changes,
                versions,
            }),
            changes: changes_rx,
            drops,
            silence,
        }
    }

    /// Locks the state, for reads and changes that must be atomic.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How versions are written for clients.
    pub(crate) fn versions(&self) -> Versions {
        self.lock().versions
    }

    /// A receiver woken on every change.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }

    /// A receiver woken when every watch must close.
    pub(crate) fn subscribe_drops(&self) -> watch::Receiver<u64> {
        self.drops.subscribe()
    }

    /// Closes every open watch stream.
    pub(crate) fn subscribe_silence(&self) -> watch::Receiver<u64> {
        self.silence.subscribe()
    }

    pub(crate) fn silence_watches(&self) {
        self.silence.send_modify(|n| *n += 1);
    }

    pub(crate) fn drop_watches(&self) {
        self.drops.send_modify(|generation| *generation += 1);
    }

    /// Forgets the event history: a watch from any resourceVersion before
    /// now gets 410 Gone.
    pub(crate) fn expire_history(&self) {
        let mut state = self.lock();
        state.events.clear();
        state.compacted = state.rv;
    }

    /// An object by namespace and name.
    pub(crate) fn get<K: Object>(&self, namespace: &str, name: &str) -> Option<K> {
        self.lock()
            .get::<K>(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Every object of a kind, in every namespace.
    pub(crate) fn all<K: Object>(&self) -> Vec<K> {
        K::table(&self.lock()).values().cloned().collect()
    }

    /// The objects matching `filter` (in `namespace`, or all), as JSON,
    /// and the resourceVersion of the list.
    pub(crate) fn list<K: Object>(
        &self,
        namespace: Option<&str>,
        filter: &Filter,
    ) -> (Vec<Value>, u64) {
        let state = self.lock();
        let items = K::table(&state)
            .iter()
            .filter(|((ns, _), _)| namespace.is_none_or(|n| n == ns))
            .map(|(_, obj)| serde_json::to_value(obj).expect("objects serialise"))
            .filter(|value| filter.matches(value))
            .collect();
        (items, state.rv)
    }

    /// Watch lines for the events after `since` of kind `kind` (in
    /// `namespace`, or all) that `filter` selects, and the resourceVersion
    /// the watch has now seen everything up to.
    pub(crate) fn events_since(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        since: u64,
        filter: &Filter,
    ) -> Result<(Vec<String>, u64), Expired> {
        let state = self.lock();
        if since < state.compacted {
            return Err(Expired {
                requested: since,
                oldest: state.compacted,
            });
        }
        let start = state.events.partition_point(|e| e.rv <= since);
        let mut lines = Vec::new();
        for event in state.events.range(start..) {
            if event.kind != kind || namespace.is_some_and(|n| n != event.namespace) {
                continue;
            }
            let now = filter.matches(&event.object);
            let ty = match event.ty {
                EventType::Modified => {
                    let before = event
                        .previous
                        .as_ref()
                        .is_some_and(|prev| filter.matches(prev));
                    match (before, now) {
                        (true, true) => Some(EventType::Modified),
                        (false, true) => Some(EventType::Added),
                        (true, false) => Some(EventType::Deleted),
                        (false, false) => None,
                    }
                }
                ty => now.then_some(ty),
            };
            if let Some(ty) = ty {
                lines.push(watch_line(ty.as_str(), &event.json));
            }
        }
        Ok((lines, state.rv))
    }
}

/// A random 64-bit number from std's randomly keyed hasher.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.finish()
}

/// A version-4-shaped UUID.
pub(crate) fn new_uid() -> String {
    let (a, b) = (random_u64(), random_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        ((b >> 48) & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

/// The suffix `generateName` appends: five characters from the alphabet
/// the apiserver uses (consonants and digits, a subset of `[a-z0-9]`).
pub(crate) fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = random_u64();
    (0..5)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
            n /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed label selector: every requirement must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LabelSelector(Vec<Requirement>);

impl LabelSelector {
    /// Parses `a=b,c!=d,e in (x,y),f notin (z),g,!h` (also `==`).
    pub(crate) fn parse(text: &str) -> Result<LabelSelector, String> {
        let mut terms = Vec::new();
        let (mut depth, mut start) = (0usize, 0usize);
        for (i, c) in text.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                ',' if depth == 0 => {
                    terms.push(&text[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        terms.push(&text[start..]);
        let mut requirements = Vec::new();
        for term in terms {
            let term = term.trim();
            if term.is_empty() {
                if text.trim().is_empty() {
                    continue;
                }
                return Err(format!(
                    "unable to parse requirement: found '', expected: identifier (in {text:?})"
                ));
            }
            requirements.push(parse_requirement(term)?);
        }
        Ok(LabelSelector(requirements))
    }

    /// Whether `labels` satisfy the selector.
    pub(crate) fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }
}

fn parse_requirement(term: &str) -> Result<Requirement, String> {
    let key_ok = |key: &str| -> Result<String, String> {
        crate::kube_double::validate::label_key_problem(key)
            .map(|problem| {
                format!("unable to parse requirement: invalid label key {key:?}: {problem}")
            })
            .map_or(Ok(key.to_owned()), Err)
    };
    let value_ok = |value: &str| -> Result<String, String> {
        crate::kube_double::validate::label_value_problem(value)
            .map(|problem| {
                format!("unable to parse requirement: invalid label value: {value:?}: {problem}")
            })
            .map_or(Ok(value.to_owned()), Err)
    };
    if let Some(key) = term.strip_prefix('!') {
        return Ok(Requirement::DoesNotExist(key_ok(key.trim())?));
    }
    if let Some(open) = term.find('(') {
        let close = term
            .rfind(')')
            .filter(|&c| c > open && term[c + 1..].trim().is_empty())
            .ok_or_else(|| format!("unable to parse requirement: unclosed '(' in {term:?}"))?;
        let head: Vec<&str> = term[..open].split_whitespace().collect();
        let values = term[open + 1..close]
            .split(',')
            .map(|v| value_ok(v.trim()))
            .collect::<Result<BTreeSet<_>, _>>()?;
        return match head.as_slice() {
            [key, "in"] => Ok(Requirement::In(key_ok(key)?, values)),
            [key, "notin"] => Ok(Requirement::NotIn(key_ok(key)?, values)),
            _ => Err(format!(
                "unable to parse requirement: expected 'in' or 'notin' in {term:?}"
            )),
        };
    }
    if let Some((k, v)) = term.split_once("!=") {
        return Ok(Requirement::NotEquals(
            key_ok(k.trim())?,
            value_ok(v.trim())?,
        ));
    }
    if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Ok(Requirement::Equals(key_ok(k.trim())?, value_ok(v.trim())?));
    }
    if term.contains(char::is_whitespace) {
        return Err(format!("unable to parse requirement: {term:?}"));
    }
    Ok(Requirement::Exists(key_ok(term)?))
}

/// A parsed field selector: `field=value`, `field==value`, `field!=value`.
#[derive(Debug, Clone, Default)]
pub(crate) struct FieldSelector(Vec<(&'static str, bool, String)>);

impl FieldSelector {
    /// Parses a field selector for `kind`; unsupported fields are errors,
    /// as on the apiserver.
    pub(crate) fn parse(kind: Kind, text: &str) -> Result<FieldSelector, String> {
        let mut out = Vec::new();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (f, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{text}'; can't understand '{term}'"
                ));
            };
            let field = field.trim();
            let pointer = match field {
                "metadata.name" => "/metadata/name",
                "metadata.namespace" => "/metadata/namespace",
                _ => kind
                    .fields()
                    .iter()
                    .find(|(name, _)| *name == field)
                    .map(|(_, pointer)| *pointer)
                    .ok_or_else(|| format!("field label not supported: {field}"))?,
            };
            out.push((pointer, equal, value.trim().to_owned()));
        }
        Ok(FieldSelector(out))
    }

    fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(pointer, equal, value)| {
            let actual = object
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or("");
            (actual == value) == *equal
        })
    }
}

/// What a list or watch selects.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    pub(crate) labels: LabelSelector,
    pub(crate) fields: FieldSelector,
}

impl Filter {
    /// Whether the object (as JSON) is selected.
    pub(crate) fn matches(&self, object: &Value) -> bool {
        let labels: BTreeMap<String, String> = object
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        self.labels.matches(&labels) && self.fields.matches(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_selectors_parse_and_match() {
        let l = labels(&[
            ("app", "hype"),
            ("tier", "batch"),
            ("hype.dev/session", "s1"),
        ]);
        let yes = [
            "",
            "app=hype",
            "app==hype",
            "app!=web",
            "missing!=x",
            "app",
            "!missing",
            "tier in (batch, web)",
            "tier notin (web)",
            "missing notin (web)",
            "app=hype,hype.dev/session=s1,tier in (batch)",
        ];
        for s in yes {
            assert!(LabelSelector::parse(s).unwrap().matches(&l), "{s}");
        }
        let no = [
            "app=web",
            "app!=hype",
            "!app",
            "missing",
            "tier in (web)",
            "missing in (web)",
            "tier notin (batch,web)",
            "app=hype,tier=web",
        ];
        for s in no {
            assert!(!LabelSelector::parse(s).unwrap().matches(&l), "{s}");
        }
        for bad in ["a=b,,c", "tier in (x", "a b", "a=-x", "tier within (x)"] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn field_selectors() {
        let obj = serde_json::json!({"metadata": {"name": "p", "namespace": "default"}, "status": {"phase": "Running"}});
        let f = FieldSelector::parse(Kind::Pod, "metadata.name=p,status.phase!=Failed").unwrap();
        assert!(f.matches(&obj));
        let f = FieldSelector::parse(Kind::Pod, "metadata.name==q").unwrap();
        assert!(!f.matches(&obj));
        assert!(
            FieldSelector::parse(Kind::Pvc, "status.phase=Bound")
                .unwrap_err()
                .contains("not supported")
        );
    }

    #[test]
    fn watches_see_objects_enter_and_leave_their_selection() {
        let store = Store::new(3, Versions::Numeric);
        let secret = |labels: serde_json::Value| -> Secret {
            serde_json::from_value(
                serde_json::json!({"metadata": {"name": "s", "namespace": "ns", "labels": labels}}),
            )
            .unwrap()
        };
        let start = store.lock().rv();
        store
            .lock()
            .create(secret(serde_json::json!({"a": "1"})))
            .unwrap();
        let key = ("ns".to_owned(), "s".to_owned());
        store.lock().modify::<Secret>(&key, None, |s| {
            s.metadata.labels = Some([("a".to_owned(), "2".to_owned())].into());
        });
        store.lock().modify::<Secret>(&key, None, |s| {
            s.metadata.labels = Some([("a".to_owned(), "1".to_owned())].into());
        });
        let filter = Filter {
            labels: LabelSelector::parse("a=1").unwrap(),
            ..Filter::default()
        };
        let (lines, _) = store
            .events_since(Kind::Secret, Some("ns"), start, &filter)
            .unwrap();
        let types: Vec<&str> = lines.iter().map(|l| &l[9..14]).collect();
        assert_eq!(types, ["ADDED", "DELET", "ADDED"]);
        // Three events kept: a fourth expires the first.
        store.lock().remove::<Secret>(&key, None, |_| {});
        let expired = store
            .events_since(Kind::Secret, None, start, &Filter::default())
            .unwrap_err();
        assert_eq!(expired.requested, start);
        assert!(
            store
                .events_since(Kind::Pod, None, start + 1, &Filter::default())
                .is_ok()
        );
    }

    #[test]
    fn opaque_versions_are_neither_numbers_nor_ordered_and_read_back() {
        let texts: Vec<String> = (1..=50).map(|rv| Versions::Opaque.text(rv)).collect();
        assert!(texts.iter().all(|t| t.parse::<u64>().is_err()), "{texts:?}");
        let mut sorted = texts.clone();
        sorted.sort();
        assert_ne!(sorted, texts, "not in the counter's order");
        for (rv, text) in (1..=50).zip(&texts) {
            assert_eq!(Versions::Opaque.parse(text), Some(rv));
        }
        assert_eq!(Versions::Opaque.parse("17"), None);
        assert_eq!(
            Versions::Numeric.parse(&Versions::Numeric.text(17)),
            Some(17)
        );
    }

    #[test]
    fn names_and_uids_have_their_shapes() {
        let s = random_suffix();
        assert_eq!(s.len(), 5);
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
        assert_ne!(random_suffix(), random_suffix());
        let uid = new_uid();
        assert_eq!(uid.len(), 36);
        assert_eq!(uid.as_bytes()[14], b'4');
    }
}
