fn main() {
    println!("pixpress: the one-command local stack is not built yet (see issue 7)");
}
