//! Values on the wire: arguments and results as MessagePack, structs as
//! arrays (`rmp_serde::to_vec`), with nothing after the value.

use serde::Serialize;

use super::MAX_NESTING;
use crate::error::Error;

/// Encodes a value (arguments or a result) for the wire.
pub fn encode_value<T: Serialize + ?Sized>(
    function: &str,
    what: &'static str,
    value: &T,
) -> Result<Vec<u8>, Error> {
    let mut writer = crate::bytes::LargeWriter::default();
    value
        .serialize(&mut rmp_serde::Serializer::new(&mut writer))
        .map_err(|err| Error::Encode {
            function: function.to_owned(),
            what,
            message: err.to_string(),
        })?;
    Ok(writer.0)
}

/// Decodes a value (arguments or a result) from the wire; trailing bytes are
/// an error.
pub fn decode_value<T: serde::de::DeserializeOwned>(
    function: &str,
    what: &'static str,
    bytes: &[u8],
) -> Result<T, Error> {
    let error = |message: String| Error::Decode {
        function: function.to_owned(),
        what,
        message,
    };
    // rmp-serde counts the nesting of arrays and maps, but not of the
    // one-entry maps enum variants are: a recursive enum nested deep enough
    // would overflow the stack (an abort, not an error). Refuse it first.
    check_nesting(bytes, MAX_NESTING).map_err(error)?;
    let mut deserializer = rmp_serde::Deserializer::from_read_ref(bytes);
    let value = T::deserialize(&mut deserializer).map_err(|err| error(err.to_string()))?;
    if !at_end(&mut deserializer) {
        return Err(error("unexpected bytes after the value".to_owned()));
    }
    Ok(value)
}

/// Checks, without recursion, that the first MessagePack item of `bytes`
/// nests arrays and maps (enum variants included) at most `limit` deep.
/// Input that is truncated or malformed passes: the decoder reports it.
fn check_nesting(bytes: &[u8], limit: usize) -> Result<(), String> {
    // Children still to read in each open array or map.
    let mut open: Vec<u64> = Vec::new();
    let mut pos = 0usize;
    loop {
        let Some(&marker) = bytes.get(pos) else {
            return Ok(());
        };
        let (header, skip, children) = match item_shape(marker, bytes.get(pos + 1..).unwrap_or(&[]))
        {
            Some(shape) => shape,
            None => return Ok(()),
        };
        pos = pos
            .saturating_add(1)
            .saturating_add(header)
            .saturating_add(skip);
        if pos > bytes.len() {
            return Ok(());
        }
        if children > 0 {
            if open.len() >= limit {
                return Err(format!(
                    "the value nests arrays, maps or enum variants more than {limit} deep"
                ));
            }
            open.push(children);
            continue;
        }
        // A complete item: it fills one slot of its container, which may
        // complete that container in turn.
        loop {
            match open.last_mut() {
                None => return Ok(()),
                Some(left) => {
                    *left -= 1;
                    if *left > 0 {
                        break;
                    }
                    open.pop();
                }
            }
        }
    }
}

/// The shape of the MessagePack item starting with `marker`, followed by
/// `rest`: the bytes of its header after the marker, the bytes of payload
/// to skip, and how many items it contains (elements, or keys and values).
/// `None` for a reserved marker or a header cut short.
fn item_shape(marker: u8, rest: &[u8]) -> Option<(usize, usize, u64)> {
    let length = |width: usize| -> Option<u64> {
        let bytes = rest.get(..width)?;
        Some(bytes.iter().fold(0u64, |n, &b| (n << 8) | u64::from(b)))
    };
    let to_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    Some(match marker {
        0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0, 0),
        0x80..=0x8f => (0, 0, 2 * u64::from(marker & 0x0f)),
        0x90..=0x9f => (0, 0, u64::from(marker & 0x0f)),
        0xa0..=0xbf => (0, usize::from(marker & 0x1f), 0),
        0xc4 | 0xd9 => (1, to_usize(length(1)?), 0),
        0xc5 | 0xda => (2, to_usize(length(2)?), 0),
        0xc6 | 0xdb => (4, to_usize(length(4)?), 0),
        0xc7 => (2, to_usize(length(1)?), 0),
        0xc8 => (3, to_usize(length(2)?), 0),
        0xc9 => (5, to_usize(length(4)?), 0),
        0xca => (0, 4, 0),
        0xcb => (0, 8, 0),
        0xcc | 0xd0 => (0, 1, 0),
        0xcd | 0xd1 => (0, 2, 0),
        0xce | 0xd2 => (0, 4, 0),
        0xcf | 0xd3 => (0, 8, 0),
        0xd4 => (1, 1, 0),
        0xd5 => (1, 2, 0),
        0xd6 => (1, 4, 0),
        0xd7 => (1, 8, 0),
        0xd8 => (1, 16, 0),
        0xdc => (2, 0, length(2)?),
        0xdd => (4, 0, length(4)?),
        0xde => (2, 0, length(2)?.saturating_mul(2)),
        0xdf => (4, 0, length(4)?.saturating_mul(2)),
        0xc1 => return None,
    })
}

/// Whether a slice deserializer has consumed all its input: reading one
/// more value must fail on end of input, not succeed or fail otherwise.
pub(super) fn at_end<'de, R: rmp_serde::decode::ReadSlice<'de>>(
    deserializer: &mut rmp_serde::Deserializer<R>,
) -> bool {
    use serde::Deserialize as _;
    matches!(
        serde::de::IgnoredAny::deserialize(deserializer),
        Err(rmp_serde::decode::Error::InvalidMarkerRead(err)) if err.kind() == std::io::ErrorKind::UnexpectedEof
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    enum Tree {
        Leaf,
        Maybe(Option<Box<Tree>>),
        Node(Vec<Tree>),
    }

    fn nested(depth: usize) -> Vec<u8> {
        // {"Maybe": {"Maybe": ... "Leaf"}}: each level a one-entry map.
        let mut bytes = Vec::new();
        for _ in 0..depth {
            bytes.extend_from_slice(b"\x81\xa5Maybe");
        }
        bytes.extend_from_slice(b"\xa4Leaf");
        bytes
    }

    #[test]
    fn deep_enum_nesting_is_an_error_not_a_stack_overflow() {
        // Found by the `value` fuzz target: 10 000 levels of a recursive
        // enum overflowed the stack of the thread decoding it.
        for depth in [MAX_NESTING + 1, 10_000, 100_000] {
            let err = decode_value::<Tree>("f", "arguments", &nested(depth)).unwrap_err();
            assert!(
                err.to_string().contains("more than 1024 deep"),
                "{depth}: {err}"
            );
        }
        let fine = decode_value::<Tree>("f", "arguments", &nested(MAX_NESTING - 1)).unwrap();
        let mut depth = 0;
        let mut tree = &fine;
        while let Tree::Maybe(Some(inner)) = tree {
            depth += 1;
            tree = inner;
        }
        assert_eq!(depth, MAX_NESTING - 1);
    }

    #[test]
    fn nesting_is_counted_through_every_container_kind() {
        let value = Tree::Node(vec![
            Tree::Maybe(Some(Box::new(Tree::Node(vec![Tree::Leaf, Tree::Leaf])))),
            Tree::Maybe(None),
            Tree::Leaf,
        ]);
        let bytes = encode_value("f", "result", &value).unwrap();
        // Node's map > its array > Maybe's map (Some is transparent) >
        // the inner Node's map > its array: 5 deep.
        assert!(check_nesting(&bytes, 5).is_ok());
        assert!(check_nesting(&bytes, 4).is_err());
        assert_eq!(decode_value::<Tree>("f", "result", &bytes).unwrap(), value);
        // Large scalars and byte strings are skipped by their length.
        let wide = encode_value(
            "f",
            "result",
            &(
                u64::MAX,
                -1i64,
                1.5f64,
                "text",
                serde_bytes::ByteBuf::from(vec![7u8; 70_000]),
            ),
        )
        .unwrap();
        assert!(check_nesting(&wide, 1).is_ok());
        // Truncated and reserved input passes through to the decoder's error.
        assert!(check_nesting(&[0x92, 0x91], 8).is_ok());
        assert!(check_nesting(&[0xc1], 8).is_ok());
    }

    #[test]
    fn values_reject_trailing_bytes() {
        let mut bytes = encode_value("f", "result", &7u32).unwrap();
        assert_eq!(decode_value::<u32>("f", "result", &bytes).unwrap(), 7);
        bytes.push(0xc0);
        assert!(decode_value::<u32>("f", "result", &bytes).is_err());
        assert!(decode_value::<String>("f", "result", &[0xc1]).is_err());
    }
}
