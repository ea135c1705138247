//! Property tests of the heartbeat codec: arbitrary bytes never panic, emit → parse
//! round-trips, and every truncation is an error.

use ferrolb_core::membership::Keyring;
use ferrolb_core::membership::wire::{Error, Flags, Header, Heartbeat, emit_unsigned, emitted_len};
use proptest::prelude::*;

fn name_strategy(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[a-z0-9é.-]{{1,{max}}}"))
        .unwrap()
        .prop_filter("fits", move |s| s.len() <= max)
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let _ = Heartbeat::parse(&bytes);
        let mut framed = b"FLBM\x01".to_vec();
        framed.extend_from_slice(&bytes);
        let _ = Heartbeat::parse(&framed);
    }

    #[test]
    fn emit_then_parse_round_trips(
        key_id in any::<[u8; 4]>(),
        cluster in name_strategy(63),
        sender in name_strategy(253),
        incarnation in any::<u64>(),
        sequence in any::<u64>(),
        (has_view, link_ok, leaving) in any::<(bool, bool, bool)>(),
        api_age_ms in any::<u32>(),
        heard in proptest::collection::vec(any::<(u64, u16)>(), 0..=128),
        unreachable in proptest::collection::vec(any::<u64>(), 0..=64),
        cut in any::<prop::sample::Index>(),
    ) {
        let header = Header {
            key_id, cluster: &cluster, sender: &sender, incarnation, sequence,
            flags: Flags { has_view, link_ok, leaving }, api_age_ms,
        };
        let keys = Keyring::new(b"0123456789abcdef", None).unwrap();
        let mut buf = Vec::new();
        emit_unsigned(&mut buf, &header, &heard, &unreachable).unwrap();
        let mac = keys.sign(&buf);
        buf.extend_from_slice(&mac);
        prop_assert_eq!(buf.len(), emitted_len(&header, heard.len(), unreachable.len()));
        let hb = Heartbeat::parse(&buf).unwrap();
        prop_assert_eq!(hb.header, header);
        prop_assert_eq!(hb.heard.iter().collect::<Vec<_>>(), heard);
        prop_assert_eq!(hb.unreachable.iter().collect::<Vec<_>>(), unreachable);
        prop_assert_eq!(hb.mac, &mac[..]);
        // The MAC covers exactly the bytes before it.
        prop_assert!(keys.verify(keys.primary_id(), hb.signed, hb.mac).is_ok());
        // Every strict prefix is an error, and so is a trailing byte.
        let n = cut.index(buf.len());
        prop_assert!(Heartbeat::parse(&buf[..n]).is_err());
        buf.push(0);
        prop_assert_eq!(Heartbeat::parse(&buf).unwrap_err(), Error::Trailing(1));
    }
}

#[test]
fn out_of_range_fields_are_errors_naming_the_field() {
    let header = Header {
        key_id: [0; 4],
        cluster: "default",
        sender: "n",
        incarnation: 1,
        sequence: 1,
        flags: Flags::default(),
        api_age_ms: 0,
    };
    let mut buf = Vec::new();
    emit_unsigned(&mut buf, &header, &[], &[]).unwrap();
    buf.extend_from_slice(&[0; 32]);
    let heard_at = 4 + 1 + 4 + 1 + 7 + 1 + 1 + 8 + 8 + 1 + 4;
    let mut bad = buf.clone();
    bad[heard_at..heard_at + 2].copy_from_slice(&129u16.to_be_bytes());
    assert!(matches!(
        Heartbeat::parse(&bad),
        Err(Error::Malformed {
            field: "heard count",
            ..
        })
    ));
    let mut bad = buf.clone();
    bad[heard_at - 5] = 0x80; // unknown flag bit
    assert!(matches!(
        Heartbeat::parse(&bad),
        Err(Error::Malformed { field: "flags", .. })
    ));
    let mut bad = buf.clone();
    bad[9] = 0; // empty cluster name
    assert!(matches!(
        Heartbeat::parse(&bad),
        Err(Error::Malformed {
            field: "cluster",
            ..
        })
    ));
    let e = Heartbeat::parse(&buf[..20]).unwrap_err();
    assert!(e.to_string().contains("truncated"), "{e}");
    let too_many = vec![(0u64, 0u16); 129];
    assert!(emit_unsigned(&mut Vec::new(), &header, &too_many, &[]).is_err());
    let long = "x".repeat(254);
    assert!(
        emit_unsigned(
            &mut Vec::new(),
            &Header {
                sender: &long,
                ..header
            },
            &[],
            &[]
        )
        .is_err()
    );
}
