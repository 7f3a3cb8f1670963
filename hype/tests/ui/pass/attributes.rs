//! The function's attributes: docs and `#[deprecated]` on the wrapper,
//! lint attributes on the body too, `#[cfg]` on everything generated.
#![deny(warnings)]

/// Sums the numbers.
#[hype::remote]
#[allow(clippy::needless_pass_by_value, unused_mut)]
fn sum(numbers: Vec<u64>) -> u64 {
    let mut total = numbers.iter().sum();
    total
}

/// Old.
#[hype::remote]
#[deprecated(note = "use sum")]
fn old_sum(numbers: Vec<u64>) -> u64 {
    numbers.iter().sum()
}

/// Compiled out, so its argument type need not exist.
#[hype::remote]
#[cfg(any())]
fn gone(value: DoesNotExist) {}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(sum(vec![1, 2]).run_here().await.unwrap(), 3);
    #[allow(deprecated)]
    let old = old_sum(vec![3]);
    assert_eq!(old.run_here().await.unwrap(), 3);
}
