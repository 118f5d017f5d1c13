//! CRC-32C (Castagnoli, the `crc32c` of SPEC.md) of a byte slice.
//!
//! Every block of every scan is verified, so this is on the hot path: the
//! `crc32c` crate's SSE 4.2 loop does ~9 GB/s on the 1–30 KiB blocks of a
//! chunk file here, `crc-fast`'s carry-less-multiply folding (VPCLMULQDQ on
//! AVX-512 machines, PCLMULQDQ otherwise, a table elsewhere) 25–30 GB/s.
//! Both compute the same function; the tests pin the values.

/// The CRC-32C of `bytes`.
#[inline]
pub fn crc32c(bytes: &[u8]) -> u32 {
    // CRC-32C is 32 bits wide; the library returns it widened to u64.
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, bytes) as u32
}

#[cfg(test)]
mod tests {
    use super::crc32c;

    #[test]
    fn matches_the_reference_values() {
        // RFC 3720 B.4 test vectors and the standard check value.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
        let ascending: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c(&ascending), 0x46DD_794E);
        assert_eq!(crc32c(&[]), 0);
    }

    #[test]
    fn matches_the_sse42_implementation_at_every_length() {
        let data: Vec<u8> = (0..70_000u64)
            .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
            .collect();
        for len in (0..600).chain([4095, 4096, 4097, 65_535, 70_000]) {
            for start in [0, 1, 7] {
                let end = (start + len).min(data.len());
                let slice = &data[start..end];
                assert_eq!(
                    crc32c(slice),
                    crc32c::crc32c(slice),
                    "length {len} at {start}"
                );
            }
        }
    }
}
