//! The registry of remote functions in this binary: every `#[hype::remote]`
//! adds a [`Registration`] to the [`REMOTE_FNS`] distributed slice at link
//! time; `hype-run` looks calls up here by their stable ID.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::error::Error;
use crate::remote::RemoteFn;

/// Every remote function linked into this binary, collected by `linkme`.
#[linkme::distributed_slice]
pub static REMOTE_FNS: [Registration];

/// One remote function as `hype-run` sees it: its ID, signature, and a
/// monomorphised entry point.
#[derive(Clone, Copy)]
pub struct Registration {
    /// The stable ID ([`RemoteFn::ID`]).
    pub id: &'static str,
    /// The signature hash ([`RemoteFn::SIGNATURE`]).
    pub signature: u64,
    pub(crate) execute: crate::entry::ExecuteFn,
}

impl Registration {
    /// The registration of `F`. Generated code builds this in a `static`.
    pub const fn of<F: RemoteFn>() -> Self {
        Registration {
            id: F::ID,
            signature: F::SIGNATURE,
            execute: crate::entry::execute::<F>,
        }
    }
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("id", &self.id)
            .field("signature", &format_args!("{:016x}", self.signature))
            .finish()
    }
}

/// The loaded registry: remote functions by ID, duplicates rejected.
#[derive(Debug)]
pub struct Registry {
    by_id: HashMap<&'static str, Registration>,
}

impl Registry {
    /// The registry of this binary, built on first use. Two remote functions
    /// with the same ID are an error ([`Error::DuplicateFunction`]), reported
    /// every time the registry is asked for.
    pub fn global() -> Result<&'static Registry, Error> {
        static REGISTRY: OnceLock<Result<Registry, Error>> = OnceLock::new();
        REGISTRY
            .get_or_init(|| Registry::build(&REMOTE_FNS))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Builds a registry from registrations, rejecting duplicate IDs.
    pub fn build(registrations: &[Registration]) -> Result<Registry, Error> {
        let mut by_id = HashMap::with_capacity(registrations.len());
        let mut duplicates = Vec::new();
        for registration in registrations {
            if by_id.insert(registration.id, *registration).is_some() {
                duplicates.push(registration.id.to_owned());
            }
        }
        if duplicates.is_empty() {
            Ok(Registry { by_id })
        } else {
            duplicates.sort();
            duplicates.dedup();
            Err(Error::DuplicateFunction { ids: duplicates })
        }
    }

    /// The remote function with this ID.
    pub fn get(&self, id: &str) -> Option<&Registration> {
        self.by_id.get(id)
    }

    /// All IDs, sorted.
    pub fn ids(&self) -> Vec<&'static str> {
        let mut ids: Vec<_> = self.by_id.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// How many remote functions the binary holds.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether the binary holds no remote function.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// FNV-1a, 64 bit: the fixed hash of remote-function signatures. The macro
/// computes the same function at compile time; it is here so tools and tests
/// can compute a signature from its normalised text.
pub const fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop(_: &[u8]) -> crate::entry::Executed {
        unreachable!("not executed in registry tests")
    }

    fn reg(id: &'static str) -> Registration {
        Registration {
            id,
            signature: 1,
            execute: noop,
        }
    }

    #[test]
    fn duplicate_ids_are_named() {
        let err = Registry::build(&[reg("a::f"), reg("b::g"), reg("a::f")]).unwrap_err();
        match &err {
            Error::DuplicateFunction { ids } => assert_eq!(ids, &["a::f".to_owned()]),
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains("a::f"), "{err}");
    }

    #[test]
    fn lookup_by_id() {
        let registry = Registry::build(&[reg("a::f"), reg("b::g")]).unwrap();
        assert_eq!(registry.len(), 2);
        assert!(registry.get("b::g").is_some());
        assert!(registry.get("b::h").is_none());
        assert_eq!(registry.ids(), vec!["a::f", "b::g"]);
    }

    #[test]
    fn fnv1a64_matches_reference_vectors() {
        // Reference values of FNV-1a 64 (from the FNV specification's test suite).
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }
}
