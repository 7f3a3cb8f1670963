use std::rc::Rc;

#[hype::remote]
fn shared(n: u32) -> Rc<u32> {
    Rc::new(n)
}

fn main() {}
