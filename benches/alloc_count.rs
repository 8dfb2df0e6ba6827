//! A counting global allocator, shared by `benches/memory.rs` and
//! `benches/memory_time.rs`: it forwards to the system allocator and keeps
//! the live and peak heap bytes of the process.

// Shared by several targets, each using a part of it.
#![allow(dead_code, missing_docs)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Heap bytes allocated and not yet freed.
pub static LIVE: AtomicUsize = AtomicUsize::new(0);
/// The highest `LIVE` has been; store `LIVE` in it to start a new peak.
pub static PEAK: AtomicUsize = AtomicUsize::new(0);

struct Counting;

// Counting heap bytes needs a global allocator, which is unsafe to write;
// this one only forwards to the system allocator.

#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
            PEAK.fetch_max(now, Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Bytes in MB (2^20 bytes).
pub fn mb(bytes: usize) -> f64 {
    bytes as f64 / 1_048_576.0
}
