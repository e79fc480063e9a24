fn main() {
    println!("BENCH ingest pending=1");
}
