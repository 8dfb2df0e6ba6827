//! The Redis scripts of the state store against the in-memory store: the
//! same random operations, the same answers. Starts a private
//! `redis-server` on a Unix socket of its own; skipped (with a note) when none is
//! installed (`apt-get install redis-server`, 7.0 or later).

use nudge_core::primitives::store::redis::{self, ScriptCall};
use nudge_core::primitives::store::{
    Bounded, ClaimRecord, CountOutcome, CountRequest, KeyLayout, MemoryStore, ReserveOutcome,
    ReserveRefusal, ReserveRequest, SetOutcome, StateStore, Window, WindowCounter,
};
use nudge_core::{Duration, Timestamp};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use std::cell::RefCell;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

/// A reply of the Redis protocol.
#[derive(Debug, Clone, PartialEq)]
enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

struct Server {
    child: Child,
    conn: BufReader<UnixStream>,
    /// The directory of its socket, made for it and removed with it.
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How long a private server may take to start or to answer: only a server
/// that is stuck waits this long, so it is generous for a busy machine.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(120);

impl Server {
    fn start() -> Option<Server> {
        // A Unix socket of its own per server, in a directory made for it
        // (`create_dir` fails on a name taken, even by another process
        // sharing the temporary directory): tests running at once never
        // meet on a port or a socket another picked.
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = loop {
            let dir = std::env::temp_dir().join(format!(
                "nudge-redis-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            match std::fs::create_dir(&dir) {
                Ok(()) => break dir,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("cannot make {}: {e}", dir.display()),
            }
        };
        let socket = dir.join("redis.sock");
        let mut child = match Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(&socket)
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => child,
            Err(_) => {
                let _ = std::fs::remove_dir_all(&dir);
                return None;
            }
        };
        // Waits for the socket as long as the server runs, up to `PATIENCE`:
        // a loaded machine may take seconds to start it.
        let deadline = Instant::now() + PATIENCE;
        let stream = loop {
            match UnixStream::connect(&socket) {
                Ok(s) => break s,
                Err(e) => {
                    let exited = child.try_wait().ok().flatten();
                    if exited.is_some() || Instant::now() >= deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        let _ = std::fs::remove_dir_all(&dir);
                        match exited {
                            Some(status) => panic!("redis-server exited ({status}): {e}"),
                            None => panic!("redis-server did not start in {PATIENCE:?}: {e}"),
                        }
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50))
                }
            }
        };
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut server = Server {
            child,
            conn: BufReader::new(stream),
            dir,
        };
        assert_eq!(server.command(&[b"PING"]), Reply::Status("PONG".into()));
        Some(server)
    }

    fn command(&mut self, parts: &[&[u8]]) -> Reply {
        let mut out = format!("*{}\r\n", parts.len()).into_bytes();
        for p in parts {
            out.extend_from_slice(format!("${}\r\n", p.len()).as_bytes());
            out.extend_from_slice(p);
            out.extend_from_slice(b"\r\n");
        }
        self.conn.get_mut().write_all(&out).unwrap();
        self.read()
    }

    fn read(&mut self) -> Reply {
        let mut line = String::new();
        self.conn.read_line(&mut line).unwrap();
        let (kind, rest) = line.trim_end().split_at(1);
        match kind {
            "+" => Reply::Status(rest.into()),
            "-" => Reply::Error(rest.into()),
            ":" => Reply::Int(rest.parse().unwrap()),
            "$" => {
                let n: i64 = rest.parse().unwrap();
                if n < 0 {
                    return Reply::Bulk(None);
                }
                let mut buf = vec![0; n as usize + 2];
                self.conn.read_exact(&mut buf).unwrap();
                buf.truncate(n as usize);
                Reply::Bulk(Some(buf))
            }
            "*" => {
                let n: usize = rest.parse().unwrap();
                Reply::Array((0..n).map(|_| self.read()).collect())
            }
            other => panic!("unexpected reply kind {other:?}"),
        }
    }

    fn eval(&mut self, call: &ScriptCall) -> Vec<Reply> {
        let nkeys = call.keys.len().to_string();
        let mut parts: Vec<&[u8]> = vec![b"EVAL", call.script.as_bytes(), nkeys.as_bytes()];
        parts.extend(call.keys.iter().map(|k| k.as_str().as_bytes()));
        parts.extend(call.args.iter().map(Vec::as_slice));
        match self.command(&parts) {
            Reply::Array(items) => items,
            other => panic!("script failed: {other:?}"),
        }
    }
}

fn text(r: &Reply) -> String {
    match r {
        Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
        Reply::Status(s) => s.clone(),
        other => panic!("not text: {other:?}"),
    }
}

fn int(r: &Reply) -> i64 {
    match r {
        Reply::Int(n) => *n,
        other => panic!("not an integer: {other:?}"),
    }
}

fn reserve_outcome(reply: &[Reply]) -> ReserveOutcome {
    match text(&reply[0]).as_str() {
        "reserved" => ReserveOutcome::Reserved {
            serial: int(&reply[1]) as u64,
        },
        "duplicate" => {
            let Reply::Bulk(Some(record)) = &reply[1] else {
                panic!("{reply:?}")
            };
            let colon = record.iter().position(|&b| b == b':').unwrap();
            ReserveOutcome::Duplicate(ClaimRecord {
                serial: std::str::from_utf8(&record[..colon])
                    .unwrap()
                    .parse()
                    .unwrap(),
                payload: record[colon + 1..].to_vec(),
            })
        }
        "refused" => ReserveOutcome::Refused {
            reason: match text(&reply[1]).as_str() {
                "per_user" => ReserveRefusal::PerUser,
                "stock" => ReserveRefusal::Stock,
                "budget" => ReserveRefusal::Budget,
                other => panic!("{other}"),
            },
            user_count: int(&reply[2]) as u32,
        },
        other => panic!("{other}"),
    }
}

fn count_outcome(reply: &[Reply]) -> CountOutcome {
    match text(&reply[0]).as_str() {
        "counted" => CountOutcome::Counted(reply[1..].iter().map(|r| int(r) as u32).collect()),
        "full" => CountOutcome::Full {
            index: int(&reply[1]) as usize,
            count: int(&reply[2]) as u32,
        },
        other => panic!("{other}"),
    }
}

fn set_outcome(reply: &[Reply]) -> SetOutcome {
    match text(&reply[0]).as_str() {
        "set" => SetOutcome::Set,
        "exists" => {
            let Reply::Bulk(Some(v)) = &reply[1] else {
                panic!("{reply:?}")
            };
            SetOutcome::Exists(v.clone())
        }
        other => panic!("{other}"),
    }
}

/// One random operation.
#[derive(Debug, Clone)]
enum Op {
    Reserve {
        user: u8,
        occasion: u8,
        stock: Option<u64>,
        budget: Option<(Option<u64>, u64)>,
        per_user: Option<(u32, Option<i64>)>,
        payload: Vec<u8>,
    },
    Count {
        user: u8,
        counters: Vec<(u8, u32, Option<i64>)>,
    },
    Set {
        key: u8,
        value: Vec<u8>,
    },
}

/// The window of cap `c`: each key has one window, as a declared cap has.
fn cap_window(c: u8) -> Option<i64> {
    [None, Some(700), Some(2_000), Some(4_500)][usize::from(c % 4)]
}

fn op() -> impl Strategy<Value = (Op, i64)> {
    let reserve = (
        0u8..4,
        0u8..2,
        prop::option::of(0u64..6),
        prop::option::of((prop::option::of(0u64..100), 0u64..30)),
        prop::option::of((0u32..3, prop::option::of(Just(1_500i64)))),
        prop::collection::vec(any::<u8>(), 0..6),
    )
        .prop_map(
            |(user, occasion, stock, budget, per_user, payload)| Op::Reserve {
                user,
                occasion,
                stock,
                budget,
                per_user,
                payload,
            },
        );
    let count =
        (0u8..3, prop::collection::vec((0u8..4, 0u32..4), 1..4)).prop_map(|(user, mut caps)| {
            caps.sort_by_key(|c| c.0);
            caps.dedup_by_key(|c| c.0);
            let counters = caps
                .into_iter()
                .map(|(c, limit)| (c, limit, cap_window(c)))
                .collect();
            Op::Count { user, counters }
        });
    let set = (0u8..3, prop::collection::vec(any::<u8>(), 0..4))
        .prop_map(|(key, value)| Op::Set { key, value });
    (prop_oneof![3 => reserve, 3 => count, 1 => set], 0i64..1_500)
}

fn window(w: Option<i64>, far: Timestamp) -> Window {
    match w {
        Some(ms) => Window::Rolling(Duration::from_millis(ms)),
        // Fixed windows expire after the test: both clocks agree on that.
        None => Window::Fixed {
            expires_at: Some(far),
        },
    }
}

/// A private server for one test, stopped when the test ends (even by a
/// panic); `None` when `redis-server` is not installed.
fn server() -> Option<Server> {
    if Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: redis-server is not installed");
        return None;
    }
    Server::start()
}

fn run(ops: &[(Op, i64)], server: &mut Server) -> Result<(), TestCaseError> {
    assert_eq!(server.command(&[b"FLUSHALL"]), Reply::Status("OK".into()));
    let memory = MemoryStore::new();
    let keys = KeyLayout::default();
    // The operations' clock starts an hour ahead of the real time and moves
    // on by the steps drawn, so the server's own clock never reaches a key's
    // expiry during the run: windows then end only where the scripts say
    // (scores against the caller's `now`), as in the memory store. Started
    // at the real time, a stall of the machine longer than a 700 ms window
    // between two operations would let the server expire a counter (or
    // delete it as a `PEXPIREAT` in its past is set) that the memory store
    // still counts, and the two would disagree for no fault of the scripts.
    // Expiry on the server's clock is `expired_records_are_gone_on_both`.
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 3_600_000;
    let far = Timestamp::from_millis(start + 86_400_000);
    let mut now = start;
    for (i, (op, dt)) in ops.iter().enumerate() {
        now += dt;
        let at = Timestamp::from_millis(now);
        match op {
            Op::Reserve {
                user,
                occasion,
                stock,
                budget,
                per_user,
                payload,
            } => {
                let user = format!("u{user}");
                let req = ReserveRequest {
                    claim: keys.coupon_claim("t", 0, "c", &user, &occasion.to_string()),
                    claim_ttl: None,
                    stock: Bounded {
                        key: keys.coupon_stock("t", 0),
                        limit: *stock,
                    },
                    budget: budget.map(|(limit, cost)| {
                        (
                            Bounded {
                                key: keys.coupon_budget("t", 0),
                                limit,
                            },
                            cost,
                        )
                    }),
                    per_user: per_user.map(|(limit, w)| WindowCounter {
                        key: keys.coupon_user(
                            "t",
                            0,
                            &user,
                            if w.is_some() { "" } else { "fixed" },
                        ),
                        limit,
                        window: window(w, far),
                    }),
                    payload: payload.clone(),
                    now: at,
                };
                let want = memory.reserve(&req).unwrap();
                let got = reserve_outcome(&server.eval(&redis::reserve(&req)));
                prop_assert_eq!(got, want, "op {}: {:?}", i, op);
                // The claimant's count, read as a person's other name is.
                if let Some(counter) = &req.per_user {
                    let want = memory.window_count(counter, at).unwrap();
                    let got = int(&server.eval(&redis::window_count(counter, at))[0]);
                    prop_assert_eq!(got, i64::from(want), "count after op {}: {:?}", i, op);
                }
            }
            Op::Count { user, counters } => {
                let user = format!("u{user}");
                let req = CountRequest {
                    counters: counters
                        .iter()
                        .map(|&(cap, limit, w)| WindowCounter {
                            key: keys.cap(
                                &user,
                                &format!("cap{cap}"),
                                if w.is_some() { "" } else { "fixed" },
                            ),
                            limit,
                            window: window(w, far),
                        })
                        .collect(),
                    event: format!("e{i}").into(),
                    now: at,
                };
                let want = memory.check_and_count(&req).unwrap();
                let got = count_outcome(&server.eval(&redis::check_and_count(&req)));
                prop_assert_eq!(got, want, "op {}: {:?}", i, op);
            }
            Op::Set { key, value } => {
                let key = keys.once(&format!("k{key}"), "u0");
                let want = memory.set_if_absent(&key, value, None, at).unwrap();
                let got = set_outcome(&server.eval(&redis::set_if_absent(&key, value, None, at)));
                prop_assert_eq!(got, want, "op {}: {:?}", i, op);
            }
        }
    }
    Ok(())
}

#[test]
fn redis_scripts_agree_with_the_memory_store() {
    let Some(server) = server() else { return };
    let server = RefCell::new(server);
    let mut runner = TestRunner::new(ProptestConfig::with_cases(32));
    let result = runner.run(&prop::collection::vec(op(), 1..60), |ops| {
        run(&ops, &mut server.borrow_mut())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Expiry by `PXAT` follows the caller's clock as the memory store does,
/// for claims and records whose expiry has passed on the server too.
#[test]
fn expired_records_are_gone_on_both() {
    let Some(mut server) = server() else { return };
    let keys = KeyLayout::default();
    let key = keys.once("camp", "u1");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // Set one second in the past with a 500 ms ttl: expired for both.
    let then = Timestamp::from_millis(now - 1_000);
    let ttl = Some(Duration::from_millis(500));
    let call = redis::set_if_absent(&key, b"a", ttl, then);
    assert_eq!(set_outcome(&server.eval(&call)), SetOutcome::Set);
    let again = redis::set_if_absent(&key, b"b", None, Timestamp::from_millis(now));
    assert_eq!(set_outcome(&server.eval(&again)), SetOutcome::Set);
    let memory = MemoryStore::new();
    memory.set_if_absent(&key, b"a", ttl, then).unwrap();
    assert_eq!(
        memory
            .set_if_absent(&key, b"b", None, Timestamp::from_millis(now))
            .unwrap(),
        SetOutcome::Set
    );
}
