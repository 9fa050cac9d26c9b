//! System V shared memory: `shmget`, `shmat`, `shmdt`, `shmctl`
//! (see shmget(2), shmop(2), shmctl(2)).

use std::io;
use std::ptr::NonNull;

/// What the kernel says about one System V segment.
#[derive(Clone, Debug)]
pub(crate) struct Stat {
    pub key: i32,
    pub shmid: i32,
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub cpid: i32,
    pub nattch: u64,
    pub ctime: i64,
}

/// `shmget(key, size, flags)`.
pub(crate) fn get(key: i32, size: usize, flags: i32) -> io::Result<i32> {
    // SAFETY: shmget takes only integers.
    let id = unsafe { libc::shmget(key, size, flags) };
    if id < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(id)
    }
}

/// `shmat(shmid, NULL, flags)`.
pub(crate) fn attach(shmid: i32, read_only: bool) -> io::Result<NonNull<u8>> {
    let flags = if read_only { libc::SHM_RDONLY } else { 0 };
    // SAFETY: a null address lets the kernel choose where to map; the result
    // is checked against (void*)-1 before use.
    let p = unsafe { libc::shmat(shmid, std::ptr::null(), flags) };
    if p as isize == -1 {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(p.cast()).ok_or_else(|| io::Error::other("shmat returned null"))
}

/// `shmdt(addr)`.
///
/// # Safety
///
/// `addr` came from [`attach`] and is not used after this call.
pub(crate) unsafe fn detach(addr: NonNull<u8>) {
    // SAFETY: guaranteed by the caller; failure leaves nothing to clean.
    unsafe { libc::shmdt(addr.as_ptr().cast()) };
}

/// `shmctl(shmid, IPC_STAT)`.
pub(crate) fn stat(shmid: i32) -> io::Result<Stat> {
    // SAFETY: shmid_ds is plain old data; all-zero is a valid value.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: `ds` is a valid, writable shmid_ds.
    let rc = unsafe { libc::shmctl(shmid, libc::IPC_STAT, &mut ds) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Stat {
        key: ds.shm_perm.__key,
        shmid,
        size: ds.shm_segsz as u64,
        mode: u32::from(ds.shm_perm.mode) & 0o777,
        uid: ds.shm_perm.uid,
        cpid: ds.shm_cpid,
        nattch: ds.shm_nattch as u64,
        ctime: ds.shm_ctime,
    })
}

/// `shmctl(shmid, IPC_RMID)`: the segment goes when its last process detaches.
pub(crate) fn remove(shmid: i32) -> io::Result<()> {
    // SAFETY: IPC_RMID takes no buffer.
    let rc = unsafe { libc::shmctl(shmid, libc::IPC_RMID, std::ptr::null_mut()) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Every System V segment on the machine, from `/proc/sysvipc/shm`, which
/// lists them all whatever their permissions.
pub(crate) fn list() -> io::Result<Vec<Stat>> {
    let text = std::fs::read_to_string("/proc/sysvipc/shm")?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (key, id, perms, size, cpid, nattch, uid, ctime) = (
        col("key"),
        col("shmid"),
        col("perms"),
        col("size"),
        col("cpid"),
        col("nattch"),
        col("uid"),
        col("ctime"),
    );
    let mut out = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split_whitespace().collect();
        let get = |c: Option<usize>| c.and_then(|i| f.get(i)).copied().unwrap_or("0");
        let perms_raw = u32::from_str_radix(get(perms), 8).unwrap_or(0);
        out.push(Stat {
            key: get(key).parse().unwrap_or(0),
            shmid: get(id).parse().unwrap_or(-1),
            size: get(size).parse().unwrap_or(0),
            mode: perms_raw & 0o777,
            uid: get(uid).parse().unwrap_or(0),
            cpid: get(cpid).parse().unwrap_or(0),
            nattch: get(nattch).parse().unwrap_or(0),
            ctime: get(ctime).parse().unwrap_or(0),
        });
    }
    Ok(out)
}
