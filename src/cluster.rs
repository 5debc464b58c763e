//! The cluster bus (issue 20, docs/cluster.md §2): several hub instances behind a
//! load balancer, sharing one Redis, hand each other live deliveries.
//!
//! - **Instance id**: 12 lowercase hex characters, random at start
//!   ([`crate::random::hex`]), or one given by the caller (`[a-z0-9-]{1,32}`).
//! - **Heartbeat** (thread `cluster-heartbeat`, every [`HEARTBEAT`]): one
//!   pipeline — `ZADD mcp:cluster:instances <now ms> <id>`, the members
//!   older than [`FORGET_AFTER`] removed (`ZREMRANGEBYSCORE`), the peers read
//!   back (`ZRANGEBYSCORE` of the last [`PEER_WINDOW`]), and the
//!   stream-holder records of this instance's open GET streams refreshed.
//!   At shutdown the instance leaves the set (`ZREM`).
//! - **Subscriber** (thread `cluster-sub`, kind `listen`): its own
//!   connection (not pooled), `SUBSCRIBE mcp:cluster:all mcp:cluster:to:<id>`,
//!   a [`SUB_READ_TIMEOUT`] read timeout so it sees the stop; on an error it
//!   reconnects after a jittered back-off (100 ms doubling to 5 s), counted.
//!   Each message is handed to the hub's handler on this thread: the handler
//!   only queues or starts a short thread, never blocks.
//! - **Publishing** goes through the pool and breaker ([`RedisStore::run`]);
//!   a publish that fails is counted and dropped (the caller falls back).
//!   Messages are live-only (pub/sub): nobody listening → nothing kept.
//! - **Forward** ([`Cluster::forward`]): a request to one instance with a
//!   correlation id, answered by a [`Delivery::Reply`]; a dead owner (no
//!   subscriber on its channel: `PUBLISH` answers 0) fails at once, a silent
//!   one at the caller's deadline — never later.
//! - **Stream holders**: `mcp:client:stream:{<sha256 of session id>}` → the
//!   instance holding the session's standalone GET stream, TTL [`STREAM_TTL`],
//!   refreshed on the heartbeat while open, compare-and-deleted at close.
//!
//! Invariant: nothing here is on the path of a request that involves no
//! other instance; a Redis that is down costs each bus operation at most the
//! pool's timeouts (the breaker answers at once while open). No session id
//! appears in a key unhashed, a log line or a metric label.

use crate::metrics::ClusterFigures;
use crate::store::redis::RedisStore;
use crate::threads::{Kind, Stop, Threads};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How often an instance says it is alive (and refreshes its stream holds).
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// Instances seen within this window are peers.
pub const PEER_WINDOW: Duration = Duration::from_secs(15);
/// Instances silent this long are removed from the set.
pub const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// TTL of a stream-holder record (refreshed every [`HEARTBEAT`]).
pub const STREAM_TTL: Duration = Duration::from_secs(15);
/// The subscriber's read timeout: how soon it sees a stop.
pub const SUB_READ_TIMEOUT: Duration = Duration::from_secs(1);
/// First and longest pause before the subscriber reconnects.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Most forwards waiting for their replies at once.
const MAX_WAITING: usize = 10_000;

/// The sorted set of instances (member = id, score = last heartbeat, unix ms).
pub const INSTANCES_KEY: &str = "mcp:cluster:instances";
/// The broadcast channel.
pub const ALL_CHANNEL: &str = "mcp:cluster:all";
/// The prefix of an instance's own channel (`mcp:cluster:to:<id>`).
pub const TO_PREFIX: &str = "mcp:cluster:to:";

/// Sets the stream-holder key to ARGV[1] (PX ARGV[2]) unless another
/// instance holds it; 1 when set.
const HOLD_LUA: &str = r"
local v = redis.call('GET', KEYS[1])
if (not v) or v == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
";

/// One message on the bus (JSON, tag `t`; docs/cluster.md §2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t")]
pub enum Delivery {
    /// A notification an upstream sent outside any call (broadcast): applied
    /// on receipt, never broadcast again.
    UpstreamNotification {
        /// The server's name.
        server: String,
        /// The notification as the upstream sent it.
        message: Value,
    },
    /// A message for the standalone GET stream of legacy client session
    /// `session` (sent to the instance holding it).
    ToSession {
        /// The client session id.
        session: String,
        /// The JSON-RPC message, as the client gets it.
        message: Value,
    },
    /// A client's JSON-RPC response to a hub id minted by the receiving
    /// instance; claimed there with the same session (and user) check.
    ClientAnswer {
        /// The client session that POSTed it.
        session: String,
        /// Its user (`None`: anonymous).
        user: Option<String>,
        /// The JSON-RPC response.
        message: Value,
    },
    /// A legacy client session was deleted (broadcast).
    SessionEnded {
        /// The client session id.
        session: String,
    },
    /// A request to the owner of some state (`kind` `"mrtr"`: a retry of a
    /// parked call), answered with a [`Delivery::Reply`] to `from`.
    Forward {
        /// The asking instance.
        from: String,
        /// Its correlation id.
        corr: u64,
        /// What is asked (`"mrtr"`).
        kind: String,
        /// The request.
        body: Value,
    },
    /// The answer to a [`Delivery::Forward`].
    Reply {
        /// The forward's correlation id.
        corr: u64,
        /// The answer.
        body: Value,
    },
}

/// The `kind` label values of `mcphub_cluster_deliveries_total`, in
/// [`Delivery::index`] order.
pub const KINDS: [&str; 6] = ["upstream_notification", "to_session", "client_answer", "session_ended", "forward", "reply"];

/// The `cause` label values of `mcphub_cluster_forward_failures_total`.
pub const FORWARD_CAUSES: [&str; 3] = ["no_receiver", "timeout", "unavailable"];

impl Delivery {
    fn index(&self) -> usize {
        match self {
            Delivery::UpstreamNotification { .. } => 0,
            Delivery::ToSession { .. } => 1,
            Delivery::ClientAnswer { .. } => 2,
            Delivery::SessionEnded { .. } => 3,
            Delivery::Forward { .. } => 4,
            Delivery::Reply { .. } => 5,
        }
    }
}

/// What goes on the wire: the sender and the delivery.
#[derive(Serialize, Deserialize)]
struct Envelope {
    /// The sending instance.
    by: String,
    #[serde(flatten)]
    delivery: Delivery,
}

/// Why a [`Cluster::forward`] got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    /// No instance listens on the owner's channel (it is gone).
    #[error("the owning instance is not running")]
    NoReceiver,
    /// The owner did not answer before the deadline.
    #[error("the owning instance did not answer in time")]
    Timeout,
    /// Redis could not be used (breaker open, error), or too many forwards wait.
    #[error("the cluster bus is unavailable")]
    Unavailable,
}

impl ForwardError {
    fn index(self) -> usize {
        match self {
            ForwardError::NoReceiver => 0,
            ForwardError::Timeout => 1,
            ForwardError::Unavailable => 2,
        }
    }
}

/// Receives each delivery from another instance: `(from, delivery)`. Runs on
/// the subscriber thread: it must only queue or start a short thread.
pub type Handler = Arc<dyn Fn(&str, Delivery) + Send + Sync>;

/// A peer: its id and the age of its last heartbeat (ms) when read.
type Peer = (String, u64);

/// This instance on the cluster bus. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    id: String,
    redis: RedisStore,
    handler: std::sync::OnceLock<Handler>,
    /// Peers (id, age ms) as of `peers_at`.
    peers: Mutex<(Option<Instant>, Vec<Peer>)>,
    /// Forwards waiting for their replies, by correlation id.
    waiting: Mutex<HashMap<u64, crossbeam_channel::Sender<Value>>>,
    next_corr: AtomicU64,
    /// Sessions whose standalone GET stream this instance holds.
    held: Mutex<HashSet<String>>,
    subscribed: AtomicBool,
    sent: [AtomicU64; KINDS.len()],
    received: [AtomicU64; KINDS.len()],
    publish_failures: AtomicU64,
    forward_failures: [AtomicU64; FORWARD_CAUSES.len()],
    reconnects: AtomicU64,
    release: redis::Script,
}

/// Whether `id` is a valid configured instance id (`[a-z0-9-]{1,32}`).
pub fn valid_instance_id(id: &str) -> bool {
    (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The channel of one instance.
pub fn channel_of(instance: &str) -> String {
    format!("{TO_PREFIX}{instance}")
}

/// The stream-holder key of a client session (its id hashed, in a hash tag).
pub fn stream_key(session: &str) -> String {
    use sha2::{Digest, Sha256};
    format!("mcp:client:stream:{{{}}}", hex::encode(Sha256::digest(session.as_bytes())))
}

impl Cluster {
    /// Joins the bus: picks the instance id (`instance`, else random), starts
    /// the heartbeat and subscriber threads under `threads` (the hub's owner:
    /// they end at its shutdown). `redis` publishes and opens the
    /// subscriber's own connection (`RedisStore::open_dedicated`: the current
    /// primary, through Sentinel when configured). Never fails: a Redis that is down makes
    /// the subscriber retry and every publish fail (counted).
    pub fn start(redis: RedisStore, instance: Option<String>, threads: &Threads) -> Cluster {
        let id = instance.filter(|i| valid_instance_id(i)).unwrap_or_else(crate::random::hex::<6>);
        let inner = Arc::new(Inner {
            id,
            redis,
            handler: std::sync::OnceLock::new(),
            peers: Mutex::new((None, Vec::new())),
            waiting: Mutex::new(HashMap::new()),
            next_corr: AtomicU64::new(1),
            held: Mutex::new(HashSet::new()),
            subscribed: AtomicBool::new(false),
            sent: Default::default(),
            received: Default::default(),
            publish_failures: AtomicU64::new(0),
            forward_failures: Default::default(),
            reconnects: AtomicU64::new(0),
            // Deletes the stream-holder key only if ARGV[1] (this instance) holds it.
            release: redis::Script::new(crate::store::redis::UNLOCK_LUA),
        });
        log::info!("cluster: this instance is '{}'", inner.id);
        let weak = Arc::downgrade(&inner);
        if let Err(e) = threads.spawn_owned("cluster-heartbeat", Kind::Poller, move |stop| heartbeat_loop(weak, stop)) {
            log::warn!("cluster: cannot start the heartbeat thread: {e}");
        }
        let (weak, store) = (Arc::downgrade(&inner), inner.redis.clone());
        if let Err(e) = threads.spawn_owned("cluster-sub", Kind::Listen, move |stop| subscriber_loop(weak, &store, stop)) {
            log::warn!("cluster: cannot start the subscriber thread: {e}");
        }
        Cluster { inner }
    }

    /// This instance's id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// Sets who receives deliveries from other instances (once; later calls
    /// are ignored). Until set, deliveries other than replies are dropped.
    pub fn set_handler(&self, handler: Handler) {
        let _ = self.inner.handler.set(handler);
    }

    /// Publishes `d` to every other instance (`PUBLISH mcp:cluster:all`; the
    /// sender skips its own on receipt). One Redis round trip; a failure is
    /// counted and dropped.
    pub fn broadcast(&self, d: &Delivery) {
        self.inner.publish(ALL_CHANNEL, d);
    }

    /// Publishes `d` to `instance` (`PUBLISH mcp:cluster:to:<id>`); false when
    /// nobody received it (the instance is gone) or Redis failed.
    pub fn send(&self, instance: &str, d: &Delivery) -> bool {
        self.inner.publish(&channel_of(instance), d) > 0
    }

    /// Asks `instance` (a [`Delivery::Forward`] of `kind` with `body`) and
    /// waits for its [`Delivery::Reply`] until `deadline`.
    ///
    /// Errors: [`ForwardError::NoReceiver`] at once when the instance does
    /// not listen, [`ForwardError::Timeout`] at `deadline`,
    /// [`ForwardError::Unavailable`] when Redis cannot be used. Each is counted
    /// (`mcphub_cluster_forward_failures_total{cause}`).
    pub fn forward(&self, instance: &str, kind: &str, body: Value, deadline: Instant) -> Result<Value, ForwardError> {
        let result = self.inner.forward(instance, kind, body, deadline);
        if let Err(e) = result {
            self.inner.forward_failures[e.index()].fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Answers a forward from `to` (its correlation id `corr`).
    pub fn reply(&self, to: &str, corr: u64, body: Value) {
        if !self.send(to, &Delivery::Reply { corr, body }) {
            log::debug!("cluster: a reply to '{to}' found nobody listening");
        }
    }

    /// Other live instances: (id, milliseconds since their last heartbeat),
    /// as of the last heartbeat of this one (≤ [`HEARTBEAT`] old).
    pub fn peers(&self) -> Vec<(String, u64)> {
        let p = self.inner.peers.lock();
        let since = p.0.map_or(0, |at| at.elapsed().as_millis() as u64);
        p.1.iter().map(|(id, age)| (id.clone(), age + since)).collect()
    }

    /// Whether `instance` is this one or was a live peer at the last heartbeat.
    pub fn is_alive(&self, instance: &str) -> bool {
        instance == self.inner.id || self.inner.peers.lock().1.iter().any(|(id, _)| id == instance)
    }

    /// The instance holding `session`'s standalone GET stream (`GET`, one
    /// round trip); `None` when none does or Redis failed.
    pub fn stream_holder(&self, session: &str) -> Option<String> {
        let key = stream_key(session);
        self.inner.redis.run(|c| redis::cmd("GET").arg(&key).query::<Option<String>>(c)).ok().flatten()
    }

    /// Records that this instance holds `session`'s GET stream (one round
    /// trip; refreshed on the heartbeat until [`Cluster::release_stream`]).
    pub fn hold_stream(&self, session: &str) {
        self.inner.held.lock().insert(session.to_string());
        let key = stream_key(session);
        let ms = STREAM_TTL.as_millis() as u64;
        let id = &self.inner.id;
        // A newer GET elsewhere wins: this one takes the record over.
        let r = self.inner.redis.run(|c| redis::cmd("SET").arg(&key).arg(id).arg("PX").arg(ms).query::<()>(c));
        if let Err(e) = r {
            log::debug!("cluster: cannot record a stream holder: {e}");
        }
    }

    /// Drops the hold of `session`'s GET stream (compare-and-delete: a record
    /// another instance took over stays).
    pub fn release_stream(&self, session: &str) {
        self.inner.held.lock().remove(session);
        let key = stream_key(session);
        let r = self.inner.redis.run(|c| self.inner.release.key(&key).arg(&self.inner.id).invoke::<i64>(c));
        if let Err(e) = r {
            log::debug!("cluster: cannot release a stream holder: {e}");
        }
    }

    /// Whether the subscriber is subscribed now.
    pub fn subscribed(&self) -> bool {
        self.inner.subscribed.load(Ordering::Relaxed)
    }

    /// The figures of `/metrics` and `/readyz`.
    pub fn figures(&self) -> ClusterFigures {
        let i = &self.inner;
        let load = |a: &[AtomicU64]| a.iter().map(|n| n.load(Ordering::Relaxed)).collect::<Vec<u64>>();
        let (sent, received, failures) = (load(&i.sent), load(&i.received), load(&i.forward_failures));
        ClusterFigures {
            instance: i.id.clone(),
            peers: self.peers().len(),
            sent: KINDS.iter().copied().zip(sent).collect(),
            received: KINDS.iter().copied().zip(received).collect(),
            publish_failures: i.publish_failures.load(Ordering::Relaxed),
            forward_failures: FORWARD_CAUSES.iter().copied().zip(failures).collect(),
            subscriber_reconnects: i.reconnects.load(Ordering::Relaxed),
            subscribed: self.subscribed(),
        }
    }
}

impl Inner {
    /// PUBLISH; the number of receivers (0 on failure, counted).
    fn publish(&self, channel: &str, d: &Delivery) -> i64 {
        let env = Envelope { by: self.id.clone(), delivery: d.clone() };
        let Ok(text) = serde_json::to_string(&env) else { return 0 };
        match self.redis.run(|c| redis::cmd("PUBLISH").arg(channel).arg(&text).query::<i64>(c)) {
            Ok(n) => {
                self.sent[d.index()].fetch_add(1, Ordering::Relaxed);
                n
            }
            Err(e) => {
                self.publish_failures.fetch_add(1, Ordering::Relaxed);
                log::debug!("cluster: publish failed: {e}");
                0
            }
        }
    }

    fn forward(&self, instance: &str, kind: &str, body: Value, deadline: Instant) -> Result<Value, ForwardError> {
        let corr = self.next_corr.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = crossbeam_channel::bounded(1);
        {
            let mut waiting = self.waiting.lock();
            if waiting.len() >= MAX_WAITING {
                return Err(ForwardError::Unavailable);
            }
            waiting.insert(corr, tx);
        }
        let d = Delivery::Forward { from: self.id.clone(), corr, kind: kind.to_string(), body };
        let failures_before = self.publish_failures.load(Ordering::Relaxed);
        let outcome = if self.publish(&channel_of(instance), &d) == 0 {
            if self.publish_failures.load(Ordering::Relaxed) != failures_before {
                Err(ForwardError::Unavailable)
            } else {
                Err(ForwardError::NoReceiver)
            }
        } else {
            rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).map_err(|_| ForwardError::Timeout)
        };
        self.waiting.lock().remove(&corr);
        outcome
    }

    /// One message from the subscriber.
    fn receive(&self, channel: &str, payload: &[u8]) {
        let env: Envelope = match serde_json::from_slice(payload) {
            Ok(e) => e,
            Err(e) => {
                log::debug!("cluster: a message that is not a delivery on {channel}: {e}");
                return;
            }
        };
        if env.by == self.id {
            return; // our own broadcast
        }
        self.received[env.delivery.index()].fetch_add(1, Ordering::Relaxed);
        match env.delivery {
            Delivery::Reply { corr, body } => {
                if let Some(tx) = self.waiting.lock().remove(&corr) {
                    let _ = tx.try_send(body);
                }
            }
            d => match self.handler.get() {
                Some(h) => h(&env.by, d),
                None => log::debug!("cluster: a delivery arrived before the hub was ready; dropped"),
            },
        }
    }

    /// One heartbeat: ZADD, forget the long-silent, read the peers, refresh
    /// the held stream records — one pipeline.
    fn beat(&self) {
        let now = crate::store::now_ms();
        let held: Vec<String> = self.held.lock().iter().cloned().collect();
        let ttl = STREAM_TTL.as_millis() as u64;
        let reply = self.redis.run(|c| {
            let mut p = redis::pipe();
            p.cmd("ZADD").arg(INSTANCES_KEY).arg(now).arg(&self.id).ignore();
            p.cmd("ZREMRANGEBYSCORE").arg(INSTANCES_KEY).arg("-inf").arg(now.saturating_sub(FORGET_AFTER.as_millis() as u64)).ignore();
            p.cmd("ZRANGEBYSCORE").arg(INSTANCES_KEY).arg(now.saturating_sub(PEER_WINDOW.as_millis() as u64)).arg("+inf").arg("WITHSCORES");
            for s in &held {
                p.cmd("EVAL").arg(HOLD_LUA).arg(1).arg(stream_key(s)).arg(&self.id).arg(ttl);
            }
            p.query::<Vec<redis::Value>>(c)
        });
        match reply {
            Ok(replies) => {
                let mut replies = replies.into_iter();
                let flat: Vec<String> = replies.next().and_then(|v| redis::from_redis_value(v).ok()).unwrap_or_default();
                let held_replies: Vec<i64> = replies.map(|v| redis::from_redis_value(v).unwrap_or(0)).collect();
                let peers = flat
                    .chunks(2)
                    .filter_map(|pair| match pair {
                        [id, score] if *id != self.id => Some((id.clone(), now.saturating_sub(score.parse::<f64>().unwrap_or(0.0) as u64))),
                        _ => None,
                    })
                    .collect();
                *self.peers.lock() = (Some(Instant::now()), peers);
                // A record another instance took over: that GET stream is newer.
                let lost: Vec<&String> = held.iter().zip(held_replies.iter()).filter(|(_, r)| **r == 0).map(|(s, _)| s).collect();
                if !lost.is_empty() {
                    let mut h = self.held.lock();
                    for s in lost {
                        h.remove(s);
                    }
                }
            }
            Err(e) => log::debug!("cluster: heartbeat failed: {e}"),
        }
    }
}

/// Every [`HEARTBEAT`] (the first at once) until stopped; leaves the set at the end.
fn heartbeat_loop(cluster: Weak<Inner>, stop: &Stop) {
    loop {
        let Some(inner) = cluster.upgrade() else { return };
        inner.beat();
        drop(inner);
        if stop.sleep(HEARTBEAT) {
            if let Some(inner) = cluster.upgrade() {
                let _ = inner.redis.run(|c| redis::cmd("ZREM").arg(INSTANCES_KEY).arg(&inner.id).query::<i64>(c));
            }
            return;
        }
    }
}

/// Subscribes and hands each message over until stopped, reconnecting with
/// a jittered back-off.
fn subscriber_loop(cluster: Weak<Inner>, store: &RedisStore, stop: &Stop) {
    let mut backoff = BACKOFF_MIN;
    let mut first = true;
    loop {
        if stop.is_stopped() {
            return;
        }
        let Some(own) = cluster.upgrade().map(|i| channel_of(&i.id)) else { return };
        if !first {
            if let Some(i) = cluster.upgrade() {
                i.reconnects.fetch_add(1, Ordering::Relaxed);
            }
        }
        first = false;
        match store.open_dedicated() {
            Ok(mut conn) => {
                let mut ps = conn.as_pubsub();
                let subscribed = ps.set_read_timeout(Some(SUB_READ_TIMEOUT)).and_then(|_| ps.subscribe(&[ALL_CHANNEL, own.as_str()]));
                match subscribed {
                    Ok(()) => {
                        backoff = BACKOFF_MIN;
                        if let Some(i) = cluster.upgrade() {
                            i.subscribed.store(true, Ordering::Relaxed);
                        }
                        loop {
                            if stop.is_stopped() {
                                return;
                            }
                            match ps.get_message() {
                                Ok(msg) => {
                                    let Some(i) = cluster.upgrade() else { return };
                                    i.receive(msg.get_channel_name(), msg.get_payload_bytes());
                                }
                                Err(e) if e.is_timeout() => {}
                                Err(e) => {
                                    log::debug!("cluster: subscriber connection lost: {:?}", e.kind());
                                    break;
                                }
                            }
                        }
                    }
                    Err(e) => log::debug!("cluster: cannot subscribe: {:?}", e.kind()),
                }
            }
            Err(e) => log::debug!("cluster: cannot connect the subscriber: {e}"),
        }
        if let Some(i) = cluster.upgrade() {
            i.subscribed.store(false, Ordering::Relaxed);
        }
        if stop.sleep(crate::random::jittered(backoff)) {
            return;
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deliveries_round_trip_with_their_tag() {
        let d = Delivery::ClientAnswer { session: "s".into(), user: None, message: json!({"id": "mcphub-rab.1", "result": {}}) };
        let env = Envelope { by: "abc".into(), delivery: d.clone() };
        let text = serde_json::to_string(&env).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!((v["t"].as_str(), v["by"].as_str()), (Some("ClientAnswer"), Some("abc")), "{text}");
        let back: Envelope = serde_json::from_str(&text).unwrap();
        assert_eq!(back.delivery, d);
        let f = Delivery::Forward { from: "x".into(), corr: 3, kind: "mrtr".into(), body: json!({"a": 1}) };
        let text = serde_json::to_string(&Envelope { by: "x".into(), delivery: f.clone() }).unwrap();
        assert_eq!(serde_json::from_str::<Envelope>(&text).unwrap().delivery, f, "{text}");
    }

    #[test]
    fn instance_ids_and_keys() {
        assert!(valid_instance_id("a1-b2") && !valid_instance_id("") && !valid_instance_id("A") && !valid_instance_id(&"a".repeat(33)));
        let k = stream_key("secret-session");
        assert!(k.starts_with("mcp:client:stream:{") && k.ends_with('}') && !k.contains("secret"), "{k}");
        assert_eq!(channel_of("abc"), "mcp:cluster:to:abc");
        let j = crate::random::jittered(Duration::from_millis(1000));
        assert!(j >= Duration::from_millis(800) && j <= Duration::from_millis(1200));
    }
}
