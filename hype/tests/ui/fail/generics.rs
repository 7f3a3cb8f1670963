#[hype::remote]
fn identity<T>(value: T) -> T {
    value
}

#[hype::remote]
fn longest<'a>(words: Vec<String>) -> usize {
    words.len()
}

#[hype::remote]
fn sized<const N: usize>(values: Vec<u8>) -> usize {
    values.len() + N
}

#[hype::remote]
fn bounded(value: String) -> String
where
    String: Clone,
{
    value
}

fn main() {}
