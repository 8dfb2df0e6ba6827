//! Writes realistic example input for the storefront campaign: user
//! profiles and a day of shop events, as JSON lines for `nudge replay`.
//!
//! ```text
//! cargo run --example generate_events -- --users 2000 --events 20000 --out target/storefront
//! ```
//!
//! The output depends only on the arguments and `--seed`, so a replay of it
//! gives the same decisions on every machine.

use serde_json::json;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

// A small, fast, seeded generator (SplitMix64, the one of the benchmark
// workloads): the data must be the same everywhere, and no statistical
// finesse is needed.
#[path = "../benches/workload.rs"]
mod workload;

use workload::Rng;

impl Rng {
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const CITIES: [&str; 10] = [
    "Shanghai",
    "Beijing",
    "Shenzhen",
    "Hangzhou",
    "Chengdu",
    "Singapore",
    "Jakarta",
    "Bangkok",
    "Manila",
    "Kuala Lumpur",
];
const CATEGORIES: [&str; 10] = [
    "phones", "laptops", "audio", "shoes", "dresses", "jackets", "bags", "watches", "beauty",
    "pricing",
];
const NAMES: [&str; 10] = [
    "李雷",
    "韩梅梅",
    "王芳",
    "张伟",
    "Siti",
    "Arjun",
    "Mei Ling",
    "Nguyen",
    "Somchai",
    "Maria",
];
const PLATFORMS: [&str; 3] = ["ios", "android", "web"];
const SOURCES: [&str; 4] = ["organic", "wechat_ad", "referral", "search"];

struct Args {
    users: u64,
    events: u64,
    seed: u64,
    out: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        users: 2_000,
        events: 20_000,
        seed: 42,
        out: PathBuf::from("target/storefront"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--users" => a.users = value()?.parse().map_err(|e| format!("--users: {e}"))?,
            "--events" => a.events = value()?.parse().map_err(|e| format!("--events: {e}"))?,
            "--seed" => a.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--out" => a.out = PathBuf::from(value()?),
            other => {
                return Err(format!(
                    "unknown argument `{other}` (use --users, --events, --seed, --out)"
                ))
            }
        }
    }
    if a.users == 0 {
        return Err("--users must be at least 1".into());
    }
    Ok(a)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = write_all(&args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn write_all(a: &Args) -> std::io::Result<()> {
    std::fs::create_dir_all(&a.out)?;
    let mut rng = Rng(a.seed);
    let mut profiles = BufWriter::new(std::fs::File::create(a.out.join("profiles.jsonl"))?);
    // A fifth of the users register during the day; the rest exist already.
    let registered_today = a.users / 5;
    for u in 0..a.users {
        let openid = (rng.below(3) > 0).then(|| format!("wx_{u:06}"));
        let line = json!({
            "insert": "profile",
            "ref": format!("profile:{u}"),
            "fields": {
                "user_id": format!("u{u}"),
                "name": rng.pick(&NAMES),
                "city": rng.pick(&CITIES),
                "level": 1 + rng.below(10),
                "tags": if rng.below(20) == 0 { vec!["vip"] } else { Vec::<&str>::new() },
                "wechat_openid": openid,
            }
        });
        writeln!(profiles, "{line}")?;
        // The host records lifecycle states; some users are still prospects.
        if u < a.users - registered_today && rng.below(10) < 3 {
            let state = json!({
                "insert": "lifecycle",
                "fields": {"user_id": format!("u{u}"), "state": "prospect", "since": "2026-10-01T00:00:00Z"}
            });
            writeln!(profiles, "{state}")?;
        }
    }
    profiles.flush()?;

    let mut events = BufWriter::new(std::fs::File::create(a.out.join("events.jsonl"))?);
    let start_ms: i64 = 1_793_491_200_000; // 2026-11-01T00:00:00Z
    let mut now = start_ms;
    let mut next_registration = 0;
    let mut order = 0u64;
    for _ in 0..a.events {
        now += 1 + rng.below(4_000) as i64;
        let at = now;
        let user = if next_registration < registered_today && rng.below(50) == 0 {
            let u = a.users - registered_today + next_registration;
            next_registration += 1;
            let line = json!({"insert": "user_registered", "fields": {"user_id": format!("u{u}"), "source": rng.pick(&SOURCES), "at": at}});
            writeln!(events, "{line}")?;
            continue;
        } else {
            format!("u{}", rng.below(a.users))
        };
        let roll = rng.below(100);
        let line = if roll < 40 {
            json!({"insert": "page_view", "fields": {"user_id": user, "category": rng.pick(&CATEGORIES), "sku": format!("sku{}", rng.below(500)), "at": at}})
        } else if roll < 60 {
            json!({"insert": "add_to_cart", "fields": {"user_id": user, "sku": format!("sku{}", rng.below(500)), "category": rng.pick(&CATEGORIES), "price": (rng.below(300_000) as f64) / 100.0, "at": at}})
        } else if roll < 72 {
            order += 1;
            json!({"insert": "order_paid", "fields": {"user_id": user, "order_id": format!("o{order}"), "amount": (rng.below(150_000) as f64) / 100.0, "category": rng.pick(&CATEGORIES), "channel": rng.pick(&PLATFORMS), "at": at}})
        } else if roll < 92 {
            json!({"insert": "app_open", "fields": {"user_id": user, "platform": rng.pick(&PLATFORMS), "at": at}})
        } else if roll < 99 {
            json!({"insert": "coupon_redeemed", "fields": {"user_id": user, "code": format!("C{}", rng.below(100_000)), "at": at}})
        } else {
            json!({"insert": "order_refunded", "fields": {"user_id": user, "order_id": format!("o{}", 1 + rng.below(order.max(1))), "at": at}})
        };
        writeln!(events, "{line}")?;
    }
    events.flush()?;
    eprintln!(
        "wrote {} profiles and {} events to {}",
        a.users,
        a.events,
        a.out.display()
    );
    Ok(())
}
