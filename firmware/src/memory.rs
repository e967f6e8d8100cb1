//! The process's memory footprint: resident size and its high-water mark (Linux `/proc`), and
//! handing memory the door no longer needs back to the system (freed heap, model bytes).

/// Resident memory of this process, from `/proc/self/status` (KiB).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Resident set size now (`VmRSS`).
    pub rss_kib: u64,
    /// Highest resident set size so far (`VmHWM`), or since [`reset_peak`].
    pub peak_kib: u64,
    /// Resident anonymous memory: the heap, thread stacks (`RssAnon`).
    pub anon_kib: u64,
    /// Resident file pages: the binary's code and data, the models compiled in (`RssFile`).
    pub file_kib: u64,
}

impl Usage {
    /// Parses the text of `/proc/<pid>/status`; `None` if it has no `VmRSS` line.
    pub fn parse(status: &str) -> Option<Self> {
        let mut u = Usage::default();
        let mut seen = false;
        for line in status.lines() {
            let mut parts = line.split_whitespace();
            let (Some(key), Some(value)) = (parts.next(), parts.next()) else {
                continue;
            };
            let Ok(kib) = value.parse::<u64>() else {
                continue;
            };
            match key {
                "VmRSS:" => {
                    u.rss_kib = kib;
                    seen = true;
                }
                "VmHWM:" => u.peak_kib = kib,
                "RssAnon:" => u.anon_kib = kib,
                "RssFile:" => u.file_kib = kib,
                _ => {}
            }
        }
        seen.then_some(u)
    }

    /// Resident size now, MiB.
    pub fn rss_mib(&self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }

    /// Peak resident size, MiB.
    pub fn peak_mib(&self) -> f64 {
        self.peak_kib as f64 / 1024.0
    }
}

/// This process's memory now; `None` where `/proc` is not available.
pub fn usage() -> Option<Usage> {
    Usage::parse(&std::fs::read_to_string("/proc/self/status").ok()?)
}

/// Resets the high-water mark (`VmHWM`) to the current resident size, so a later [`usage`]
/// shows the peak of what follows only (Linux >= 4.0: `echo 5 > /proc/self/clear_refs`).
pub fn reset_peak() -> std::io::Result<()> {
    std::fs::write("/proc/self/clear_refs", "5")
}

/// Hands the heap's free pages back to the system (glibc `malloc_trim`): loading the networks
/// frees more than the door keeps (parsed ONNX graphs, intermediate tract models), and glibc
/// otherwise keeps those pages resident. Returns whether memory was released.
pub fn release_free_heap() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks glibc's own arenas; any pad value is valid.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// After loading: hands the heap's free pages back ([`release_free_heap`]) and logs the
/// resident size and its peak so far, `what` saying what was loaded.
pub fn settle(what: &str) {
    release_free_heap();
    if let Some(u) = usage() {
        tracing::info!(
            "{what}: {:.0} MiB resident (peak {:.0} MiB)",
            u.rss_mib(),
            u.peak_mib()
        );
    }
}

/// Asks the kernel to reclaim the resident pages of `bytes`, data compiled into the binary
/// (e.g. a model file, once parsed): they count in the resident size until reclaimed, and are
/// read again from the executable if ever touched. Only whole pages inside `bytes` are
/// reclaimed. Returns whether the kernel took the hint (Linux >= 5.4).
pub fn release_static(bytes: &'static [u8]) -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let Ok(page) = usize::try_from(page) else {
            return false;
        };
        let start = bytes.as_ptr() as usize;
        let (first, end) = (
            start.div_ceil(page) * page,
            (start + bytes.len()) / page * page,
        );
        if page == 0 || end <= first {
            return false;
        }
        // SAFETY: whole pages of an immutable static. MADV_PAGEOUT only reclaims: the contents
        // stay what they are (file-backed pages are re-read from the file, anonymous ones
        // swapped), unlike MADV_DONTNEED, which would zero an anonymous mapping.
        unsafe { libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_PAGEOUT) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = bytes;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_file_gives_resident_peak_anonymous_and_file_sizes() {
        let status = "Name:\tfacegated\nVmPeak:\t 900000 kB\nVmHWM:\t  153600 kB\n\
                      VmRSS:\t  102400 kB\nRssAnon:\t   71680 kB\nRssFile:\t   30720 kB\n";
        let u = Usage::parse(status).unwrap();
        assert_eq!(
            u,
            Usage {
                rss_kib: 102_400,
                peak_kib: 153_600,
                anon_kib: 71_680,
                file_kib: 30_720
            }
        );
        assert_eq!(u.peak_mib(), 150.0);
        assert_eq!(Usage::parse("Name:\tkthread\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_peak_can_be_reset_to_the_current_size() {
        // Touch 64 MiB, free it, trim: the peak stays up until it is reset.
        let mut big = vec![0u8; 64 << 20];
        for i in (0..big.len()).step_by(4096) {
            big[i] = 1;
        }
        std::hint::black_box(&big);
        let before = usage().unwrap();
        drop(big);
        release_free_heap();
        reset_peak().unwrap();
        let after = usage().unwrap();
        // Other tests run alongside: only the direction is certain.
        assert!(before.peak_kib >= 64 << 10, "{before:?}");
        assert!(after.peak_kib < before.peak_kib, "{before:?} -> {after:?}");
    }
}
