//! Examples of hype live in this package's examples.
