//! `segment ls`: segments as a table or JSON, and the patterns that pick
//! them.

use std::process::ExitCode;

use serde_json::json;
use shm::header::Lifetime;
use shm::{SegmentId, SegmentInfo};

use crate::support::plural::plural;
use crate::support::text::escape;
use crate::support::time::{utc_millis, utc_seconds};

/// `segment ls`: every segment, or those matching `patterns`.
pub(super) fn list(patterns: &[String], long: bool, json: bool) -> anyhow::Result<ExitCode> {
    let all: Vec<SegmentInfo> = shm::list()?
        .into_iter()
        .filter(|i| patterns.is_empty() || patterns.iter().any(|p| matches(p, i)))
        .collect();
    if json {
        println!(
            "{}",
            serde_json::Value::Array(all.iter().map(to_json).collect())
        );
    } else {
        print_table(&all, long, !patterns.is_empty());
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn backend(info: &SegmentInfo) -> &'static str {
    info.id.backend_name()
}

/// Whether a shell-style pattern (`*`, `?`) matches the segment's name, or
/// its System V key in hex (`0x0000162e`) or decimal.
pub(super) fn matches(pattern: &str, info: &SegmentInfo) -> bool {
    match &info.id {
        SegmentId::Posix(name) => glob(pattern.as_bytes(), name.as_bytes()),
        SegmentId::SysV(key) => {
            let hex = format!("0x{:08x}", *key as u32);
            glob(pattern.as_bytes(), hex.as_bytes())
                || glob(pattern.as_bytes(), key.to_string().as_bytes())
        }
    }
}

/// `*` matches any run of bytes, `?` any one byte, anything else itself.
pub(super) fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    // Where the last `*` was, and where in `s` it is tried to end.
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == s[si] => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

pub(super) fn to_json(info: &SegmentInfo) -> serde_json::Value {
    let (key, key_hex, name) = match &info.id {
        SegmentId::SysV(k) => (
            json!(k),
            json!(format!("0x{:08x}", *k as u32)),
            serde_json::Value::Null,
        ),
        SegmentId::Posix(n) => (serde_json::Value::Null, serde_json::Value::Null, json!(n)),
    };
    let reason = match &info.status {
        shm::Status::Invalid(r) => json!(r),
        _ => serde_json::Value::Null,
    };
    json!({
        "backend": backend(info),
        "key": key,
        "key_hex": key_hex,
        "name": name,
        "shmid": info.shmid,
        "size": info.size,
        "payload": info.payload,
        "kind": info.kind.map(|k| k.to_string()),
        "lifetime": info.lifetime.map(Lifetime::name),
        "type": info.type_name,
        "owner": info.owner,
        "uid": info.uid,
        "mode": format!("{:04o}", info.mode),
        "creator_pid": info.creator_pid,
        "creator_alive": info.creator_alive,
        "attached": info.attached,
        "created": info.created_ns.map(utc_millis),
        "created_ns": info.created_ns,
        "status": info.status.name(),
        "reason": reason,
    })
}

/// The key or name as the table shows it: a System V key in hex first, as
/// `ipcs` shows keys; a name with its control characters escaped.
fn id_text(info: &SegmentInfo) -> String {
    match &info.id {
        SegmentId::SysV(k) => format!("0x{:08x} ({k})", *k as u32),
        SegmentId::Posix(n) => escape(n).into_owned(),
    }
}

fn print_table(all: &[SegmentInfo], long: bool, filtered: bool) {
    if all.is_empty() {
        println!(
            "{}",
            if filtered {
                "no segments match"
            } else {
                "no segments"
            }
        );
        return;
    }
    let mut head = vec!["BACKEND", "KEY/NAME", "SHMID", "BYTES"];
    if long {
        head.push("SIZE");
    }
    head.extend([
        "KIND", "LIFETIME", "OWNER", "MODE", "CREATOR", "ATTACHED", "CREATED", "STATUS",
    ]);
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|i| {
            let mut row = vec![
                backend(i).to_owned(),
                id_text(i),
                i.shmid.map_or_else(|| "-".into(), |s| s.to_string()),
                i.payload.unwrap_or(i.size).to_string(),
            ];
            if long {
                row.push(i.size.to_string());
            }
            row.extend([
                i.kind.map_or_else(|| "-".to_owned(), |k| k.to_string()),
                i.lifetime.map_or("-", Lifetime::name).to_owned(),
                escape(&i.owner).into_owned(),
                format!("{:04o}", i.mode),
                match (i.creator_pid, i.creator_alive) {
                    (Some(p), Some(true)) => format!("{p} (alive)"),
                    (Some(p), Some(false)) => format!("{p} (dead)"),
                    (Some(p), None) => p.to_string(),
                    _ => "-".into(),
                },
                i.attached.map_or("-".into(), |a| a.to_string()),
                utc_seconds(i.created),
                i.status.name().to_owned(),
            ]);
            row
        })
        .collect();
    let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (c, w) in cells.iter().zip(&widths) {
            s.push_str(&format!("{c:<w$}  "));
        }
        println!("{}", s.trim_end());
    };
    line(head.clone());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
    let stale = all
        .iter()
        .filter(|i| i.status == shm::Status::Stale)
        .count();
    if stale > 0 {
        println!(
            "{}: `shmex segment rm --stale` removes {}",
            plural(stale as u64, "stale segment", "stale segments"),
            if stale == 1 { "it" } else { "them" }
        );
    }
}
