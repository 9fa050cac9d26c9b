//! Tests of the parent module.

use super::*;
use proptest::prelude::*;

pub(crate) fn code(s: &str) -> Code {
    Code::new(s).unwrap()
}

/// A record of any valid shape.
pub(crate) fn any_record() -> impl Strategy<Value = DiskRecord> {
    let op = prop::sample::select(Op::ALL.to_vec());
    let undone = prop::sample::select(
        Op::ALL
            .into_iter()
            .filter(|&o| o != Op::Rollback)
            .collect::<Vec<_>>(),
    );
    let name = "[A-Za-z0-9_.-]{1,32}";
    let code = "[A-Z][A-Z0-9]{0,7}";
    (
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<u32>()),
        (op, undone, any::<u64>(), any::<u32>()),
        (code, 0..=6u32, name),
        (any::<i64>(), any::<i64>(), any::<i64>(), any::<i64>()),
        (any::<i64>(), any::<i64>()),
    )
        .prop_map(
            |(
                (seq, id, time, pid),
                (op, undone_op, useq, upid),
                (c, decimals, name),
                (amount, rate, buy, total),
                (bh, bc),
            )| {
                let rollback = op == Op::Rollback;
                let eff = if rollback { undone_op } else { op };
                DiskRecord {
                    seq: seq.max(1),
                    exchange_id: id,
                    time_ns: time,
                    pid,
                    op,
                    undone: rollback.then_some(undone_op),
                    undone_seq: if rollback { useq } else { 0 },
                    undone_pid: if rollback { upid } else { 0 },
                    code: Code::new(&c).unwrap(),
                    decimals,
                    account: if eff == Op::SetRate {
                        Name::EMPTY
                    } else {
                        Name::new(&name).unwrap()
                    },
                    amount,
                    rate,
                    buy_rate: if eff == Op::SetRate { buy } else { 0 },
                    total,
                    balances: (!matches!(op, Op::SetRate | Op::Rollback | Op::Close))
                        .then_some(Balances { home: bh, code: bc }),
                }
            },
        )
}

pub(crate) fn buy(seq: u64, id: u64) -> DiskRecord {
    DiskRecord {
        seq,
        exchange_id: id,
        time_ns: 1_767_225_600_000_000_000 + seq,
        pid: 4242,
        op: Op::Buy,
        undone: None,
        undone_seq: 0,
        undone_pid: 0,
        code: code("DOLLAR"),
        decimals: 2,
        account: Name::new("alice").unwrap(),
        amount: 300,
        rate: 13_720_000,
        buy_rate: 0,
        total: 4116,
        balances: Some(Balances {
            home: 95_884,
            code: 300,
        }),
    }
}

proptest! {
    #[test]
    fn records_round_trip(r in any_record(), back in any::<u32>(), junk in prop::collection::vec(any::<u8>(), 0..8)) {
        let mut buf = vec![7u8; 3];
        r.encode(back, &mut buf).unwrap();
        prop_assert_eq!(buf.len(), 3 + r.frame_len());
        buf.extend_from_slice(&junk);
        let d = DiskRecord::decode(&buf[3..]).unwrap();
        prop_assert_eq!(d, Decoded { record: r, len: r.frame_len(), back });
    }

    #[test]
    fn every_flipped_bit_is_caught(r in any_record(), bit in any::<prop::sample::Index>()) {
        let mut buf = Vec::new();
        r.encode(0, &mut buf).unwrap();
        let i = bit.index(buf.len() * 8);
        buf[i / 8] ^= 1 << (i % 8);
        prop_assert!(DiskRecord::decode(&buf).is_err());
    }

    #[test]
    fn every_cut_is_short(r in any_record(), cut in any::<prop::sample::Index>()) {
        let mut buf = Vec::new();
        r.encode(0, &mut buf).unwrap();
        let n = cut.index(buf.len());
        let e = DiskRecord::decode(&buf[..n]).unwrap_err();
        prop_assert!(matches!(e, RecordError::Short { have, .. } if have == n), "{e}");
    }
}

/// Re-seals a frame whose body was edited, so the content checks run.
fn reseal(buf: &mut [u8]) {
    let crc = checksum(buf);
    buf[4..8].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn op_codes_on_disk_are_stable() {
    let codes: Vec<u8> = Op::ALL.iter().map(|o| o.code()).collect();
    assert_eq!(codes, [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(
        Op::ALL.map(Op::name),
        [
            "buy", "sell", "deposit", "withdraw", "set-rate", "open", "rollback", "close"
        ]
    );
}

#[test]
fn content_is_validated() {
    let mut good = Vec::new();
    buy(9, 1).encode(0, &mut good).unwrap();
    let edit = |i: usize, v: u8| {
        let mut b = good.clone();
        b[FRAME_HEAD + i] = v;
        reseal(&mut b);
        DiskRecord::decode(&b).unwrap_err()
    };
    assert_eq!(edit(0, 2), RecordError::Version(2));
    assert_eq!(edit(2, 9), RecordError::Op(9));
    assert!(matches!(
        edit(3, 2),
        RecordError::Undone {
            op: Op::Buy,
            undone: 2
        }
    ));
    assert!(matches!(
        edit(4, 3),
        RecordError::Field {
            what: "unknown flags",
            ..
        }
    ));
    assert!(matches!(edit(4, 0), RecordError::Field { .. }));
    assert_eq!(edit(5, 7), RecordError::Decimals(7));
    assert!(matches!(edit(6, 4), RecordError::Name(_)));
    assert!(matches!(edit(7, 1), RecordError::Field { .. }));
    assert!(matches!(edit(40, b'a'), RecordError::Code(_)));
    assert!(matches!(edit(BODY_MIN, b' '), RecordError::Name(_)));
    assert!(matches!(edit(BODY_MIN, 0xff), RecordError::Name(m) if m.contains("UTF-8")));
    let mut b = good.clone();
    b[0] = 3;
    assert_eq!(DiskRecord::decode(&b).unwrap_err(), RecordError::Length(3));
    b[0] = good[0] + 1;
    assert!(matches!(
        DiskRecord::decode(&b).unwrap_err(),
        RecordError::Short { .. }
    ));
    let mut b = good.clone();
    b[20] ^= 1;
    assert!(matches!(
        DiskRecord::decode(&b).unwrap_err(),
        RecordError::Checksum { .. }
    ));
    let e = DiskRecord::decode(&[0; 5]).unwrap_err();
    assert_eq!(e.to_string(), "the record is cut short: 5 of 12 bytes");
}

#[test]
fn invalid_records_are_not_encoded() {
    let mut out = vec![1, 2];
    let mut r = buy(1, 1);
    r.balances = None;
    assert!(matches!(
        r.encode(0, &mut out),
        Err(RecordError::Field {
            what: "no resulting balances",
            ..
        })
    ));
    let good = buy(2, 1);
    assert!(encode_batch([&good, &r], &mut out).is_err());
    assert_eq!(out, [1, 2]);
    let mut r = buy(1, 1);
    r.undone = Some(Op::Sell);
    assert!(r.validate().is_err());
    r.op = Op::Rollback;
    r.undone = Some(Op::Rollback);
    assert!(r.validate().is_err());
    let mut r = buy(1, 1);
    r.account = Name::EMPTY;
    assert!(r.validate().is_err());
    r = buy(0, 1);
    assert!(r.validate().is_err());
}

#[test]
fn batches_record_their_start() {
    let rs: Vec<_> = (1..=3).map(|s| buy(s, 5)).collect();
    let mut out = vec![0; 10];
    encode_batch(&rs, &mut out).unwrap();
    let mut at = 10;
    for (i, r) in rs.iter().enumerate() {
        let d = DiskRecord::decode(&out[at..]).unwrap();
        assert_eq!(d.record, *r);
        assert_eq!(d.back as usize, i * r.frame_len());
        at += d.len;
    }
    assert_eq!(at, out.len());
}

#[test]
fn entries_convert_both_ways() {
    let (c, _) = crate::Config::builtin();
    let state = c.into_state().unwrap();
    let r = buy(3, 7);
    let e = r.to_entry(&state).unwrap();
    assert_eq!(e.currency, 1);
    assert_eq!(
        DiskRecord::from_entry(&e, &state, 7, r.balances).unwrap(),
        r
    );
    let mut rb = r;
    rb.op = Op::Rollback;
    rb.undone = Some(Op::Buy);
    rb.undone_seq = 3;
    rb.undone_pid = 99;
    rb.balances = None;
    let e = rb.to_entry(&state).unwrap();
    assert_eq!(e.extra, 99);
    assert_eq!(DiskRecord::from_entry(&e, &state, 7, None).unwrap(), rb);
    let mut sr = r;
    sr.op = Op::SetRate;
    sr.account = Name::EMPTY;
    sr.amount = 0;
    sr.total = 0;
    sr.buy_rate = 13_000_000;
    sr.balances = None;
    let e = sr.to_entry(&state).unwrap();
    assert_eq!(e.extra, 13_000_000);
    assert_eq!(DiskRecord::from_entry(&e, &state, 7, None).unwrap(), sr);
    let mut other = r;
    other.code = code("YEN");
    assert!(other.to_entry(&state).is_none());
}
