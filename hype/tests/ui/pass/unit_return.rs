//! No return type, and an explicit `-> ()`: both are `Output = ()`.
#![deny(warnings)]

use hype::RemoteFn;

#[hype::remote]
fn nothing() {}

#[hype::remote]
async fn explicit_unit(_n: u8) -> () {}

fn output_is_unit<F: RemoteFn<Output = ()>>() {}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    output_is_unit::<NothingArgs>();
    output_is_unit::<ExplicitUnitArgs>();
    nothing().run_here().await.unwrap();
    explicit_unit(1).run_here().await.unwrap();
    assert_eq!(
        NothingArgs::SIGNATURE,
        hype::wire::fnv1a64(b"hype-sig-v2()->()")
    );
    assert_eq!(
        ExplicitUnitArgs::SIGNATURE,
        hype::wire::fnv1a64(b"hype-sig-v2(_n:u8)->()")
    );
}
