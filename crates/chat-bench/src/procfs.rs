//! What the server process costs, read from Linux's /proc: its resident
//! memory, and which process listens on a port when no pid is given.

use std::fs;

use crate::error::{BenchError, BenchResult, Context};

/// Resident memory (VmRSS) of `pid`, in bytes.
pub fn rss_bytes(pid: u32) -> BenchResult<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .context(&format!("reading /proc/{pid}/status"))?;
    parse_vm_rss(&status)
        .ok_or_else(|| BenchError::new(format!("no VmRSS line in /proc/{pid}/status")))
}

/// The `VmRSS:   1234 kB` line of a `/proc/<pid>/status` text, in bytes.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut fields = line.split_whitespace().skip(1);
    let value: u64 = fields.next()?.parse().ok()?;
    match fields.next() {
        Some("kB") | None => value.checked_mul(1024),
        Some(_) => None,
    }
}

/// The process that listens on TCP `port` (IPv4 or IPv6), found by the
/// listening socket's inode in /proc/net/tcp{,6} and then the process
/// holding that inode among its file descriptors.
pub fn find_listener_pid(port: u16) -> Option<u32> {
    let inodes: Vec<u64> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|path| fs::read_to_string(path).ok())
        .flat_map(|table| listening_inodes(&table, port))
        .collect();
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    let me = std::process::id();
    process_ids()
        .filter(|pid| *pid != me)
        .find(|pid| holds_any(*pid, &wanted))
}

/// Inodes of sockets in LISTEN state (`0A`) on `port` in a /proc/net/tcp
/// table.
pub fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local = fields.get(1)?;
            let state = fields.get(3)?;
            let inode: u64 = fields.get(9)?.parse().ok()?;
            let (_, hex_port) = local.rsplit_once(':')?;
            let local_port = u16::from_str_radix(hex_port, 16).ok()?;
            (*state == "0A" && local_port == port && inode != 0).then_some(inode)
        })
        .collect()
}

fn process_ids() -> impl Iterator<Item = u32> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
}

fn holds_any(pid: u32, wanted: &[String]) -> bool {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(Result::ok)
        .filter_map(|fd| fs::read_link(fd.path()).ok())
        .any(|link| wanted.iter().any(|w| link.as_os_str() == w.as_str()))
}

/// Raises this process's open-file limit to its hard limit and returns the
/// soft limit now in force: every socket is a file.
pub fn raise_nofile_limit() -> BenchResult<u64> {
    rlimit::increase_nofile_limit(u64::MAX).context("raising RLIMIT_NOFILE")
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str =
        "Name:\tchat-server\nVmPeak:\t  999 kB\nVmRSS:\t   20480 kB\nThreads:\t3\n";

    #[test]
    fn vm_rss_is_read_in_bytes() {
        assert_eq!(parse_vm_rss(STATUS), Some(20_480 * 1024));
        assert_eq!(parse_vm_rss("Name:\tkthreadd\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\tlots kB\n"), None);
    }

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:46A0 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 123456 1 0000000000000000 100 0 0 10 0
   1: 0100007F:46A0 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 654321 1 0000000000000000 20 4 30 10 -1
   2: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn only_listening_sockets_on_the_port_are_found() {
        assert_eq!(listening_inodes(TCP, 18080), vec![123456]);
        assert_eq!(listening_inodes(TCP, 8080), vec![777]);
        assert!(listening_inodes(TCP, 9).is_empty());
    }

    #[test]
    fn this_process_has_a_readable_rss() {
        let rss = rss_bytes(std::process::id()).expect("own /proc status");
        assert!(rss > 0);
    }

    #[tokio::test]
    async fn the_listener_of_a_port_is_found_but_never_ourselves() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        // We hold the socket ourselves, and the search skips its own pid.
        assert_eq!(find_listener_pid(port), None);
        let inodes = listening_inodes(
            &fs::read_to_string("/proc/net/tcp").expect("tcp table"),
            port,
        );
        assert_eq!(inodes.len(), 1, "our listener is in the table");
    }
}
