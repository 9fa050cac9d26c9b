//! The durable peers (`--features peers`): the same random trades as the
//! durable rows, each a transaction that reads the account and the rate,
//! computes, updates the balances and the exchange's holdings, appends a
//! journal row and commits durably, from worker processes (this binary
//! re-run as `shmex __peer-worker KIND DIR ACCOUNT START_NS MILLIS`):
//!
//! - SQLite: WAL, `synchronous=FULL`, one `BEGIN IMMEDIATE` transaction
//!   per trade;
//! - LMDB (heed): default environment flags (no `NOSYNC`, no
//!   `NOMETASYNC`: every commit is synced), one write transaction per
//!   trade.
//!
//! At the end the books are checked as the shmex rows are: the journal,
//! replayed from the opening state, gives every stored balance and
//! holding, and no money was made or lost.

use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::book::{Book, Trade};
use super::durable::ns_histogram;
use crate::support::exe::{self, Process};
use crate::support::scratch::unique_name;
use crate::support::time::now_ns;

/// A peer database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Lmdb,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Sqlite => "sqlite",
            Kind::Lmdb => "lmdb",
        }
    }

    fn from_name(s: &str) -> anyhow::Result<Kind> {
        match s {
            "sqlite" => Ok(Kind::Sqlite),
            "lmdb" => Ok(Kind::Lmdb),
            _ => bail!("no such peer: {s:?}"),
        }
    }
}

/// What one run of a peer measured: committed trades per second, and
/// every trade's latency (transaction begun to commit returned).
#[derive(Debug)]
pub struct PeerRun {
    pub per_sec: f64,
    pub ack: Histogram<u64>,
}

/// One entry of a peer's journal: account, trade, home total.
type Entry = (usize, Trade, i64);

/// What a peer's database holds at the end.
#[derive(Debug)]
struct Books {
    /// The journal, in order.
    journal: Vec<Entry>,
    /// Every account's balances, by currency.
    balances: Vec<Vec<i64>>,
    /// The exchange's holdings, by currency.
    holding: Vec<i64>,
}

/// `procs` worker processes of `kind` on a fresh database in `dir`, for
/// `dur`; the books checked afterwards.
pub fn run(
    kind: Kind,
    dir: &Path,
    book: &Book,
    procs: usize,
    dur: Duration,
) -> anyhow::Result<PeerRun> {
    let path = dir.join(unique_name(kind.name()));
    std::fs::create_dir(&path)?;
    let r = measure(kind, &path, book, procs, dur);
    let _ = std::fs::remove_dir_all(&path);
    r
}

fn measure(
    kind: Kind,
    path: &Path,
    book: &Book,
    procs: usize,
    dur: Duration,
) -> anyhow::Result<PeerRun> {
    match kind {
        Kind::Sqlite => sqlite::create(path, book, procs)?,
        Kind::Lmdb => lmdb::create(path, book, procs)?,
    }
    let start_ns = now_ns() + 150_000_000 + procs as u64 * 20_000_000;
    let mut children = Vec::with_capacity(procs);
    for i in 0..procs {
        let mut cmd = exe::command()?;
        cmd.arg("__peer-worker")
            .arg(kind.name())
            .arg(path)
            .args([
                i.to_string(),
                start_ns.to_string(),
                dur.as_millis().to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        children.push(Process::spawn(&mut cmd).context("cannot start a peer worker")?);
    }
    let (mut ops, mut secs) = (0u64, 0f64);
    let mut ack = ns_histogram()?;
    for child in children {
        let o = child.output()?;
        if !o.status.success() {
            bail!(
                "a {} worker failed ({}): {}",
                kind.name(),
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
        let v: Value =
            serde_json::from_slice(&o.stdout).context("a peer worker printed no report")?;
        ops += v["ops"].as_u64().context("a peer report lacks ops")?;
        secs = secs.max(v["secs"].as_f64().context("a peer report lacks secs")?);
        for p in v["ack"].as_array().into_iter().flatten() {
            if let (Some(value), Some(count)) = (p[0].as_u64(), p[1].as_u64()) {
                ack.saturating_record_n(value, count);
            }
        }
    }
    let books = match kind {
        Kind::Sqlite => sqlite::books(path, book, procs)?,
        Kind::Lmdb => lmdb::books(path, book, procs)?,
    };
    verify(book, &books, ops)
        .with_context(|| format!("the {} books after {procs} processes", kind.name()))?;
    Ok(PeerRun {
        per_sec: ops as f64 / secs.max(f64::MIN_POSITIVE),
        ack,
    })
}

/// The journal replayed from the opening state gives `balances` and
/// `holding`; it holds `ops` trades; nothing was made or lost.
fn verify(book: &Book, books: &Books, ops: u64) -> anyhow::Result<()> {
    let Books {
        journal,
        balances,
        holding,
    } = books;
    if journal.len() as u64 != ops {
        bail!(
            "the journal holds {} trades, the workers committed {ops}",
            journal.len()
        );
    }
    let mut acct = vec![book.opening.clone(); balances.len()];
    let mut hold = book.holding.clone();
    for (i, &(a, t, total)) in journal.iter().enumerate() {
        let a_bal = acct.get_mut(a).context("a journal row names no account")?;
        match book.apply(t, a_bal, &mut hold) {
            Ok(x) if x == total => {}
            _ => bail!("journal row {i} does not replay: {t:?} for {total}"),
        }
    }
    if acct != *balances || hold != *holding {
        bail!("the balances are not what the journal replays to");
    }
    book.conserved(balances, holding)
}

/// Entry point of a worker: `KIND DIR ACCOUNT START_NS MILLIS`; prints
/// one JSON report.
pub fn worker(args: &[String]) -> anyhow::Result<ExitCode> {
    let [kind, path, account, start_ns, millis] = args else {
        bail!("usage: __peer-worker KIND DIR ACCOUNT START_NS MILLIS");
    };
    let kind = Kind::from_name(kind)?;
    let account: usize = account.parse().context("bad ACCOUNT")?;
    let start_ns: u64 = start_ns.parse().context("bad START_NS")?;
    let dur = Duration::from_millis(millis.parse().context("bad MILLIS")?);
    let book = Book::new();
    let trades = book.trades(1 + account as u64);
    let path = Path::new(path);
    let wait = |start_ns: u64| {
        let now = now_ns();
        if start_ns > now {
            std::thread::sleep(Duration::from_nanos(start_ns - now));
        }
    };
    let r = match kind {
        Kind::Sqlite => {
            let mut t = sqlite::Trader::open(path, account)?;
            wait(start_ns);
            drive(trades, dur, |x| t.trade(&book, x))?
        }
        Kind::Lmdb => {
            let t = lmdb::Trader::open(path, account)?;
            wait(start_ns);
            drive(trades, dur, |x| t.trade(&book, x))?
        }
    };
    println!("{r}");
    Ok(ExitCode::SUCCESS)
}

/// Trades from `trades` through `trade` (true: committed, false:
/// refused) for `dur`; the report.
fn drive(
    trades: impl Iterator<Item = Trade>,
    dur: Duration,
    mut trade: impl FnMut(Trade) -> anyhow::Result<bool>,
) -> anyhow::Result<Value> {
    let mut ack = ns_histogram()?;
    let (mut ops, mut refused) = (0u64, 0u64);
    let start = Instant::now();
    for t in trades {
        if start.elapsed() >= dur {
            break;
        }
        let begin = Instant::now();
        if trade(t)? {
            ops += 1;
        } else {
            refused += 1;
        }
        ack.saturating_record(begin.elapsed().as_nanos() as u64);
    }
    let secs = start.elapsed().as_secs_f64();
    let ack: Vec<Value> = ack
        .iter_recorded()
        .map(|v| json!([v.value_iterated_to(), v.count_at_value()]))
        .collect();
    Ok(json!({ "ops": ops, "refused": refused, "secs": secs, "ack": ack }))
}

mod sqlite {
    //! SQLite: tables `currency` (rates and the exchange's holding),
    //! `balance` (account, currency) and `journal`.

    use std::path::Path;
    use std::time::Duration;

    use rusqlite::{Connection, TransactionBehavior};

    use super::{Book, Books, Trade};

    /// An index as SQLite stores it.
    fn n(x: usize) -> i64 {
        x as i64
    }

    /// A writer that finds the database locked tries again after 50 µs,
    /// for up to a minute: SQLite's own busy timeout sleeps for up to
    /// 100 ms at a time, which would leave the lock idle and understate
    /// what 16 processes can commit.
    fn retry(attempt: i32) -> bool {
        std::thread::sleep(Duration::from_micros(50));
        attempt < 1_200_000
    }

    fn connect(dir: &Path) -> anyhow::Result<Connection> {
        let mut c = Connection::open(dir.join("books.sqlite"))?;
        c.busy_handler(Some(retry))?;
        let mode: String = c.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            anyhow::bail!("SQLite would not use WAL (journal_mode {mode})");
        }
        c.pragma_update(None, "synchronous", "FULL")?;
        Ok(c)
    }

    /// The database with `book`'s table and `accounts` opened accounts.
    pub fn create(dir: &Path, book: &Book, accounts: usize) -> anyhow::Result<()> {
        let mut c = connect(dir)?;
        c.execute_batch(
            "CREATE TABLE currency(id INTEGER PRIMARY KEY, buy INTEGER NOT NULL, \
               sell INTEGER NOT NULL, holding INTEGER NOT NULL);
             CREATE TABLE balance(account INTEGER NOT NULL, currency INTEGER NOT NULL, \
               amount INTEGER NOT NULL, PRIMARY KEY (account, currency)) WITHOUT ROWID;
             CREATE TABLE journal(seq INTEGER PRIMARY KEY, account INTEGER NOT NULL, \
               buy INTEGER NOT NULL, currency INTEGER NOT NULL, amount INTEGER NOT NULL, \
               total INTEGER NOT NULL);",
        )?;
        let tx = c.transaction()?;
        for i in 0..book.codes.len() {
            tx.execute(
                "INSERT INTO currency VALUES (?1, ?2, ?3, ?4)",
                (n(i), book.buy[i], book.sell[i], book.holding[i]),
            )?;
            for a in 0..accounts {
                tx.execute(
                    "INSERT INTO balance VALUES (?1, ?2, ?3)",
                    (n(a), n(i), book.opening[i]),
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// One worker's connection, trading for one account.
    pub struct Trader {
        c: Connection,
        account: usize,
        balance: Vec<i64>,
        holding: Vec<i64>,
    }

    impl Trader {
        pub fn open(dir: &Path, account: usize) -> anyhow::Result<Trader> {
            let n = Book::new().codes.len();
            Ok(Trader {
                c: connect(dir)?,
                account,
                balance: vec![0; n],
                holding: vec![0; n],
            })
        }

        /// One `BEGIN IMMEDIATE` transaction: whether the trade was done.
        pub fn trade(&mut self, book: &Book, t: Trade) -> anyhow::Result<bool> {
            let c = t.c;
            let (a, ci) = (n(self.account), n(c));
            let tx = self
                .c
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let rate;
            {
                let mut bal = tx.prepare_cached(
                    "SELECT amount FROM balance WHERE account = ?1 AND currency = ?2",
                )?;
                self.balance[0] = bal.query_row((a, 0), |r| r.get(0))?;
                self.balance[c] = bal.query_row((a, ci), |r| r.get(0))?;
                let mut cur =
                    tx.prepare_cached("SELECT buy, sell, holding FROM currency WHERE id = ?1")?;
                self.holding[0] = cur.query_row((0,), |r| r.get(2))?;
                let (buy, sell, h): (i64, i64, i64) =
                    cur.query_row((ci,), |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                self.holding[c] = h;
                rate = if t.buy { sell } else { buy };
            }
            let Ok(total) = book.apply_at(t, rate, &mut self.balance, &mut self.holding) else {
                tx.commit()?;
                return Ok(false);
            };
            {
                let mut set = tx.prepare_cached(
                    "UPDATE balance SET amount = ?3 WHERE account = ?1 AND currency = ?2",
                )?;
                set.execute((a, 0, self.balance[0]))?;
                set.execute((a, ci, self.balance[c]))?;
                let mut hold =
                    tx.prepare_cached("UPDATE currency SET holding = ?2 WHERE id = ?1")?;
                hold.execute((0, self.holding[0]))?;
                hold.execute((ci, self.holding[c]))?;
                tx.prepare_cached(
                    "INSERT INTO journal (account, buy, currency, amount, total) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute((a, t.buy, ci, t.amount, total))?;
            }
            tx.commit()?;
            Ok(true)
        }
    }

    /// The journal in order, every account's balances, the holdings.
    pub fn books(dir: &Path, book: &Book, accounts: usize) -> anyhow::Result<Books> {
        let c = connect(dir)?;
        let n = book.codes.len();
        let mut journal = Vec::new();
        let mut q =
            c.prepare("SELECT account, buy, currency, amount, total FROM journal ORDER BY seq")?;
        let rows = q.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)? as usize,
                Trade {
                    buy: r.get(1)?,
                    c: r.get::<_, i64>(2)? as usize,
                    amount: r.get(3)?,
                },
                r.get::<_, i64>(4)?,
            ))
        })?;
        for row in rows {
            journal.push(row?);
        }
        let mut balances = vec![vec![0; n]; accounts];
        let mut q = c.prepare("SELECT account, currency, amount FROM balance")?;
        let rows = q.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)? as usize,
                r.get::<_, i64>(1)? as usize,
                r.get(2)?,
            ))
        })?;
        for row in rows {
            let (a, cur, v) = row?;
            *balances
                .get_mut(a)
                .and_then(|b| b.get_mut(cur))
                .ok_or_else(|| anyhow::anyhow!("a balance row out of range"))? = v;
        }
        let mut holding = vec![0; n];
        let mut q = c.prepare("SELECT id, holding FROM currency")?;
        let rows = q.query_map([], |r| Ok((r.get::<_, i64>(0)? as usize, r.get(1)?)))?;
        for row in rows {
            let (cur, v) = row?;
            *holding
                .get_mut(cur)
                .ok_or_else(|| anyhow::anyhow!("a currency row out of range"))? = v;
        }
        Ok(Books {
            journal,
            balances,
            holding,
        })
    }
}

mod lmdb {
    //! LMDB through heed: one unnamed database of byte keys: `c` + currency
    //! (buy, sell, holding), `a` + account (4 bytes) + currency (balance),
    //! `j` + sequence number (8 bytes, big-endian: in order) for the
    //! journal, and `n` for the next sequence number.

    use std::path::Path;

    use anyhow::Context as _;
    use heed::types::Bytes;
    use heed::{Database, Env, EnvOpenOptions};

    use super::{Book, Books, Trade};

    type Db = Database<Bytes, Bytes>;

    /// The environment at `dir`, with the default flags: every commit is
    /// synced to disk.
    #[allow(unsafe_code)]
    fn env(dir: &Path) -> anyhow::Result<Env> {
        let mut o = EnvOpenOptions::new();
        o.map_size(1 << 30).max_readers(64);
        // SAFETY: LMDB requires that no process modifies or truncates the
        // environment's files behind its map and that one process opens
        // an environment once: this process opens it here once, and only
        // this benchmark's own LMDB workers use the directory, a fresh one
        // of its own that it removes when they have all ended.
        let env = unsafe { o.open(dir) }?;
        Ok(env)
    }

    fn i64_at(v: &[u8], i: usize) -> anyhow::Result<i64> {
        let b = v.get(i * 8..i * 8 + 8).context("a short LMDB value")?;
        Ok(i64::from_le_bytes(b.try_into()?))
    }

    fn cur_key(c: usize) -> [u8; 2] {
        [b'c', c as u8]
    }

    fn bal_key(a: usize, c: usize) -> [u8; 6] {
        let a = (a as u32).to_be_bytes();
        [b'a', a[0], a[1], a[2], a[3], c as u8]
    }

    fn currency(buy: i64, sell: i64, holding: i64) -> [u8; 24] {
        let mut v = [0u8; 24];
        v[..8].copy_from_slice(&buy.to_le_bytes());
        v[8..16].copy_from_slice(&sell.to_le_bytes());
        v[16..].copy_from_slice(&holding.to_le_bytes());
        v
    }

    /// The environment with `book`'s table and `accounts` accounts.
    pub fn create(dir: &Path, book: &Book, accounts: usize) -> anyhow::Result<()> {
        let env = env(dir)?;
        let mut w = env.write_txn()?;
        let db: Db = env.create_database(&mut w, None)?;
        for i in 0..book.codes.len() {
            db.put(
                &mut w,
                &cur_key(i),
                &currency(book.buy[i], book.sell[i], book.holding[i]),
            )?;
            for a in 0..accounts {
                db.put(&mut w, &bal_key(a, i), &book.opening[i].to_le_bytes())?;
            }
        }
        db.put(&mut w, b"n", &1u64.to_le_bytes())?;
        w.commit()?;
        Ok(())
    }

    fn open_db(env: &Env) -> anyhow::Result<Db> {
        let r = env.read_txn()?;
        let db = env
            .open_database(&r, None)?
            .context("the LMDB database is missing")?;
        r.commit()?;
        Ok(db)
    }

    /// One worker's environment, trading for one account.
    pub struct Trader {
        env: Env,
        db: Db,
        account: usize,
    }

    impl Trader {
        pub fn open(dir: &Path, account: usize) -> anyhow::Result<Trader> {
            let env = env(dir)?;
            let db = open_db(&env)?;
            Ok(Trader { env, db, account })
        }

        /// One write transaction: whether the trade was done.
        pub fn trade(&self, book: &Book, t: Trade) -> anyhow::Result<bool> {
            let (db, a, c) = (&self.db, self.account, t.c);
            let mut w = self.env.write_txn()?;
            let n = book.codes.len();
            let (mut balance, mut holding) = (vec![0; n], vec![0; n]);
            let get = |w: &heed::RwTxn, k: &[u8]| -> anyhow::Result<Vec<u8>> {
                Ok(db.get(w, k)?.context("an LMDB key is missing")?.to_vec())
            };
            balance[0] = i64_at(&get(&w, &bal_key(a, 0))?, 0)?;
            balance[c] = i64_at(&get(&w, &bal_key(a, c))?, 0)?;
            let home = get(&w, &cur_key(0))?;
            let cur = get(&w, &cur_key(c))?;
            holding[0] = i64_at(&home, 2)?;
            holding[c] = i64_at(&cur, 2)?;
            let rate = if t.buy {
                i64_at(&cur, 1)?
            } else {
                i64_at(&cur, 0)?
            };
            let Ok(total) = book.apply_at(t, rate, &mut balance, &mut holding) else {
                w.abort();
                return Ok(false);
            };
            let seq = u64::try_from(i64_at(&get(&w, b"n")?, 0)?)?;
            db.put(&mut w, &bal_key(a, 0), &balance[0].to_le_bytes())?;
            db.put(&mut w, &bal_key(a, c), &balance[c].to_le_bytes())?;
            db.put(
                &mut w,
                &cur_key(0),
                &currency(i64_at(&home, 0)?, i64_at(&home, 1)?, holding[0]),
            )?;
            db.put(
                &mut w,
                &cur_key(c),
                &currency(i64_at(&cur, 0)?, i64_at(&cur, 1)?, holding[c]),
            )?;
            let mut key = [0u8; 9];
            key[0] = b'j';
            key[1..].copy_from_slice(&seq.to_be_bytes());
            let mut row = [0u8; 28];
            row[..4].copy_from_slice(&(a as u32).to_le_bytes());
            row[4] = u8::from(t.buy);
            row[5] = c as u8;
            row[12..20].copy_from_slice(&t.amount.to_le_bytes());
            row[20..].copy_from_slice(&total.to_le_bytes());
            db.put(&mut w, &key, &row)?;
            db.put(&mut w, b"n", &(seq + 1).to_le_bytes())?;
            w.commit()?;
            Ok(true)
        }
    }

    /// The journal in order, every account's balances, the holdings.
    pub fn books(dir: &Path, book: &Book, accounts: usize) -> anyhow::Result<Books> {
        let env = env(dir)?;
        let db = open_db(&env)?;
        let r = env.read_txn()?;
        let n = book.codes.len();
        let mut journal = Vec::new();
        for kv in db.prefix_iter(&r, b"j")? {
            let (_, v) = kv?;
            let b = v.get(..28).context("a short journal row")?;
            let a = u32::from_le_bytes(b[..4].try_into()?) as usize;
            let t = Trade {
                buy: b[4] != 0,
                c: usize::from(b[5]),
                amount: i64::from_le_bytes(b[12..20].try_into()?),
            };
            journal.push((a, t, i64::from_le_bytes(b[20..28].try_into()?)));
        }
        let mut balances = vec![vec![0; n]; accounts];
        let mut holding = vec![0; n];
        for c in 0..n {
            for (a, bal) in balances.iter_mut().enumerate() {
                let v = db
                    .get(&r, &bal_key(a, c))?
                    .context("a balance is missing")?;
                bal[c] = i64_at(v, 0)?;
            }
            let v = db.get(&r, &cur_key(c))?.context("a currency is missing")?;
            holding[c] = i64_at(v, 2)?;
        }
        Ok(Books {
            journal,
            balances,
            holding,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two accounts' trades through each peer, one process: the books
    /// replay, and a tampered balance is caught.
    #[test]
    fn each_peer_keeps_books_that_replay() {
        let book = Book::new();
        for kind in [Kind::Sqlite, Kind::Lmdb] {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let path = dir.path();
            let mut done = 0;
            match kind {
                Kind::Sqlite => {
                    sqlite::create(path, &book, 2).expect("create");
                    for a in 0..2 {
                        let mut t = sqlite::Trader::open(path, a).expect("open");
                        for x in book.trades(1 + a as u64).take(40) {
                            done += u64::from(t.trade(&book, x).expect("trade"));
                        }
                    }
                }
                Kind::Lmdb => {
                    lmdb::create(path, &book, 2).expect("create");
                    for a in 0..2 {
                        let t = lmdb::Trader::open(path, a).expect("open");
                        for x in book.trades(1 + a as u64).take(40) {
                            done += u64::from(t.trade(&book, x).expect("trade"));
                        }
                    }
                }
            }
            assert_eq!(done, 80, "{kind:?}: nothing is refused");
            let mut books = match kind {
                Kind::Sqlite => sqlite::books(path, &book, 2),
                Kind::Lmdb => lmdb::books(path, &book, 2),
            }
            .expect("books");
            verify(&book, &books, done).expect("the books replay");
            assert!(
                verify(&book, &books, done + 1).is_err(),
                "{kind:?}: a count off"
            );
            books.balances[1][0] += 1;
            assert!(
                verify(&book, &books, done).is_err(),
                "{kind:?}: a balance off"
            );
        }
    }
}
