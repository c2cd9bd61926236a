//! Which segment of a follower an aggregate's events belong to: the first
//! four bytes of the MD5 digest of the originator id's sixteen bytes, as
//! an unsigned big-endian number, modulo the number of segments (the rule
//! `eventsourcing_rs.segments` documents, and PostgreSQL computes as
//! `('x' || left(md5(uuid_send(id)), 8))::bit(32)::bigint % n`).

use md5::{Digest, Md5};

/// The segment, of `count`, of the aggregate `originator_id`; 0 for a
/// count of 0 or 1.
pub fn segment_of(originator_id: u128, count: u32) -> u32 {
    if count <= 1 {
        return 0;
    }
    let digest = Md5::digest(originator_id.to_be_bytes());
    let first = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    first % count
}

/// Segment `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentFilter {
    pub index: u32,
    pub count: u32,
}

impl SegmentFilter {
    pub fn holds(&self, originator_id: u128) -> bool {
        segment_of(originator_id, self.count) == self.index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_documented_rule() {
        // MD5 of the sixteen bytes 12 34 56 78 (four times) starts with
        // b7 af 73 c0 (computed with Python's hashlib).
        let id = 0x1234_5678_1234_5678_1234_5678_1234_5678u128;
        let expected = [(2u32, 0u32), (3, 2), (4, 0), (5, 0), (1000, 960)];
        for (n, segment) in expected {
            assert_eq!(segment_of(id, n), segment);
            assert_eq!(segment, 0xb7af_73c0u32 % n);
        }
        assert_eq!(segment_of(id, 1), 0);
        assert!(SegmentFilter {
            index: segment_of(id, 4),
            count: 4
        }
        .holds(id));
    }
}
