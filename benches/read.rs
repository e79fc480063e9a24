fn main() {
    println!("BENCH read pending=1");
}
