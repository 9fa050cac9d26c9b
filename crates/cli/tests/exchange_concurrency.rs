//! Eight `shmex exchange trade` processes trade 20,000 random lines each, at
//! once, on one exchange. Every line gets its own answer, and every refusal
//! one the line may get (short books, never a busy lock). Afterwards `check`
//! passes, the journal's sequence numbers have no gaps, and every account,
//! every stock and the till equal exactly what the traders' own answers add
//! up to: no update was lost or applied twice.

use std::collections::{BTreeMap, BTreeSet};

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::Value;

use crate::support::exchange::money::{balances, micro, micro_at, rows};
use crate::support::exchange::traffic::{Ledger, check_answer, random_input, seed};
use crate::support::exchange::{Backend, Exchange, answers, assert_no_gaps, on_both_backends};
use crate::support::process::Piped;

const TRADERS: usize = 8;
const LINES: usize = 20_000;
/// More than the traders can journal (opens + every line), so the whole
/// run stays in the ring and can be compared with the answers.
const JOURNAL: &str = "200000";

on_both_backends!(eight_traders_at_once);

fn eight_traders_at_once(b: Backend) {
    let mut ex = Exchange::init(b, "ex-conc", &["--ring", JOURNAL]);
    let genesis = ex.quote();
    let home = genesis["home"].as_str().expect("home").to_string();
    let start_seq = ex.journal().last().map(|r| r["seq"].as_u64().expect("seq"));

    let mut rng = StdRng::seed_from_u64(seed());
    let inputs: Vec<String> = (0..TRADERS)
        .map(|_| String::from_utf8(random_input(&mut rng, LINES, &home)).expect("UTF-8"))
        .collect();

    // Start all traders before feeding any, so they run at once.
    let names: Vec<String> = (0..TRADERS).map(|i| format!("t{i}")).collect();
    let idx: Vec<usize> = names
        .iter()
        .map(|n| ex.spawn(&["trade", "--account", n, "--open", "--json"]))
        .collect();
    let io: Vec<Piped> = idx
        .iter()
        .zip(&inputs)
        .map(|(&i, input)| Piped::new(ex.child(i), input.clone().into_bytes()))
        .collect();
    let mut outputs = Vec::new();
    for (&i, piped) in idx.iter().zip(io) {
        let o = piped.output(ex.finish(i, &format!("trader {i}")));
        assert!(
            o.status.success(),
            "trader {i}: {:?} {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        outputs.push(String::from_utf8(o.stdout).expect("stdout is UTF-8"));
    }

    // Every line got exactly one answer, to that line; add up what they
    // moved.
    let mut ledger = Ledger::default();
    let mut ok = 0;
    let mut refused: BTreeMap<String, usize> = BTreeMap::new();
    let parsed: Vec<Vec<Value>> = outputs.iter().map(|o| answers(o)).collect();
    for ((name, got), input) in names.iter().zip(&parsed).zip(&inputs) {
        assert_eq!(got.len(), LINES, "{name}: one answer per line");
        for (line, a) in input.lines().zip(got) {
            check_answer(name, line, a);
            if a["ok"] == true {
                ok += 1;
            } else {
                let code = a["code"].as_str().unwrap_or_default().to_string();
                *refused.entry(code).or_default() += 1;
            }
            ledger.apply(name, &home, a);
        }
    }
    eprintln!(
        "{} answers ok, {} mutations, of {}; refused: {refused:?}",
        ok,
        ledger.mutations,
        TRADERS * LINES
    );
    assert!(
        ledger.mutations > TRADERS * LINES / 10,
        "too few trades succeeded to prove anything"
    );
    assert!(
        refused.contains_key("insufficient_holding"),
        "no refusal to check the reason of: {refused:?}"
    );

    ex.check();

    // The exchange's holdings moved by exactly what the answers say.
    let q = ex.quote();
    let g = rows(&genesis);
    for (code, (_, _, stock)) in rows(&q) {
        let moved = ledger.exchange.get(&code).copied().unwrap_or(0);
        assert_eq!(stock, g[&code].2 + moved, "stock of {code}");
    }
    let till = micro_at(&genesis, "till") + ledger.exchange.get(&home).copied().unwrap_or(0);
    assert_eq!(micro_at(&q, "till"), till, "till");

    // Every account holds its opening balance plus what its answers moved.
    let acc = balances(&ex.accounts());
    assert_eq!(acc.len(), TRADERS, "{acc:?}");
    let opening = micro("1000.00");
    for name in &names {
        let mut have = acc[name].clone();
        have.retain(|_, v| *v != 0);
        assert_eq!(have, ledger.holds(name, &home, opening), "{name}");
    }

    // The journal: contiguous sequence numbers, one record per answered
    // mutation with the same fields, plus one opening per account.
    let journal = ex.journal();
    assert_no_gaps(&journal, "the journal's sequence numbers");
    let unique: BTreeSet<u64> = ledger.seqs.iter().copied().collect();
    assert_eq!(
        unique.len(),
        ledger.seqs.len(),
        "two answers share a sequence number"
    );
    let by_seq: BTreeMap<u64, &Value> = journal
        .iter()
        .map(|r| (r["seq"].as_u64().unwrap(), r))
        .collect();
    for (name, got) in names.iter().zip(&parsed) {
        for a in got {
            let Some(seq) = a["seq"].as_u64() else {
                continue;
            };
            if a["ok"] != true {
                continue;
            }
            let r = by_seq
                .get(&seq)
                .unwrap_or_else(|| panic!("seq {seq} of {a} not journalled"));
            for f in ["op", "account", "code", "amount"] {
                assert_eq!(r[f], a[f], "{name}: journal {r} vs answer {a}");
            }
            if matches!(a["op"].as_str(), Some("buy" | "sell")) {
                assert_eq!(r["rate"], a["rate"], "journal {r} vs answer {a}");
                assert_eq!(r["total"], a["total"], "journal {r} vs answer {a}");
            }
        }
    }
    let run: Vec<&Value> = journal
        .iter()
        .filter(|r| start_seq.is_none_or(|s| r["seq"].as_u64().unwrap() > s))
        .collect();
    assert_eq!(
        run.len(),
        ledger.mutations + TRADERS,
        "the journal holds the whole run: every answered mutation and one opening per trader"
    );
    let others: Vec<&&Value> = run
        .iter()
        .filter(|r| !unique.contains(&r["seq"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        others.len(),
        TRADERS,
        "only the openings are not answers: {others:?}"
    );
    for r in others {
        assert!(matches!(r["op"].as_str(), Some("open" | "deposit")), "{r}");
        assert_eq!(r["amount"], "1000.00", "{r}");
    }
}
