struct Counter;

impl Counter {
    #[hype::remote]
    fn count(&self, text: String) -> usize {
        text.len()
    }
}

fn main() {}
