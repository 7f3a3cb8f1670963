//! Values on the wire: arguments and results as MessagePack, structs as
//! arrays (`rmp_serde::to_vec`), with nothing after the value.

use serde::Serialize;

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
    let mut deserializer = rmp_serde::Deserializer::from_read_ref(bytes);
    let value = T::deserialize(&mut deserializer).map_err(|err| error(err.to_string()))?;
    if !at_end(&mut deserializer) {
        return Err(error("unexpected bytes after the value".to_owned()));
    }
    Ok(value)
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

    #[test]
    fn values_reject_trailing_bytes() {
        let mut bytes = encode_value("f", "result", &7u32).unwrap();
        assert_eq!(decode_value::<u32>("f", "result", &bytes).unwrap(), 7);
        bytes.push(0xc0);
        assert!(decode_value::<u32>("f", "result", &bytes).is_err());
        assert!(decode_value::<String>("f", "result", &[0xc1]).is_err());
    }
}
