//! The registry of remote functions in this binary: every `#[hype::remote]`
//! adds a [`Registration`] to the [`REMOTE_FNS`] distributed slice at link
//! time; `hype-run` looks calls up here by their stable ID.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::environment::FunctionDefaults;
use crate::error::Error;
use crate::invoke::{self, ExecuteFn, Executed};
use crate::remote::RemoteFn;

/// Every remote function linked into this binary, collected by `linkme`.
#[linkme::distributed_slice]
pub static REMOTE_FNS: [Registration];

/// One remote function as `hype-run` sees it: its ID, signature, and a
/// monomorphised entry point (`invoke`).
#[derive(Clone, Copy)]
pub struct Registration {
    id: &'static str,
    signature: u64,
    defaults: FunctionDefaults,
    execute: ExecuteFn,
}

impl Registration {
    /// The registration of `F`. Generated code builds this in a `static`.
    pub const fn of<F: RemoteFn>() -> Self {
        Registration {
            id: F::ID,
            signature: F::SIGNATURE,
            defaults: F::DEFAULTS,
            execute: invoke::execute::<F>,
        }
    }

    /// The stable ID ([`RemoteFn::ID`]).
    pub fn id(&self) -> &'static str {
        self.id
    }

    /// The signature hash ([`RemoteFn::SIGNATURE`]).
    pub fn signature(&self) -> u64 {
        self.signature
    }

    /// The attribute's defaults ([`RemoteFn::DEFAULTS`]).
    pub fn defaults(&self) -> &FunctionDefaults {
        &self.defaults
    }

    /// Runs the function on encoded arguments.
    pub(crate) fn execute(&self, arguments: &[u8]) -> Executed {
        (self.execute)(arguments)
    }
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("id", &self.id)
            .field("signature", &format_args!("{:016x}", self.signature))
            .field("defaults", &self.defaults)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn noop(_: &[u8]) -> Executed {
        unreachable!("not executed in registry tests")
    }

    fn reg(id: &'static str) -> Registration {
        Registration {
            id,
            signature: 1,
            defaults: FunctionDefaults::NONE,
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
}
