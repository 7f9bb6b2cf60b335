// SPDX-License-Identifier: Apache-2.0
//! Sticky routing as goa pulse computes it: CRC-64 (Go's `crc64.ECMA` table, i.e. CRC-64/XZ) of
//! the job key, then Lamping & Veach's jump consistent hash over the live workers sorted by
//! creation. Computed here so that Rust, Python and Node nodes agree on every key's worker, and a
//! worker joining last moves only about 1/n of the keys.

/// The reflected ECMA-182 polynomial of Go's `crc64.ECMA`.
const ECMA_REFLECTED: u64 = 0xC96C_5795_D787_0F42;

const fn crc_table() -> [u64; 256] {
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u64;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ ECMA_REFLECTED
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

static CRC_TABLE: [u64; 256] = crc_table();

/// Go's `crc64.Checksum(data, crc64.MakeTable(crc64.ECMA))`.
pub(crate) fn crc64_ecma(data: &[u8]) -> u64 {
    let mut crc = !0u64;
    for &b in data {
        crc = CRC_TABLE[((crc ^ u64::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// Jump consistent hash: the bucket in `0..buckets` of `key`; 0 when there are no buckets.
pub(crate) fn jump_hash(mut key: u64, buckets: usize) -> usize {
    let n = i64::try_from(buckets).unwrap_or(i64::MAX);
    let (mut b, mut j) = (-1i64, 0i64);
    while j < n {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    usize::try_from(b).unwrap_or(0)
}

/// The index of the worker that owns `key` among `workers` live workers (sorted by creation).
///
/// # Examples
/// ```
/// let i = jetjobs::pool_worker_index("tenant-42", 3);
/// assert!(i < 3);
/// assert_eq!(i, jetjobs::pool_worker_index("tenant-42", 3));
/// ```
pub fn pool_worker_index(key: &str, workers: usize) -> usize {
    jump_hash(crc64_ecma(key.as_bytes()), workers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_xz_check_value() {
        assert_eq!(crc64_ecma(b"123456789"), 0x995D_C9BB_DF19_39FA);
        assert_eq!(crc64_ecma(b""), 0);
    }

    #[test]
    fn jump_hash_matches_the_paper() {
        // Reference values from the Lamping & Veach implementation.
        assert_eq!(jump_hash(0, 1), 0);
        assert_eq!(jump_hash(256, 1024), 520);
        assert_eq!(jump_hash(0xDEAD_10CC, 666), 361);
        assert_eq!(jump_hash(42, 57), 43);
        assert_eq!(jump_hash(1, 0), 0);
    }

    #[test]
    fn a_worker_joining_last_moves_about_one_in_n_keys() {
        let keys: Vec<String> = (0..10_000).map(|i| format!("job-{i}")).collect();
        let moved = keys
            .iter()
            .filter(|k| pool_worker_index(k, 3) != pool_worker_index(k, 4))
            .count();
        // 1/4 of 10,000 expected; every moved key goes to the new worker.
        assert!((2_200..2_800).contains(&moved), "{moved}");
        assert!(
            keys.iter()
                .filter(|k| pool_worker_index(k, 3) != pool_worker_index(k, 4))
                .all(|k| pool_worker_index(k, 4) == 3)
        );
    }
}
