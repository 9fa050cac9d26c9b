//! `segment inspect`: everything known about one segment.

use std::process::ExitCode;

use shm::{SegmentId, SegmentInfo};

use super::ls::to_json;
use crate::support::text::escape;

/// `segment inspect`: one segment's fields, as text or JSON.
pub(super) fn inspect(id: &SegmentId, json: bool) -> anyhow::Result<ExitCode> {
    let info = shm::inspect(id)?;
    if json {
        println!("{}", to_json(&info));
    } else {
        print_inspect(&info);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_inspect(i: &SegmentInfo) {
    let v = to_json(i);
    if let serde_json::Value::Object(map) = v {
        for (k, v) in map {
            // The nanoseconds are for scripts; the text shows the time.
            if v.is_null() || k.ends_with("_ns") {
                continue;
            }
            let text = match v {
                serde_json::Value::String(s) => escape(&s).into_owned(),
                other => other.to_string(),
            };
            println!("{k:<14}{text}");
        }
    }
}
